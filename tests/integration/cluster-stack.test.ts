/**
 * BuildkitCluster on the local Kubernetes cluster (scripts/provision/cluster.sh),
 * through the real Pulumi CLI and the real Kubernetes provider, from the repo's
 * own Pulumi.cluster.yaml (only the namespace is the test's own):
 * - `up` returns once every replica passed the smoke test through its own pod;
 *   each replica has a Ready pod and a Bound PVC of its own;
 * - every replica builds with the real buildctl through the kube-pod://
 *   endpoint the stack outputs, as a user pastes it, and `npm run route`
 *   spreads keys over the replicas;
 * - a second preview is clean;
 * - a buildkitd.toml change is shown by preview (a new ConfigMap, the
 *   StatefulSet updated, every proof re-run), rolls the pods, keeps each
 *   replica's cache (same PVC, a file written before the roll still there),
 *   and is clean on the next preview;
 * - `npm run drift` names what an operator changed out of band (the
 *   StatefulSet scaled, the ConfigMap edited, the Service deleted, a replica's
 *   cache volume deleted), `npm run doctor` fails with the fix, `npm run drift
 *   -- --heal` repairs all of it (the replica gets a new volume and is proven
 *   again), and drift, doctor and preview are clean afterwards.
 * Without a cluster it fails, with the fix.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import type { EngineEvent } from "@pulumi/pulumi/automation";

import { createTestStack, mustRun, repoRoot, run, TestStack, writeBuildContext } from "./harness";

jest.setTimeout(20 * 60 * 1000);

const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const kubeconfig = path.join(cache, "cluster", "kubeconfig");
const env = { ...process.env, KUBECONFIG: kubeconfig };
const namespace = `bkc-it-stack-${process.pid.toString(36)}`;
const quiet = { onOutput: () => undefined };

function kubectl(args: string[]): string {
  return mustRun("kubectl", ["-n", namespace, ...args], { env, timeoutMs: 2 * 60 * 1000 });
}
/** `kubectl get` as JSON. */
function get<T>(args: string[]): T {
  return JSON.parse(kubectl(["get", ...args, "-o", "json"])) as T;
}
interface Items<T> {
  items: T[];
}
interface Pod {
  metadata: { name: string; uid: string };
  status: { conditions?: { type: string; status: string }[] };
}
interface Claim {
  metadata: { name: string; uid: string };
  status: { phase: string };
}

/** What the engine plans for each resource of the stack, by type and name. */
function planRecorder(): { onEvent: (event: EngineEvent) => void; ops: Map<string, string> } {
  const ops = new Map<string, string>();
  const onEvent = (event: EngineEvent) => {
    const step = event.resourcePreEvent?.metadata;
    // A replacement's three steps (create-replacement, replace, delete-replaced) are one "replace".
    const op = step && (/replace/.test(step.op) ? "replace" : step.op);
    if (step && op !== "same" && !step.type.startsWith("pulumi:")) ops.set(`${step.type} ${step.urn.split("::").pop()}`, op!);
  };
  return { onEvent, ops };
}
function changes(summary: Record<string, number | undefined> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(summary ?? {}).filter(([op, count]) => op !== "same" && (count ?? 0) > 0)) as Record<string, number>;
}

let testStack: TestStack;
let endpoints: { name: string; buildkitHost: string }[];
let proofs: Record<string, string>;

beforeAll(async () => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) {
    throw new Error(
      `the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root; docs/local-cluster.md), then re-run.`,
    );
  }
  testStack = await createTestStack("bkc-stack", { namespace }, { fromStackFile: "cluster" });
});
afterAll(async () => {
  await testStack?.cleanup();
  run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
});

