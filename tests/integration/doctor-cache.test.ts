/**
 * Doctor's "cache filling the disk" row on a real daemon: a stack whose
 * buildkit:cacheMinFreeSpace asks for more free disk than the engine's disk
 * has fails the row with the engine's own figures and the prune that frees
 * it; the same daemon within its limits (the default stack) is ok with them.
 */
import { createTestStack, DEPLOY_TIMEOUT_MS, removeDockerObjects, repoRoot, requireEngine, run, TestStack } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const ID = "h18-cache";
const NAME = "bk-h18-cache";

describe("doctor's cache row", () => {
  let target: TestStack;

  beforeAll(async () => {
    requireEngine();
    removeDockerObjects(NAME, NAME, `${NAME}-cache`);
    target = await createTestStack(ID, {
      containerName: NAME,
      networkName: NAME,
      cacheVolumeName: `${NAME}-cache`,
      cacheMaxUsedSpace: "2g",
      // More free space than this machine's disk has: the disk is "short" by the stack's own rule.
      cacheMinFreeSpace: "8191t",
    });
    await target.stack.up({ onOutput: () => undefined });
  });

  afterAll(async () => {
    try {
      await target?.cleanup();
    } finally {
      removeDockerObjects(NAME, NAME, `${NAME}-cache`);
    }
  });

  it("fails when the disk under the cache is short of cacheMinFreeSpace, with the figures and the prune that frees it", () => {
    const doctor = run("bash", ["scripts/run-ts.sh", "cli/doctor.ts", "--stack", ID, "--cwd", target.workDir], { env: target.env, cwd: repoRoot });
    expect(doctor.code).toBe(1);
    // The engine's own figure: what df reports inside the daemon for its state directory.
    const available = Number(run("docker", ["exec", NAME, "df", "-Pk", "/var/lib/buildkit"]).stdout.trim().split("\n")[1].trim().split(/\s+/)[3]) * 1024;
    const mib = Math.round(available / 1024 / 1024);
    const line = doctor.stdout.split("\n").find((l) => l.includes("the disk under the build cache"));
    expect(line).toMatch(/^FAIL +cache filling the disk: the disk under the build cache has (\d+) MiB free, less than buildkit:cacheMinFreeSpace 8588886016 MiB$/);
    // Within a few MiB of what df says now (the disk is shared; other runs write to it).
    expect(Math.abs(Number(/has (\d+) MiB free/.exec(line!)![1]) - mib)).toBeLessThan(512);
    expect(doctor.stdout).toMatch(new RegExp(`^ +fix: free the disk: buildctl --addr docker-container://${NAME} prune --free-storage \\d+ prunes the cache until that much is free`, "m"));
    // The ceiling half of the row still holds: the cache is under 2g.
    expect(doctor.stdout).not.toMatch(/over its GC ceiling/);
  });
});
