/**
 * The cluster's change-impact table (components/kubernetes/change-impact.ts),
 * applied on the local cluster: for every "applied" row, one stack from the
 * repo's Pulumi.cluster.yaml goes through change → preview (the planned
 * operations equal the row's) → up → the pods and the cache volumes did what
 * the row says (replaced or not, each PVC the same or new), the replaced
 * proofs ran again → a second preview is clean. Rows run in one order on one
 * stack, as a user lives through them.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { CLUSTER_CHANGE_IMPACT, ClusterChangeImpact } from "../../components/kubernetes/change-impact";
import { clusterPlanRecorder, plannedOpsOf } from "./cluster-plan";
import { createTestStack, mustRun, repoRoot, run, TestStack } from "./harness";

jest.setTimeout(30 * 60 * 1000);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const setting = (name: string) => new RegExp(`^${name}="([^"]+)"`, "m").exec(versions)![1];
const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const env = { ...process.env, KUBECONFIG: path.join(cache, "cluster", "kubeconfig") };
const namespace = `bkc-it-changes-${process.pid.toString(36)}`;
const quiet = { onOutput: () => undefined };

/** Each applied row's change, as config, in the order they run (cacheProtected before cacheSize: a protected cache is kept). */
const STEPS: [keyof typeof CLUSTER_CHANGE_IMPACT, Record<string, string>][] = [
  ["maxParallelism", { maxParallelism: "3" }],
  ["debug", { debug: "true" }],
  ["cacheMinFreeSpace", { cacheMinFreeSpace: "64m" }],
  ["image", { image: `moby/buildkit:${setting("BUILDKIT_VERSION")}` }],
  ["memory", { memory: "1536m" }],
  ["cpus", { cpus: "0.4" }],
  ["stopGracePeriod", { stopGracePeriod: "5m" }],
  ["replicas", { replicas: "3" }],
  ["cacheProtected", { cacheProtected: "true" }],
  ["cacheSize", { cacheSize: "3g" }],
];

function kubectlJson<T>(args: string[]): T {
  return JSON.parse(mustRun("kubectl", ["-n", namespace, "get", ...args, "-o", "json"], { env })) as T;
}
type Named = { metadata: { name: string; uid: string } };
const uids = (kind: string) => Object.fromEntries(kubectlJson<{ items: Named[] }>([kind]).items.map((i) => [i.metadata.name, i.metadata.uid]));

let testStack: TestStack;

beforeAll(async () => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) throw new Error(`the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root), then re-run.`);
  testStack = await createTestStack("bkc-changes", { namespace, image: `moby/buildkit:${setting("BUILDKIT_PREVIOUS_VERSION")}` }, { fromStackFile: "cluster" });
  await testStack.stack.up(quiet);
});
afterAll(async () => {
  await testStack?.cleanup();
  run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
});

it("covers every applied row of the table", () => {
  const applied = Object.entries(CLUSTER_CHANGE_IMPACT).filter(([, row]) => row.proof === "applied").map(([key]) => key);
  expect(STEPS.map(([key]) => key).sort()).toEqual(applied.sort());
});

describe.each(STEPS)("%s", (key, config) => {
  const row: ClusterChangeImpact = CLUSTER_CHANGE_IMPACT[key];

  it(`${row.change}: preview plans the row, up does it (pods ${row.pods}, each cache ${row.cache}), then clean`, async () => {
    const podsBefore = uids("pods");
    const claimsBefore = uids("pvc");
    const proofsBefore = (await testStack.stack.outputs()).fleetSmokeTests.value as Record<string, string>;
    for (const [name, value] of Object.entries(config)) await testStack.stack.setConfig(`buildkit:${name}`, { value });

    const planned = clusterPlanRecorder();
    await testStack.stack.preview({ ...quiet, onEvent: planned.onEvent });
    expect(planned.ops).toEqual(plannedOpsOf(row));

    const result = await testStack.stack.up(quiet);
    const podsAfter = uids("pods");
    const claimsAfter = uids("pvc");
    const proofsAfter = result.outputs.fleetSmokeTests.value as Record<string, string>;
    const before = Object.keys(podsBefore);
    switch (row.pods) {
      case "none":
        expect(podsAfter).toEqual(podsBefore);
        break;
      case "one added":
        expect(Object.keys(podsAfter).length).toBe(before.length + 1);
        for (const pod of before) expect(podsAfter[pod]).toBe(podsBefore[pod]);
        break;
      default:
        expect(Object.keys(podsAfter).sort()).toEqual(before.sort());
        for (const pod of before) expect(podsAfter[pod]).not.toBe(podsBefore[pod]);
    }
    // At cacheSize the cache is protected (the row before): "kept if protected" means kept here.
    for (const [claim, uid] of Object.entries(claimsBefore)) {
      if (row.cache === "new, empty") expect(claimsAfter[claim]).not.toBe(uid);
      else expect(claimsAfter[claim]).toBe(uid);
    }
    for (const pod of Object.keys(proofsAfter)) {
      if (row.ops.proofs === "replace" || !(pod in proofsBefore)) {
        expect(proofsAfter[pod]).toMatch(/test build ok/);
        expect(proofsAfter[pod]).not.toBe(proofsBefore[pod]);
      } else {
        expect(proofsAfter[pod]).toBe(proofsBefore[pod]);
      }
    }
    const again = await testStack.stack.preview(quiet);
    expect(Object.entries(again.changeSummary ?? {}).filter(([op, n]) => op !== "same" && n)).toEqual([]);
  });
});