describe("a cluster stack from Pulumi.cluster.yaml", () => {
  it("up returns once every replica built through its own pod; each has a Ready pod and a Bound cache volume", async () => {
    const result = await testStack.stack.up(quiet);
    endpoints = result.outputs.fleetEndpoints.value;
    proofs = result.outputs.fleetSmokeTests.value;
    expect(endpoints.map((e) => e.name)).toEqual(["buildkitd-0", "buildkitd-1"]);
    for (const endpoint of endpoints) {
      expect(endpoint.buildkitHost).toBe(`kube-pod://${endpoint.name}?namespace=${namespace}&container=buildkitd`);
      expect(proofs[endpoint.name]).toMatch(/^worker \S+ platforms \S+; test build ok at \S+Z$/);
    }
    expect(result.outputs.kubeconfig.value).toBe(kubeconfig);
    const pods = get<Items<Pod>>(["pods"]).items;
    expect(pods.map((p) => p.metadata.name).sort()).toEqual(["buildkitd-0", "buildkitd-1"]);
    for (const pod of pods) expect(pod.status.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    const claims = get<Items<Claim>>(["pvc"]).items;
    expect(claims.map((c) => [c.metadata.name, c.status.phase]).sort()).toEqual([
      ["cache-buildkitd-0", "Bound"],
      ["cache-buildkitd-1", "Bound"],
    ]);
  });

  it("every replica builds with buildctl through the kube-pod:// endpoint it outputs, and npm run route spreads keys over them", () => {
    const context = writeBuildContext("FROM busybox\nRUN echo built > /built\n");
    try {
      for (const endpoint of endpoints) {
        const build = spawnSync("buildctl", ["--addr", endpoint.buildkitHost, "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${context}`, "--local", `dockerfile=${context}`], {
          env,
          encoding: "utf8",
          timeout: 5 * 60 * 1000,
        });
        if (build.status !== 0) throw new Error(`buildctl through ${endpoint.buildkitHost} failed:\n${build.stderr}`);
        expect(build.stderr).toMatch(/RUN echo built > \/built/);
      }
    } finally {
      fs.rmSync(context, { recursive: true, force: true });
    }
    // npm run route over the stack's output, as the README shows it: some keys land on each replica.
    const from = path.join(testStack.workDir, "endpoints.json");
    fs.writeFileSync(from, JSON.stringify(endpoints));
    const chosen = new Set<string>();
    for (let i = 0; i < 16; i++) {
      const route = mustRun("bash", [path.join(repoRoot, "scripts/run-ts.sh"), "cli/route.ts", `repo-${i}:.`, "--from", from], { env });
      const host = /^export BUILDKIT_HOST=(\S+)$/m.exec(route)?.[1];
      // Quoted for eval: the endpoint has ? and &.
      expect(endpoints.map((e) => `'${e.buildkitHost}'`)).toContain(host);
      chosen.add(host!);
    }
    expect(chosen.size).toBe(2);
  });

  it("a second preview is clean", async () => {
    expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
  });

  it("a buildkitd.toml change: preview shows the roll, up rolls every pod, each cache is kept, every replica is proven again, then clean", async () => {
    const claimsBefore = Object.fromEntries(get<Items<Claim>>(["pvc"]).items.map((c) => [c.metadata.name, c.metadata.uid]));
    const podsBefore = Object.fromEntries(get<Items<Pod>>(["pods"]).items.map((p) => [p.metadata.name, p.metadata.uid]));
    for (const pod of Object.keys(podsBefore)) kubectl(["exec", pod, "-c", "buildkitd", "--", "sh", "-c", `echo ${pod} > /var/lib/buildkit/kept-by-roll`]);

    await testStack.stack.setConfig("buildkit:maxParallelism", { value: "3" });
    const planned = planRecorder();
    await testStack.stack.preview({ ...quiet, onEvent: planned.onEvent });
    expect(Object.fromEntries(planned.ops)).toEqual({
      "kubernetes:core/v1:ConfigMap buildkit-config": "replace",
      "kubernetes:apps/v1:StatefulSet buildkit-daemons": "update",
      "command:local:Command buildkit-buildkitd-0-smoke-test": "replace",
      "command:local:Command buildkit-buildkitd-1-smoke-test": "replace",
    });

    const result = await testStack.stack.up(quiet);
    const after = result.outputs.fleetSmokeTests.value as Record<string, string>;
    for (const pod of Object.keys(podsBefore)) {
      expect(after[pod]).toMatch(/test build ok/);
      expect(after[pod]).not.toBe(proofs[pod]);
    }
    const podsAfter = Object.fromEntries(get<Items<Pod>>(["pods"]).items.map((p) => [p.metadata.name, p.metadata.uid]));
    for (const pod of Object.keys(podsBefore)) {
      expect(podsAfter[pod]).toBeDefined();
      expect(podsAfter[pod]).not.toBe(podsBefore[pod]);
      // The new pod reads the new file, and its cache volume is the one it had.
      expect(kubectl(["exec", pod, "-c", "buildkitd", "--", "cat", "/etc/buildkit/buildkitd.toml"])).toMatch(/^max-parallelism = 3$/m);
      expect(kubectl(["exec", pod, "-c", "buildkitd", "--", "cat", "/var/lib/buildkit/kept-by-roll"]).trim()).toBe(pod);
    }
    expect(Object.fromEntries(get<Items<Claim>>(["pvc"]).items.map((c) => [c.metadata.name, c.metadata.uid]))).toEqual(claimsBefore);
    expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
  });

  it("drift names what an operator changed out of band, doctor fails with the fix, --heal repairs it, then all clean", async () => {
    const cli = (script: string, ...extra: string[]) =>
      run("bash", ["scripts/run-ts.sh", `cli/${script}.ts`, "--stack", testStack.stack.name, "--cwd", testStack.workDir, ...extra], { env: testStack.env, cwd: repoRoot });
    const clean = cli("drift");
    expect(clean.stdout).toMatch(/^no drift: stack bkc-stack matches the cluster/m);
    expect(clean.code).toBe(0);
    const healthy = cli("doctor");
    expect(healthy.stdout).toMatch(/^healthy: stack bkc-stack \(2 replicas\)$/m);
    expect(healthy.code).toBe(0);

    const configMap = kubectl(["get", "configmap", "-o", "name"]).split("\n").find((n) => n.includes("buildkit-config"))!;
    kubectl(["scale", "statefulset", "buildkitd", "--replicas=3"]);
    kubectl(["patch", configMap, "--type", "merge", "-p", JSON.stringify({ data: { "buildkitd.toml": "debug = true\n" } })]);
    kubectl(["delete", "service", "buildkitd"]);
    const lostClaim = get<Claim>(["pvc", "cache-buildkitd-1"]).metadata.uid;
    kubectl(["delete", "pvc", "cache-buildkitd-1", "--wait=false"]);

    const drift = cli("drift");
    expect(drift.code).toBe(2);
    expect(drift.stdout).toMatch(/^  ConfigMap buildkit-config-\S+: changed out of band.*; up replaces it with the program's; the pods roll$/m);
    expect(drift.stdout).toMatch(/^  Service buildkitd: deleted out of band; up creates it again$/m);
    expect(drift.stdout).toMatch(/^  StatefulSet buildkitd: changed out of band \(spec\); up puts the program's values back$/m);
    expect(drift.stdout).toMatch(/^  replica buildkitd-1: its cache volume cache-buildkitd-1 was deleted out of band/m);
    expect(drift.stdout).toMatch(/^  KUBECONFIG=\S+ kubectl -n bkc-it-stack-\S+ delete pod buildkitd-1$/m);
    const doctor = cli("doctor");
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(/^FAIL  StatefulSet buildkitd: 3 replicas, the program declares 2 \(scaled out of band\)$/m);
    expect(doctor.stdout).toMatch(/^FAIL  replica buildkitd-1: cache volume cache-buildkitd-1 deleted/m);
    expect(doctor.stdout).toContain("fix: give the replica a new one: npm run drift -- --stack bkc-stack --heal");

    const healed = cli("drift", "--heal");
    if (healed.code !== 0) throw new Error(`--heal exited ${healed.code}:\n${healed.stdout}\n${healed.stderr}`);
    expect(healed.stdout).toMatch(/^healed: stack bkc-stack$/m);
    // Targeted, as on a Docker stack: the scaled StatefulSet is named (so is what else drifted).
    expect(healed.stdout).toMatch(/^heal: pulumi up --refresh .*--target '?urn:pulumi:[^ ]*kubernetes:apps\/v1:StatefulSet::buildkit-daemons/m);
    expect(get<Claim>(["pvc", "cache-buildkitd-1"]).metadata.uid).not.toBe(lostClaim);
    expect(kubectl(["get", "service", "buildkitd", "-o", "name"]).trim()).toBe("service/buildkitd");
    const again = cli("doctor");
    expect(again.stdout).toMatch(/^healthy: stack bkc-stack \(2 replicas\)$/m);
    expect(cli("drift").code).toBe(0);
    expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
  });
});
