/**
 * A cluster stack with buildkitd's TCP listener and mTLS, on the local cluster
 * (Pulumi.cluster.yaml, one replica of a quarter CPU, `buildkit:tcpPort` and the five TLS keys
 * as secrets): `up` returns once the replica's proof built (over TCP, by the
 * replica's own name under the headless Service: the program's unit tests show
 * the proof dials that); a client pod in the cluster
 * builds through the `tcpHost` the stack outputs with the client pair, and is
 * refused without one; rotating the material previews as the change-impact
 * table's row says, rolls the pod onto the same cache volume, and the old
 * client certificate no longer gets in; no secret reaches the stack's outputs
 * or the Pulumi CLI's output in plaintext; a second preview is clean.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { CLUSTER_CHANGE_IMPACT } from "../../components/kubernetes/change-impact";
import { clusterPlanRecorder, plannedOpsOf } from "./cluster-plan";
import type { CertificateSet } from "../components/certificates";
import { createTestStack, makeCertificates, mustRun, repoRoot, run, TestStack, tlsSecretConfig, waitFor } from "./harness";

jest.setTimeout(20 * 60 * 1000);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const CURRENT = `moby/buildkit:${/^BUILDKIT_VERSION="([^"]+)"/m.exec(versions)![1]}`;
const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const env = { ...process.env, KUBECONFIG: path.join(cache, "cluster", "kubeconfig") };
const namespace = `bkc-it-tls-${process.pid.toString(36)}`;
const PORT = 1235;
const host = `buildkitd-0.buildkitd.${namespace}.svc`;
const CLIENT_POD = "tls-client";

const kubectl = (args: string[], input?: string) => mustRun("kubectl", ["-n", namespace, ...args], { env, input });
const uidOf = (kind: string, name: string) => kubectl(["get", kind, name, "-o", "jsonpath={.metadata.uid}"]);
/** Every certificate set's files live in one temporary directory each. */
const sets: CertificateSet[] = [];
const certificates = () => {
  // One wildcard covers every replica's name under the Service, as a platform team would issue it.
  const set = makeCertificates([`*.buildkitd.${namespace}.svc`]);
  sets.push(set);
  return set;
};

/**
 * buildctl inside the client pod, dialling the replica's TCP listener; `files` are copied into the pod first (over
 * stdin, never on a command line). Returns the exit code and output.
 */
function clientBuildctl(files: Record<string, string>, args: string[]): { code: number | null; output: string } {
  for (const [name, text] of Object.entries(files)) kubectl(["exec", "-i", CLIENT_POD, "--", "sh", "-c", `cat > /tmp/${name}`], text);
  const result = run("kubectl", ["-n", namespace, "exec", CLIENT_POD, "--", "buildctl", "--addr", `tcp://${host}:${PORT}`, ...args], { env, timeoutMs: 5 * 60 * 1000 });
  return { code: result.code, output: result.stdout + result.stderr };
}
const withPair = ["--tlscacert", "/tmp/ca.pem", "--tlscert", "/tmp/cert.pem", "--tlskey", "/tmp/key.pem"];
const pairOf = (set: CertificateSet) => ({ "ca.pem": set.ca, "cert.pem": set.clientCert, "key.pem": set.clientKey });

/** A build inside the client pod through the listener: a Dockerfile with a RUN step, written in the pod. */
function clientBuild(set: CertificateSet, marker: string) {
  kubectl(["exec", "-i", CLIENT_POD, "--", "sh", "-c", "mkdir -p /tmp/ctx && cat > /tmp/ctx/Dockerfile"], `FROM busybox\nRUN echo ${marker} > /built\n`);
  return clientBuildctl(pairOf(set), [...withPair, "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", "context=/tmp/ctx", "--local", "dockerfile=/tmp/ctx"]);
}

let testStack: TestStack;
let first: CertificateSet;
const cliOutput: string[] = [];
const recorded = { onOutput: (line: string) => cliOutput.push(line) };

beforeAll(async () => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) throw new Error(`the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root), then re-run.`);
  first = certificates();
  testStack = await createTestStack("bkc-tls", { namespace, replicas: "1", cpus: "0.25", tcpPort: String(PORT), ...tlsSecretConfig(first) }, { fromStackFile: "cluster" });
});
afterAll(async () => {
  await testStack?.cleanup();
  run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
  for (const set of sets) fs.rmSync(set.dir, { recursive: true, force: true });
});

