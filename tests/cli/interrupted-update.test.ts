/**
 * How an interrupted update's lock is judged (no engine, no pulumi): released
 * only when its process is gone from this host; a live holder, a pid reused by
 * another program, and another host's lock are each told apart, and the
 * recovery refuses the two it must not touch.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";

import { describeInterruption, Interruption, interruptionFix, isInterrupted, pulumiProcessAlive, readLocks, recoverable } from "../../cli/interrupted-update";

const made: string[] = [];
afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

function backendWithLock(body: object, layout: "project" | "legacy" = "project"): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "bk-h18-locks-"));
  made.push(root);
  const dir = layout === "project" ? path.join(root, ".pulumi", "locks", "organization", "buildkit", "dev") : path.join(root, ".pulumi", "locks", "dev");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "0f1e.json"), JSON.stringify(body));
  fs.writeFileSync(path.join(dir, "0f1e.json.attrs"), "{}");
  return `file://${root}`;
}

/** A pid that is certainly not running: a child that has exited. */
function deadPid(): number {
  return spawnSync("true").pid!;
}

const empty: Interruption = { locks: [], pendingOperations: [], leftovers: [] };

describe("an interrupted update's stack lock", () => {
  it("is stale when its pid is gone from this host (both lock layouts), and the recovery may release it", () => {
    for (const layout of ["project", "legacy"] as const) {
      const url = backendWithLock({ pid: deadPid(), hostname: os.hostname(), timestamp: "2026-12-07T10:00:00Z" }, layout);
      const { locks, unchecked } = readLocks(url, "buildkit", "dev");
      expect(unchecked).toBeUndefined();
      expect(locks.map((l) => l.holder)).toEqual(["gone"]);
      const found = { ...empty, locks };
      expect(isInterrupted(found)).toBe(true);
      expect(recoverable(found)).toBe(true);
      expect(describeInterruption(found)[0]).toMatch(/^stack lock held by pid \d+ on host .* since 2026-12-07T10:00:00Z, a process that no longer runs: a stale lock/);
      expect(interruptionFix(found, "dev")).toMatch(/^npm run drift -- --stack dev --heal \(releases the stale lock/);
    }
  });

  it("is a running update when a live pulumi holds it: named, never released", () => {
    const url = backendWithLock({ pid: 4242, hostname: os.hostname(), timestamp: "t" });
    const { locks } = readLocks(url, "buildkit", "dev", (pid) => pid === 4242);
    expect(locks.map((l) => l.holder)).toEqual(["running"]);
    expect(recoverable({ ...empty, locks })).toBe(false);
    expect(interruptionFix({ ...empty, locks }, "dev")).toMatch(/^wait for pid 4242 to finish/);
  });

  it("is another host's when taken elsewhere: this host cannot tell, so it only prints the command", () => {
    const url = backendWithLock({ pid: 1, hostname: "ci-runner-7", timestamp: "t" });
    const { locks } = readLocks(url, "buildkit", "dev");
    expect(locks.map((l) => l.holder)).toEqual(["elsewhere"]);
    expect(recoverable({ ...empty, locks })).toBe(false);
    expect(interruptionFix({ ...empty, locks }, "dev")).toMatch(/make sure nothing runs pulumi on host ci-runner-7 .*pulumi cancel --yes --stack dev/);
  });

  it("counts a pid now held by another program as gone, and this test's own process as not a pulumi", () => {
    // jest's own pid is alive but is node, not pulumi: a reused pid does not hold the lock.
    expect(pulumiProcessAlive(process.pid)).toBe(false);
    expect(pulumiProcessAlive(deadPid())).toBe(false);
    expect(pulumiProcessAlive(0)).toBe(false);
  });

  it("is not read on a backend other than file://, and says so", () => {
    const { locks, unchecked } = readLocks("s3://bucket/state", "buildkit", "dev");
    expect(locks).toEqual([]);
    expect(unchecked).toMatch(/file:\/\/ backends only \(backend s3:\/\/bucket\/state\)/);
    expect(isInterrupted(empty)).toBe(false);
  });
});
