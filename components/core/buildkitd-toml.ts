/**
 * buildkitd.toml, rendered with a TOML library from validated settings: the
 * same file for a Docker container and a Kubernetes pod.
 */
import { stringify as toToml } from "smol-toml";

import type { DaemonSettings } from "./daemon-settings";

/** The settings the file is rendered from. */
export type BuildkitdTomlSettings = Pick<
  DaemonSettings,
  "debug" | "cacheReservedSpaceBytes" | "cacheMaxUsedSpaceBytes" | "cacheMinFreeSpaceBytes" | "maxParallelism" | "platforms" | "registryMirrors"
>;

/**
 * buildkitd.toml for these settings. Garbage collection uses BuildKit's current
 * fields: reservedSpace is a floor GC never frees below, maxUsedSpace the
 * ceiling it prunes down to, minFreeSpace the disk it keeps free. The older
 * keepBytes/gckeepstorage now means a floor, not a cap, and is never written.
 * `platforms` replaces the worker's detected platforms (the first is the
 * default for builds that name none).
 */
export function renderBuildkitdToml(settings: BuildkitdTomlSettings): string {
  const worker: Record<string, unknown> = { enabled: true, gc: true };
  if (settings.cacheReservedSpaceBytes !== undefined) worker.reservedSpace = settings.cacheReservedSpaceBytes;
  if (settings.cacheMaxUsedSpaceBytes !== undefined) worker.maxUsedSpace = settings.cacheMaxUsedSpaceBytes;
  if (settings.cacheMinFreeSpaceBytes !== undefined) worker.minFreeSpace = settings.cacheMinFreeSpaceBytes;
  if (settings.maxParallelism !== undefined) worker["max-parallelism"] = settings.maxParallelism;
  // What the worker advertises (first, before its host's own), not what it can run: without
  // emulators (binfmt_misc) on the host, a RUN of another architecture's binary fails with
  // "exec format error" (tests/integration/buildx-fleet.test.ts).
  if (settings.platforms.length > 0) worker.platforms = settings.platforms;

  const registry: Record<string, Record<string, unknown>> = {};
  if (settings.registryMirrors.length > 0) {
    registry["docker.io"] = { mirrors: settings.registryMirrors.map((m) => m.replace(/^https?:\/\//, "")) };
    for (const mirror of settings.registryMirrors.filter((m) => m.startsWith("http://"))) {
      registry[mirror.slice("http://".length)] = { http: true, insecure: true };
    }
  }

  const document: Record<string, unknown> = {
    debug: settings.debug,
    worker: { oci: worker, containerd: { enabled: false } },
  };
  if (Object.keys(registry).length > 0) document.registry = registry;
  return `# Rendered by buildkit-stack; edit the stack configuration, not this file.\n${toToml(document)}\n`;
}
