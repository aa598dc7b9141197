/**
 * A rootless cluster stack on the local cluster (Pulumi.cluster.yaml with
 * buildkit:rootless true, one replica): the daemon runs as uid 1000 on a
 * cache volume handed to it by the init step, `up` returns once the replica
 * built through its own pod, the real buildctl builds through the kube-pod://
 * endpoint the stack outputs, and a second preview is clean.
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
  testStack = await createTestStack("bkc-rootless", { namespace, rootless: "true", replicas: "1" }, { fromStackFile: "cluster" });
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
