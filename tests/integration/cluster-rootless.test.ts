/**
 * A rootless cluster stack on the local cluster (Pulumi.cluster.yaml with
 * buildkit:rootless true, one replica): the daemon runs as uid 1000 on a
 * cache volume handed to it by the init step, `up` returns once the replica
 * built through its own pod, the real buildctl builds through the kube-pod://
 * endpoint the stack outputs, and a second preview is clean. Switching it
 * back to root on the same StatefulSet (whose update would keep each cache
 * volume) is refused in preview and up before anything is touched; with
 * another buildkit:name the switch deploys on new volumes.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { createTestStack, mustRun, run, TestStack, writeBuildContext } from "./harness";

jest.setTimeout(15 * 60 * 1000);

const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const env = { ...process.env, KUBECONFIG: path.join(cache, "cluster", "kubeconfig") };
const namespace = `bkc-it-rootless-${process.pid.toString(36)}`;
const quiet = { onOutput: () => undefined };
let testStack: TestStack;

beforeAll(async () => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) throw new Error(`the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root), then re-run.`);
  // A quarter CPU: the switch to another name runs the old and the new replica side by side, on a node other test files share.
  testStack = await createTestStack("bkc-rootless", { namespace, rootless: "true", replicas: "1", cpus: "0.25" }, { fromStackFile: "cluster" });
});
afterAll(async () => {
  await testStack?.cleanup();
  run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
});

it("runs buildkitd as uid 1000, proves it at up, builds through its kube-pod:// endpoint, and previews clean", async () => {
  const result = await testStack.stack.up(quiet);
  expect(result.outputs.fleetSmokeTests.value["buildkitd-0"]).toMatch(/test build ok/);
  const daemon = mustRun("kubectl", ["-n", namespace, "exec", "buildkitd-0", "-c", "buildkitd", "--", "sh", "-c", "id -u; stat -c %u /home/user/.local/share/buildkit"], { env });
  expect(daemon.trim().split("\n")).toEqual(["1000", "1000"]);
  const [endpoint] = result.outputs.fleetEndpoints.value as { buildkitHost: string }[];
  const context = writeBuildContext("FROM busybox\nRUN echo rootless > /built\n");
  try {
    const build = run("buildctl", ["--addr", endpoint.buildkitHost, "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${context}`, "--local", `dockerfile=${context}`], {
      env,
      timeoutMs: 5 * 60 * 1000,
    });
    if (build.code !== 0) throw new Error(`buildctl through ${endpoint.buildkitHost} failed:\n${build.stderr}`);
    expect(build.stderr).toMatch(/RUN echo rootless > \/built/);
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
  const again = await testStack.stack.preview(quiet);
  expect(Object.entries(again.changeSummary ?? {}).filter(([op, n]) => op !== "same" && n)).toEqual([]);
});

it("refuses a switch back to root on the same StatefulSet in preview and up, touching nothing; with another name it deploys on new caches", async () => {
  const uidOf = (kind: string, name: string) => mustRun("kubectl", ["-n", namespace, "get", kind, name, "-o", "jsonpath={.metadata.uid}"], { env });
  const [pod, claim] = [uidOf("pod", "buildkitd-0"), uidOf("pvc", "cache-buildkitd-0")];
  await testStack.stack.setConfig("buildkit:rootless", { value: "false" });
  const refusal =
    `buildkit:rootless is false but StatefulSet buildkitd in namespace ${namespace} runs rootless daemons (uid 1000), and switching it keeps each ` +
    "replica's cache volume: a root daemon's state is not usable by a rootless one, nor the other way round. Switch on new caches instead: " +
    "set buildkit:name to another name with it";
  for (const operation of ["preview", "up"] as const) {
    const started = Date.now();
    let failure = "";
    await testStack.stack[operation](quiet).catch((error: unknown) => (failure = String(error)));
    console.info(`${operation} of a root ↔ rootless switch failed after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(failure).toContain("Refused before anything was declared on the cluster (1 problem):");
    expect(failure).toContain(refusal);
  }
  // Nothing touched: the same pod, still rootless, on the same volume.
  expect([uidOf("pod", "buildkitd-0"), uidOf("pvc", "cache-buildkitd-0")]).toEqual([pod, claim]);
  expect(mustRun("kubectl", ["-n", namespace, "exec", "buildkitd-0", "-c", "buildkitd", "--", "id", "-u"], { env }).trim()).toBe("1000");

  await testStack.stack.setConfig("buildkit:name", { value: "buildkitd-root" });
  const result = await testStack.stack.up(quiet);
  expect(result.outputs.fleetSmokeTests.value["buildkitd-root-0"]).toMatch(/test build ok/);
  expect(mustRun("kubectl", ["-n", namespace, "exec", "buildkitd-root-0", "-c", "buildkitd", "--", "id", "-u"], { env }).trim()).toBe("0");
  expect(mustRun("kubectl", ["-n", namespace, "get", "pvc", "cache-buildkitd-root-0", "-o", "jsonpath={.status.phase}"], { env })).toBe("Bound");
  expect(run("kubectl", ["-n", namespace, "get", "statefulset", "buildkitd"], { env }).stderr).toContain("NotFound");
  const again = await testStack.stack.preview(quiet);
  expect(Object.entries(again.changeSummary ?? {}).filter(([op, n]) => op !== "same" && n)).toEqual([]);
});
