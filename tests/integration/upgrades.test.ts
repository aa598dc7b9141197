/**
 * Upgrades while builds run, on the real engine: `pulumi up` with a new image
 * stops the old buildkitd with SIGTERM and waits up to buildkit:stopGracePeriod
 * for its in-flight builds (grpc GracefulStop) before docker kills it. A build
 * that started before the upgrade completes; new builds are refused only for
 * the window between the old daemon's SIGTERM and the new one answering, which
 * the test measures. A build that outlives the grace period fails, and the
 * test records what its client prints.
 */
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";

import { createTestStack, DEPLOY_TIMEOUT_MS, mustRun, repoRoot, TestStack, waitFor, writeBuildContext } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const quiet = { onOutput: () => undefined };
const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const CURRENT = /BUILDKIT_VERSION="([^"]+)"/.exec(versions)![1];
const PREVIOUS = /BUILDKIT_PREVIOUS_VERSION="([^"]+)"/.exec(versions)![1];
/** Debian's busybox-static, which scripts/provision/images.sh installs for the mirror's busybox image. */
const BUSYBOX = "/bin/busybox";

/**
 * A build that runs `seconds` in one RUN step, unique so it is never served from cache. The
 * host's static busybox is its only content: no base image to pull, so the test measures the
 * daemon, not the registry mirror.
 */
function slowBuild(host: string, seconds: number): { child: ChildProcess; done: Promise<{ code: number; output: string }>; output: () => string } {
  const context = writeBuildContext(
    `FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "sh", "-c", "echo started ${Date.now()}; /bin/busybox sleep ${seconds}; echo slow build finished"]\n`,
  );
  fs.copyFileSync(BUSYBOX, path.join(context, "busybox"));
  const child = spawn("buildctl", ["--addr", host, "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${context}`, "--local", `dockerfile=${context}`]);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const done = new Promise<{ code: number; output: string }>((resolve) => child.on("close", (code) => resolve({ code: code ?? -1, output })));
  return { child, done, output: () => output };
}

/** Asks the daemon for its workers, as a new build's first call does; resolves with the error text or "". */
function probe(host: string): Promise<string> {
  return new Promise((resolve) =>
    execFile("buildctl", ["--addr", host, "debug", "workers"], { timeout: 10_000 }, (error, _stdout, stderr) => resolve(error ? (stderr || String(error)).trim() : "")),
  );
}

/** Probes every 250 ms until stopped: when new clients were refused, and with what message. */
function watchRefusals(host: string) {
  let stopped = false;
  let firstRefused = 0;
  let lastRefused = 0;
  let answeredAfter = 0;
  const messages = new Set<string>();
  const loop = (async () => {
    while (!stopped) {
      const error = await probe(host);
      const now = Date.now();
      if (error) {
        firstRefused ||= now;
        lastRefused = now;
        messages.add(error.split("\n").pop()!.slice(0, 200));
      } else if (firstRefused && !answeredAfter) {
        answeredAfter = now;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { refusedMs: firstRefused ? (answeredAfter || lastRefused) - firstRefused : 0, messages: [...messages] };
    },
  };
}

describe("an upgrade while a build runs", () => {
  let testStack: TestStack;
  let host: string;

  beforeAll(async () => {
    testStack = await createTestStack("a-drain", { image: `moby/buildkit:${PREVIOUS}`, stopGracePeriod: "2m", smokeTest: "false" });
    const result = await testStack.stack.up(quiet);
    host = result.outputs.buildkitHost.value;
  });
  afterAll(async () => testStack?.cleanup());

  it("lets a 25 s build finish before the old daemon goes, and measures when new builds are refused", async () => {
    const build = slowBuild(host, 25);
    await waitFor("the slow build's RUN step to start", 60_000, () => /#\d+ [\d.]+ started \d+/.test(build.output()) || undefined, 200);
    const before = mustRun("docker", ["inspect", "-f", "{{.Id}}", testStack.containerName]).trim();

    await testStack.stack.setConfig("buildkit:image", { value: `moby/buildkit:${CURRENT}` });
    const refusals = watchRefusals(host);
    const upStarted = Date.now();
    const up = testStack.stack.up(quiet);
    const built = await build.done;
    const buildEndedAfterUp = (Date.now() - upStarted) / 1000;
    await up;
    const upSeconds = (Date.now() - upStarted) / 1000;
    // The new daemon answers once `up` has returned (wait: healthy); the watcher sees it.
    await waitFor("the new daemon to answer", 60_000, async () => (await probe(host)) === "" || undefined);
    const { refusedMs, messages } = await refusals.stop();

    console.log(
      `drain: in-flight build exited ${built.code} ${buildEndedAfterUp.toFixed(1)} s into an up of ${upSeconds.toFixed(1)} s; ` +
        `new clients refused for ${(refusedMs / 1000).toFixed(1)} s, told:\n  ${messages.join("\n  ")}`,
    );
    expect(built.output).toMatch(/#\d+ [\d.]+ slow build finished/);
    expect(built.code).toBe(0);
    expect(mustRun("docker", ["inspect", "-f", "{{.Id}}", testStack.containerName]).trim()).not.toBe(before);
    expect(mustRun("docker", ["inspect", "-f", "{{.Image}}", testStack.containerName]).trim()).toBe(
      mustRun("docker", ["image", "inspect", "-f", "{{.Id}}", `moby/buildkit:${CURRENT}`]).trim(),
    );
    expect(refusedMs).toBeGreaterThan(0);
  });

  it("stops a build that outlives the grace period, and the client says the daemon went away", async () => {
    await testStack.stack.setConfig("buildkit:stopGracePeriod", { value: "3s" });
    await testStack.stack.up(quiet);
    const build = slowBuild(host, 40);
    await waitFor("the slow build's RUN step to start", 60_000, () => /#\d+ [\d.]+ started \d+/.test(build.output()) || undefined, 200);
    await testStack.stack.setConfig("buildkit:image", { value: `moby/buildkit:${PREVIOUS}` });
    await testStack.stack.up(quiet);
    const built = await build.done;
    const said = built.output.trim().split("\n").slice(-3).join("\n");
    console.log(`a build outliving a 3 s grace period exited ${built.code}; its client printed:\n${said}`);
    expect(built.code).not.toBe(0);
    expect(built.output).toMatch(/started \d+/);
    expect(built.output).not.toMatch(/#\d+ [\d.]+ slow build finished/);
  });
});
