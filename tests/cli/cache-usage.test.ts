/**
 * Doctor's "cache filling the disk" decision (no engine): over the GC ceiling
 * fails with a prune to the ceiling, a disk short of minFreeSpace fails with a
 * prune that frees it, both at once fail twice, and within limits (or with no
 * limits set) it is ok with the figures. The parsers read what buildctl du
 * --format '{{json .}}' and POSIX df -Pk print.
 */
import { dfAvailable, duTotal, humanBytes, judgeCache } from "../../cli/cache-usage";
import { GIB, MIB } from "../../components/core/units";

const PRUNE = "buildctl --addr docker-container://buildkitd prune";

describe("the cache row's decision", () => {
  it("is ok within the ceiling and the free-space floor, naming the figures", () => {
    const verdict = judgeCache({ totalBytes: 300 * MIB, ceilingBytes: 2 * GIB, freeBytes: 40 * GIB, minFreeBytes: 5 * GIB }, PRUNE);
    expect(verdict.failures).toEqual([]);
    expect(verdict.summary).toBe("build cache 300.0 MiB; GC ceiling 2048 MiB (buildkit:cacheMaxUsedSpace); 40960 MiB free on its disk (buildkit:cacheMinFreeSpace 5120 MiB)");
  });

  it("is ok with no limits set, saying BuildKit's default applies", () => {
    const verdict = judgeCache({ totalBytes: 36_864 }, PRUNE);
    expect(verdict.failures).toEqual([]);
    expect(verdict.summary).toBe("build cache 36.0 KiB; no GC ceiling set: BuildKit's default applies");
  });

  it("fails over the ceiling, with a prune down to it in buildctl's decimal megabytes", () => {
    const verdict = judgeCache({ totalBytes: 3 * GIB, ceilingBytes: 2 * GIB, freeBytes: 40 * GIB }, PRUNE);
    expect(verdict.failures).toHaveLength(1);
    expect(verdict.failures[0].what).toBe("build cache 3.0 GiB is over its GC ceiling 2048 MiB (buildkit:cacheMaxUsedSpace): garbage collection has not brought it down");
    expect(verdict.failures[0].fix).toMatch(new RegExp(`^prune it to the ceiling now: ${PRUNE} --keep-storage 2147;`));
  });

  it("fails when the disk is short of minFreeSpace, even with the cache under its ceiling", () => {
    const verdict = judgeCache({ totalBytes: 100 * MIB, ceilingBytes: 2 * GIB, freeBytes: 1 * GIB, minFreeBytes: 5 * GIB }, PRUNE);
    expect(verdict.failures.map((f) => f.what)).toEqual(["the disk under the build cache has 1024 MiB free, less than buildkit:cacheMinFreeSpace 5120 MiB"]);
    expect(verdict.failures[0].fix).toMatch(new RegExp(`^free the disk: ${PRUNE} --free-storage 5369 prunes the cache`));
  });

  it("fails on both at once, one line each; exactly at a limit is still ok", () => {
    expect(judgeCache({ totalBytes: 3 * GIB, ceilingBytes: 2 * GIB, freeBytes: MIB, minFreeBytes: GIB }, PRUNE).failures).toHaveLength(2);
    expect(judgeCache({ totalBytes: 2 * GIB, ceilingBytes: 2 * GIB, freeBytes: GIB, minFreeBytes: GIB }, PRUNE).failures).toEqual([]);
  });

  it("does not judge the disk when df could not be read", () => {
    expect(judgeCache({ totalBytes: 1, minFreeBytes: GIB }, PRUNE).failures).toEqual([]);
  });
});

describe("the figures it reads", () => {
  it("sums buildctl du's JSON records, an empty cache as 0, garbage as unreadable", () => {
    expect(duTotal('[{"id":"a","size":4096},{"id":"b","size":8192,"shared":true},{"id":"c"}]')).toBe(12288);
    expect(duTotal("null")).toBe(0);
    expect(duTotal("[]")).toBe(0);
    expect(duTotal("Total: 1kB")).toBeUndefined();
  });

  it("reads the available column of df -Pk in bytes", () => {
    const df = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/vda         264212084 45177120  50324144      48% /var/lib/buildkit\n";
    expect(dfAvailable(df)).toBe(50324144 * 1024);
    expect(dfAvailable("df: /nope: No such file or directory\n")).toBeUndefined();
  });

  it("writes sizes readable at every scale", () => {
    expect([humanBytes(512), humanBytes(5 * MIB), humanBytes(3 * GIB)]).toEqual(["0.5 KiB", "5.0 MiB", "3.0 GiB"]);
  });
});
