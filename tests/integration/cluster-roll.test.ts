/**
 * A rolling upgrade of a cluster stack that drains, on the local cluster:
 * the image moves from the previous BuildKit release to the current one while
 * a build that started before the upgrade runs on the replica the roll takes
 * first. The build finishes (the pod's preStop drain held SIGTERM back until
 * it did); the pods are replaced one at a time, so at every probe during the
 * roll at least replicas−1 replicas answer with their workers; each replica
 * keeps its cache volume and its contents; every replica is proven again on
 * the new image; and the next preview is clean. The capacity over time and
 * each replica's outage are printed (docs/scale-out.md quotes them).
 */
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { createTestStack, mustRun, repoRoot, run, TestStack, waitFor, writeBuildContext } from "./harness";

jest.setTimeout(20 * 60 * 1000);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const setting = (name: string) => new RegExp(`^${name}="([^"]+)"`, "m").exec(versions)![1];
const PREVIOUS = `moby/buildkit:${setting("BUILDKIT_PREVIOUS_VERSION")}`;
const CURRENT = `moby/buildkit:${setting("BUILDKIT_VERSION")}`;
const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const kubeconfig = path.join(cache, "cluster", "kubeconfig");
const env = { ...process.env, KUBECONFIG: kubeconfig };
const namespace = `bkc-it-roll-${process.pid.toString(36)}`;
const PODS = ["buildkitd-0", "buildkitd-1"];
const quiet = { onOutput: () => undefined };

function kubectl(args: string[]): string {
  return mustRun("kubectl", ["-n", namespace, ...args], { env, timeoutMs: 2 * 60 * 1000 });
}
/** Whether a replica answers with its workers now (the readiness probe's own command, through kubectl exec). */
function serves(pod: string): boolean {
  return run("kubectl", ["-n", namespace, "exec", pod, "-c", "buildkitd", "--", "buildctl", "debug", "workers"], { env, timeoutMs: 10_000 }).code === 0;
}

let testStack: TestStack;

beforeAll(async () => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) {
    throw new Error(`the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root; docs/local-cluster.md), then re-run.`);
  }
  testStack = await createTestStack("bkc-roll", { namespace, image: PREVIOUS, stopGracePeriod: "5m" }, { fromStackFile: "cluster" });
});
afterAll(async () => {
  await testStack?.cleanup();
  run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
});

it("an image upgrade rolls one pod at a time, lets a running build finish, keeps every cache, and proves the new daemons", async () => {
  const first = await testStack.stack.up(quiet);
  expect(Object.keys(first.outputs.fleetSmokeTests.value).sort()).toEqual(PODS);
  for (const pod of PODS) kubectl(["exec", pod, "-c", "buildkitd", "--", "sh", "-c", `echo ${pod} > /var/lib/buildkit/kept-by-roll`]);
  const claims = kubectl(["get", "pvc", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{\"\\n\"}{end}"]).trim();

  // A build of real work (a shell loop, seconds of CPU) on the replica the roll replaces first (the highest ordinal).
  const context = writeBuildContext("FROM busybox\nRUN i=0; while [ $i -lt 4000000 ]; do i=$((i+1)); done; echo $i > /count\n");
  let build: ChildProcess | undefined;
  try {
    const output: string[] = [];
    build = spawn(
      "buildctl",
      ["--addr", `kube-pod://buildkitd-1?namespace=${namespace}&container=buildkitd`, "build", "--no-cache", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${context}`, "--local", `dockerfile=${context}`],
      { env },
    );
    build.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    let buildRunning = true;
    let buildEndedAt = 0;
    const finished = new Promise<number>((resolve) =>
      build!.on("exit", (code) => {
        buildRunning = false;
        buildEndedAt = Date.now();
        resolve(code ?? -1);
      }),
    );
    // The loop is running before the upgrade starts.
    await waitFor("the build's RUN step to start on buildkitd-1", 120_000, () => (/RUN i=0/.test(output.join("")) ? true : undefined), 200);

    await testStack.stack.setConfig("buildkit:image", { value: CURRENT });
    const started = Date.now();
    const timeline: { at: number; serving: string[] }[] = [];
    let rolling = true;
    const upgrade = testStack.stack.up(quiet).finally(() => (rolling = false));
    // Whether buildkitd-1 was seen being deleted (its drain under way) while the build still ran on it.
    let drainedWhileBuilding = false;
    while (rolling) {
      timeline.push({ at: (Date.now() - started) / 1000, serving: PODS.filter(serves) });
      if (buildRunning && !drainedWhileBuilding) {
        const deleting = run("kubectl", ["-n", namespace, "get", "pod", "buildkitd-1", "-o", "jsonpath={.metadata.deletionTimestamp}"], { env });
        drainedWhileBuilding = buildRunning && deleting.code === 0 && deleting.stdout.trim() !== "";
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const result = await upgrade;
    const code = await finished;
    if (code !== 0) throw new Error(`the build started before the upgrade failed (${code}):\n${output.join("").slice(-3000)}`);
    expect(output.join("")).toMatch(/DONE/);
    // The proof of the drain: the pod was being deleted while the build ran on it, and the build still finished.
    expect(drainedWhileBuilding).toBe(true);

    // Capacity over time: never below replicas − 1; and each replica's outage, as the probes saw it.
    const least = Math.min(...timeline.map((t) => t.serving.length));
    const outage = Object.fromEntries(
      PODS.map((pod) => {
        const down = timeline.filter((t) => !t.serving.includes(pod)).map((t) => t.at);
        return [pod, down.length ? `${(down[down.length - 1] - down[0]).toFixed(1)} s (from ${down[0].toFixed(1)} s)` : "none seen"];
      }),
    );
    console.info(
      `roll ${PREVIOUS} → ${CURRENT}: ${timeline.length} probes over ${((Date.now() - started) / 1000).toFixed(1)} s, ` +
        `least replicas serving ${least} of ${PODS.length}; outage per replica: ${JSON.stringify(outage)}; ` +
        `the build on buildkitd-1 finished ok at ${((buildEndedAt - started) / 1000).toFixed(1)} s, its pod drained while it ran: ${drainedWhileBuilding}`,
    );
    expect(timeline.length).toBeGreaterThan(3);
    expect(least).toBeGreaterThanOrEqual(PODS.length - 1);
    // Both replicas were replaced (each was down at some probe) and proven again on the new image.
    for (const pod of PODS) {
      expect(outage[pod]).not.toBe("none seen");
      expect(kubectl(["get", "pod", pod, "-o", "jsonpath={.spec.containers[0].image}"])).toBe(CURRENT);
      expect(kubectl(["exec", pod, "-c", "buildkitd", "--", "cat", "/var/lib/buildkit/kept-by-roll"]).trim()).toBe(pod);
      expect(result.outputs.fleetSmokeTests.value[pod]).not.toBe(first.outputs.fleetSmokeTests.value[pod]);
    }
    expect(kubectl(["get", "pvc", "-o", "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{\"\\n\"}{end}"]).trim()).toBe(claims);
    const again = await testStack.stack.preview(quiet);
    expect(Object.entries(again.changeSummary ?? {}).filter(([op, n]) => op !== "same" && n)).toEqual([]);
  } finally {
    build?.kill();
    fs.rmSync(context, { recursive: true, force: true });
  }
});
