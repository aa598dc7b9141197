/**
 * Doctor's "cache filling the disk" row: what the build cache holds
 * (`buildctl du`) against the GC ceiling the stack renders into
 * buildkitd.toml (`maxUsedSpace`, from buildkit:cacheMaxUsedSpace), and the
 * free space of the disk under the cache against `minFreeSpace`
 * (buildkit:cacheMinFreeSpace). A pure judgement here; the doctor gathers the
 * figures.
 */
import { formatMib } from "./docker-inspect";

export interface CacheUsage {
  /** Sum of the sizes `buildctl du` lists. */
  totalBytes: number;
  /** buildkit:cacheMaxUsedSpace; undefined: BuildKit's default policy applies. */
  ceilingBytes?: number;
  /** Available bytes of the filesystem under the daemon's state directory; undefined when it could not be read. */
  freeBytes?: number;
  /** buildkit:cacheMinFreeSpace; undefined: not set. */
  minFreeBytes?: number;
}

export interface CacheVerdict {
  /** One line per failure; empty when the cache is within its limits. */
  failures: { what: string; fix: string }[];
  /** The figures, for the ok line. */
  summary: string;
}

/** buildctl prune's sizes are decimal megabytes. */
const MB = 1_000_000;

/**
 * Judges the figures. `prune` is the buildctl command line for this daemon
 * without its prune flags (`buildctl --addr ... prune`).
 */
export function judgeCache(usage: CacheUsage, prune: string): CacheVerdict {
  const { totalBytes, ceilingBytes, freeBytes, minFreeBytes } = usage;
  const failures: CacheVerdict["failures"] = [];
  const parts = [`build cache ${humanBytes(totalBytes)}`];
  parts.push(ceilingBytes !== undefined ? `GC ceiling ${formatMib(ceilingBytes)} (buildkit:cacheMaxUsedSpace)` : "no GC ceiling set: BuildKit's default applies");
  if (freeBytes !== undefined) parts.push(`${formatMib(freeBytes)} free on its disk${minFreeBytes !== undefined ? ` (buildkit:cacheMinFreeSpace ${formatMib(minFreeBytes)})` : ""}`);

  if (ceilingBytes !== undefined && totalBytes > ceilingBytes) {
    failures.push({
      what: `build cache ${humanBytes(totalBytes)} is over its GC ceiling ${formatMib(ceilingBytes)} (buildkit:cacheMaxUsedSpace): garbage collection has not brought it down`,
      fix: `prune it to the ceiling now: ${prune} --keep-storage ${Math.floor(ceilingBytes / MB)}; if it keeps growing past it, raise buildkit:cacheMaxUsedSpace or give the daemon a bigger disk, then npm run up`,
    });
  }
  if (freeBytes !== undefined && minFreeBytes !== undefined && freeBytes < minFreeBytes) {
    failures.push({
      what: `the disk under the build cache has ${formatMib(freeBytes)} free, less than buildkit:cacheMinFreeSpace ${formatMib(minFreeBytes)}`,
      fix: `free the disk: ${prune} --free-storage ${Math.ceil(minFreeBytes / MB)} prunes the cache until that much is free; if the cache is not what fills it, free space on the host, or lower buildkit:cacheMinFreeSpace to what the disk can give, then npm run up`,
    });
  }
  return { failures, summary: parts.join("; ") };
}

/** The total of `buildctl du --format '{{json .}}'` (a JSON array of records with `size`); undefined when unreadable. */
export function duTotal(json: string): number | undefined {
  try {
    const records = JSON.parse(json) as { size?: unknown }[] | null;
    if (records === null) return 0;
    if (!Array.isArray(records)) return undefined;
    return records.reduce((sum, r) => sum + (typeof r.size === "number" ? r.size : 0), 0);
  } catch {
    return undefined;
  }
}

/** Available bytes from POSIX `df -Pk DIR` output (second line, fourth column); undefined when unreadable. */
export function dfAvailable(output: string): number | undefined {
  const fields = output.trim().split("\n")[1]?.trim().split(/\s+/);
  const kib = fields ? Number(fields[3]) : NaN;
  return Number.isFinite(kib) ? kib * 1024 : undefined;
}

/** A cache size readable at every scale (a fresh cache holds kilobytes): KiB, MiB or GiB with one decimal. */
export function humanBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}