describe("a cluster stack with a TCP listener and mTLS", () => {
  it("up proves the replica over TCP by its name under the Service, and outputs that address for clients in the cluster", async () => {
    const result = await testStack.stack.up(recorded);
    expect(result.outputs.fleetSmokeTests.value["buildkitd-0"]).toMatch(/test build ok/);
    const [endpoint] = result.outputs.fleetEndpoints.value as { name: string; buildkitHost: string; tcpHost?: string }[];
    expect(endpoint.tcpHost).toBe(`tcp://${host}:${PORT}`);
    // buildkitd listens there with the core's mTLS flags, on the material the Secret mounts.
    const args = kubectl(["get", "pod", "buildkitd-0", "-o", "jsonpath={.spec.containers[0].args}"]);
    expect(JSON.parse(args)).toEqual(expect.arrayContaining(["--addr", `tcp://0.0.0.0:${PORT}`, "--tlscacert", "/etc/buildkit/tls/ca.pem"]));
  });

  it("a client pod in the cluster builds through the replica's tcpHost with the client pair, and is refused without it", async () => {
    kubectl(["run", CLIENT_POD, `--image=${CURRENT}`, "--restart=Never", "--command", "--", "sleep", "3600"]);
    kubectl(["wait", "--for=condition=Ready", `pod/${CLIENT_POD}`, "--timeout=180s"]);
    const build = clientBuild(first, "over-mtls");
    if (build.code !== 0) throw new Error(`the build through tcp://${host}:${PORT} failed:\n${build.output}`);
    expect(build.output).toMatch(/RUN echo over-mtls > \/built/);
    // Only the CA: buildkitd asks for a client certificate and drops the connection without one. Under TLS 1.3 the
    // client learns it as an alert or, when its write comes first, as the connection closing under it.
    const anonymous = clientBuildctl({ "ca.pem": first.ca }, ["--tlscacert", "/tmp/ca.pem", "debug", "workers"]);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.output).toMatch(/certificate required|bad certificate|handshake|broken pipe|connection reset/i);
  });

  it("keeps every key in the Secret and the stack's state encrypted: nothing the CLI printed or the outputs hold carries it", async () => {
    const outputs = JSON.stringify(await testStack.stack.outputs());
    for (const pem of [first.key, first.clientKey]) {
      const body = pem.split("\n")[1]!;
      expect(outputs).not.toContain(body);
      expect(cliOutput.join("")).not.toContain(body);
    }
    const pod = kubectl(["get", "pod", "buildkitd-0", "-o", "json"]);
    expect(pod).not.toContain(first.key.split("\n")[1]!);
  });

  it("rotating the material previews as the table's row, rolls the pod on the same cache volume, and the old client pair is refused", async () => {
    const podBefore = uidOf("pod", "buildkitd-0");
    const claimBefore = uidOf("pvc", "cache-buildkitd-0");
    const second = certificates();
    for (const [key, value] of Object.entries(tlsSecretConfig(second))) await testStack.stack.setConfig(`buildkit:${key}`, value);

    const planned = clusterPlanRecorder();
    await testStack.stack.preview({ ...recorded, onEvent: planned.onEvent });
    expect(planned.ops).toEqual(plannedOpsOf(CLUSTER_CHANGE_IMPACT.tlsCert));

    const result = await testStack.stack.up(recorded);
    expect(result.outputs.fleetSmokeTests.value["buildkitd-0"]).toMatch(/test build ok/);
    expect(uidOf("pod", "buildkitd-0")).not.toBe(podBefore);
    expect(uidOf("pvc", "cache-buildkitd-0")).toBe(claimBefore);

    const fresh = await waitFor("the rolled replica to build with the new pair", 60_000, () => {
      const build = clientBuild(second, "rotated");
      return build.code === 0 ? build : undefined;
    });
    expect(fresh.output).toMatch(/RUN echo rotated > \/built/);
    const old = clientBuildctl(pairOf(first), [...withPair, "debug", "workers"]);
    expect(old.code).not.toBe(0);

    const again = await testStack.stack.preview(recorded);
    expect(Object.entries(again.changeSummary ?? {}).filter(([op, n]) => op !== "same" && n)).toEqual([]);
  });

  it("drift names a TLS Secret an operator edited, --heal puts the program's material back, and the replica builds with it", async () => {
    const cli = (script: string, ...extra: string[]) =>
      run("bash", ["scripts/run-ts.sh", `cli/${script}.ts`, "--stack", testStack.stack.name, "--cwd", testStack.workDir, ...extra], { env: testStack.env, cwd: repoRoot });
    const secret = kubectl(["get", "secret", "-o", "name"]).split("\n").find((n) => n.includes("buildkit-tls"))!;
    kubectl(["patch", secret, "--type", "merge", "-p", JSON.stringify({ stringData: { "ca.pem": "not a certificate\n" } })]);

    const drift = cli("drift");
    expect(drift.code).toBe(2);
    expect(drift.stdout).toMatch(/^  Secret buildkit-tls-\S+: changed out of band/m);
    // Never the material itself, neither the program's nor the operator's.
    expect(drift.stdout + drift.stderr).not.toContain("not a certificate");
    expect(drift.stdout + drift.stderr).not.toContain(sets[sets.length - 1]!.key.split("\n")[1]!);

    const healed = cli("drift", "--heal");
    if (healed.code !== 0) throw new Error(`--heal exited ${healed.code}:\n${healed.stdout}\n${healed.stderr}`);
    expect(cli("drift").code).toBe(0);
    const build = await waitFor("the replica to build with the current pair after the heal", 60_000, () => {
      const result = clientBuild(sets[sets.length - 1]!, "healed");
      return result.code === 0 ? result : undefined;
    });
    expect(build.output).toMatch(/RUN echo healed > \/built/);
  });
});
