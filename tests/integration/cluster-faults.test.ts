/**
 * Faults of a cluster stack on the local cluster: an image the node cannot
 * pull fails `up` quickly (not at a provider timeout) with the replica named,
 * the reason and the fix; nothing is left that a second `up` cannot finish:
 * with the image corrected, the next `up` proves the replica and a preview is
 * clean.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { createTestStack, repoRoot, run, TestStack } from "./harness";

jest.setTimeout(15 * 60 * 1000);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const CURRENT = `moby/buildkit:${/^BUILDKIT_VERSION="([^"]+)"/m.exec(versions)![1]}`;
const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const env = { ...process.env, KUBECONFIG: path.join(cache, "cluster", "kubeconfig") };
const namespace = `bkc-it-faults-${process.pid.toString(36)}`;
const quiet = { onOutput: () => undefined };
let testStack: TestStack;

beforeAll(async () => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) throw new Error(`the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root), then re-run.`);
  // A version tag no registry here has: the mirror answers 404 and Docker Hub is unreachable.
  testStack = await createTestStack("bkc-faults", { namespace, replicas: "1", image: "moby/buildkit:v0.0.1" }, { fromStackFile: "cluster" });
});
afterAll(async () => {
  await testStack?.cleanup();
  run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
});

it("an image the node cannot pull fails up at once, naming the replica and the fix; the corrected up finishes", async () => {
  const started = Date.now();
  let failure = "";
  try {
    await testStack.stack.up(quiet);
  } catch (error) {
    failure = String(error);
  }
  const seconds = (Date.now() - started) / 1000;
  console.info(`up with an image the node cannot pull failed after ${seconds.toFixed(1)} s`);
  // "waiting does not help": the wait stopped at what the node reported, not at its bound or a provider timeout.
  expect(failure).toContain(`the replicas of StatefulSet buildkitd in namespace ${namespace} are not all Ready (and waiting does not help):`);
  expect(failure).toMatch(/replica buildkitd-0: (ErrImagePull|ImagePullBackOff)/);
  expect(failure).toContain(`fix: see kubectl -n ${namespace} describe pod <replica>; correct the stack config (the image, memory, cpus) and run up again`);

  await testStack.stack.setConfig("buildkit:image", { value: CURRENT });
  const result = await testStack.stack.up(quiet);
  expect(result.outputs.fleetSmokeTests.value["buildkitd-0"]).toMatch(/test build ok/);
  const again = await testStack.stack.preview(quiet);
  expect(Object.entries(again.changeSummary ?? {}).filter(([op, n]) => op !== "same" && n)).toEqual([]);
});
