/**
 * What a BuildKit daemon is configured with wherever it runs: the `buildkit:*`
 * keys every target reads, their forms, and the rules between them (limits,
 * garbage collection, the image and its pinning, privileges, mTLS,
 * production). A target (components/docker, components/kubernetes) adds the
 * keys of its own platform and lists, in order, which rules apply.
 */
import { isIP } from "node:net";

import { z } from "zod";

import { DEFAULT_IMAGE, DEFAULT_ROOTLESS_IMAGE } from "./buildkitd";
import { bool, full, KeyReading, KeyTable, KeySpec, list, pem, refuse, show, size, DECIMAL_NUMBER, wholeNumber } from "./config-keys";
import { DEFAULT_STOP_GRACE_SECONDS, MAX_STOP_GRACE_SECONDS } from "./drain";
import {
  hasDigest,
  isBuildkitRepository,
  isPinned,
  isRootlessTag,
  parseImageReference,
  PINNED_FORM,
  registryOf,
  tagRegistryFor,
  TagRegistry,
} from "./image-reference";
import { platformProblem } from "./platforms";
import { TlsSettings, tlsSettingsOf } from "./tls";
import { GIB, MIB, parseDuration, sizeName } from "./units";

/**
 * The smallest memory limit accepted. Measured on Docker 20.10 (cgroup v1,
 * kernel 6.18) with moby/buildkit v0.32.2, deploying the real program through
 * the Automation API with decreasing `buildkit:memory` (smoke test on, stacks
 * b-mem-*, 2026-11-28): 32m, 24m, 20m and 18m became healthy and passed the
 * smoke test (cgroup peak 16.1-17.3 MiB); 16m and 15m became healthy but were
 * OOM-killed during the smoke test's build (6.5m, accepted before, never did).
 * The floor is 32 MiB: the 17 MiB the daemon needs for its smallest build,
 * with headroom for page cache and a healthcheck overlapping a build.
 */
export const MIN_MEMORY_BYTES = 32 * MIB;
/**
 * Production floors. Build steps run inside the daemon's container, so its
 * memory limit is shared by buildkitd and every RUN of every build; and a GC
 * ceiling smaller than a base image and its layers prunes the cache a build
 * just made, so every production build starts cold.
 */
export const MIN_PRODUCTION_MEMORY_BYTES = GIB;
export const MIN_PRODUCTION_CACHE_CEILING_BYTES = GIB;
const MAX_CPUS = 1024;

/** Validated settings of the daemon, units resolved: what every target consumes. */
export interface DaemonSettings {
  image: string;
  rootless: boolean;
  /** Whether this stack may run buildkitd privileged (required unless rootless). */
  allowPrivileged: boolean;
  production: boolean;
  /** Whole MiB, at least {@link MIN_MEMORY_BYTES}. */
  memoryBytes?: number;
  /** At most two decimals. */
  cpus?: number;
  cacheProtected: boolean;
  cacheReservedSpaceBytes?: number;
  cacheMaxUsedSpaceBytes?: number;
  cacheMinFreeSpaceBytes?: number;
  maxParallelism?: number;
  registryMirrors: string[];
  debug: boolean;
  /**
   * Platforms the daemon's worker advertises (`[worker.oci] platforms`), first
   * the default; empty: what buildkitd detects on its host.
   */
  platforms: string[];
  tcpPort?: number;
  tls?: TlsSettings;
  smokeTest: boolean;
  requirePinnedImage: boolean;
  /**
   * Seconds buildkitd gets after SIGTERM to finish in-flight builds when it is
   * replaced or removed, before the platform kills it.
   */
  stopGraceSeconds: number;
  /**
   * Where the image's tag is resolved to its current digest on every preview
   * and up; undefined: the tag is pulled once and a new image behind it is
   * not seen.
   */
  tagRegistry?: TagRegistry;
}

const HOST_LABEL = String.raw`[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?`;
/** A DNS host name: labels of letters, digits and '-', dot-separated. */
export const HOSTNAME_PATTERN = new RegExp(String.raw`^${HOST_LABEL}(?:\.${HOST_LABEL})*$`);
const MIRROR_PATTERN = /^(https?:\/\/)?([^/:\s]+)(?::(\d{1,5}))?$/;

/** Why a registry host entry (`host[:port]`, `http://` for plain HTTP) is refused, or undefined. */
export function registryHostProblem(entry: string): string | undefined {
  const match = MIRROR_PATTERN.exec(entry);
  if (!match) return `"${entry}" is not a host, an optional :port and nothing else`;
  const [, , host, port] = match;
  if (!HOSTNAME_PATTERN.test(host) && isIP(host) !== 4) return `"${host}" is not a host name or IPv4 address`;
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) return `port ${port} is not from 1 to 65535`;
  return undefined;
}

const image: KeySpec<string> = {
  schema: z.string().transform((v, ctx) => {
    const parsed = parseImageReference(v);
    return "reference" in parsed ? v : refuse(ctx, parsed.why);
  }),
  form: "an image reference like moby/buildkit:v0.32.2, registry:5000/moby/buildkit:TAG or moby/buildkit@sha256:<64 hex>",
};

const cpus: KeySpec<number> = {
  schema: z.union([z.number(), z.string().regex(DECIMAL_NUMBER).transform(Number)]).transform((value, ctx) => {
    if (!(value > 0 && value <= MAX_CPUS) || Math.round(value * 100) / 100 !== value) return refuse(ctx);
    return value;
  }),
  form: `a number of CPUs from 0.1 to ${MAX_CPUS} with at most two decimals, like 1, 2.5 or 0.25`,
};

/** The keys every target reads, in the order the configuration reference lists them. */
export const DAEMON_KEYS = {
  image,
  rootless: bool,
  allowPrivileged: bool,
  production: bool,
  memory: size,
  cpus,
  cacheProtected: bool,
  cacheReservedSpace: size,
  cacheMaxUsedSpace: size,
  cacheMinFreeSpace: size,
  maxParallelism: wholeNumber("a whole number of parallel build steps from 1 to 1024", 1, 1024),
  registryMirrors: list(
    registryHostProblem,
    "a list of registry hosts like [\"mirror.example.com\", \"http://host.docker.internal:5000\"] (http:// marks a plain-HTTP mirror)",
  ),
  debug: bool,
  platforms: list(platformProblem, 'a list of platforms like ["linux/arm64"] or ["linux/amd64", "linux/arm/v7"] (os/arch[/variant], linux only; the first is the default)'),
  tcpPort: wholeNumber("a TCP port from 1 to 65535", 1, 65535),
  tlsCa: pem("CA certificate"),
  tlsCert: pem("server certificate"),
  tlsKey: pem("server private key"),
  tlsClientCert: pem("client certificate"),
  tlsClientKey: pem("client private key"),
  smokeTest: bool,
  requirePinnedImage: bool,
  stopGracePeriod: {
    schema: z.union([z.number(), z.string()]).transform((v, ctx) => {
      const seconds = parseDuration(String(v));
      return seconds === undefined || seconds > MAX_STOP_GRACE_SECONDS ? refuse(ctx) : seconds;
    }),
    form: `a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)`,
  } as KeySpec<number>,
  tagRegistry: {
    schema: z.string().transform((v, ctx) => {
      const why = registryHostProblem(v);
      return why === undefined ? v : refuse(ctx, why);
    }),
    form:
      "the registry the engine pulls the image from, host[:port] (http:// for plain HTTP), like http://127.0.0.1:5000 for a local mirror or registry-1.docker.io for Docker Hub",
  } as KeySpec<string>,
} satisfies KeyTable;

export type DaemonKey = keyof typeof DAEMON_KEYS;

/** A target's reading of the stack's config: the daemon's keys among its own. */
export type DaemonReading = KeyReading<typeof DAEMON_KEYS>;

/** The decisions every rule starts from: defaults resolved, refusals known. */
export interface DaemonBasis {
  reading: DaemonReading;
  production: boolean;
  rootless: boolean;
  image: string;
  allowPrivileged: boolean;
}

/** Resolves the defaults every rule needs from what was read. */
export function daemonBasis(reading: DaemonReading): DaemonBasis {
  const { values } = reading;
  const production = values.production ?? false;
  const rootless = values.rootless ?? false;
  return {
    reading,
    production,
    rootless,
    image: values.image ?? (rootless ? DEFAULT_ROOTLESS_IMAGE : DEFAULT_IMAGE),
    allowPrivileged: values.allowPrivileged ?? !production,
  };
}

/** A size key's floor, and why. */
export interface SizeFloor {
  key: string;
  min: number;
  why: string;
  /** The platform sets it in whole MiB (a remainder would be dropped): `limit` or `shm size`, for the message. */
  wholeMib?: string;
}

/** The memory floor: what buildkitd needs, or production's. */
export function memoryFloor(production: boolean): SizeFloor {
  return {
    key: "memory",
    min: production ? MIN_PRODUCTION_MEMORY_BYTES : MIN_MEMORY_BYTES,
    why: production
      ? "in production: build steps share the daemon's limit, and real builds need more"
      : "the least buildkitd needs to become healthy and pass the smoke test, measured",
    wholeMib: "limit",
  };
}

/** GC sizes of a few bytes are a missing unit, not a cache; production's ceiling has a floor of its own. */
export function cacheFloors(production: boolean): SizeFloor[] {
  const missingUnit = "a GC size of a few bytes is a missing unit";
  return [
    { key: "cacheReservedSpace", min: MIB, why: missingUnit },
    {
      key: "cacheMaxUsedSpace",
      min: production ? MIN_PRODUCTION_CACHE_CEILING_BYTES : MIB,
      why: production ? "in production: a smaller ceiling prunes the layers a build just made, so every build starts cold" : missingUnit,
    },
    { key: "cacheMinFreeSpace", min: MIB, why: missingUnit },
  ];
}

/** Sizes the platform would not honour as written, in the order of `floors`. */
export function sizeFloorProblems(reading: KeyReading<KeyTable>, floors: SizeFloor[]): string[] {
  const problems: string[] = [];
  for (const { key, min, why, wholeMib } of floors) {
    const bytes = reading.values[key] as number | undefined;
    if (bytes === undefined) continue;
    const givenAs = `${full(key)} is ${show(reading.rawOf(key))} (${bytes} bytes)`;
    if (bytes < min) {
      problems.push(`${givenAs}; expected at least ${sizeName(min)} (${why})`);
    } else if (wholeMib && bytes % MIB !== 0) {
      problems.push(`${givenAs}; expected a whole number of MiB, like ${Math.floor(bytes / MIB)}m (the container's ${wholeMib} is set in MiB)`);
    }
  }
  return problems;
}

/** buildkitd needs privileges unless it runs rootless, and production must accept them explicitly. */
export function privilegeProblems({ reading, rootless, allowPrivileged }: DaemonBasis): string[] {
  if (rootless || allowPrivileged || reading.refused("rootless") || reading.refused("allowPrivileged")) return [];
  return [
    `${full("allowPrivileged")} is false${reading.values.allowPrivileged === undefined ? " (the default in production)" : ""} but ${full("rootless")} is false; ` +
      `buildkitd needs --privileged unless it runs rootless: set ${full("rootless")} to true, or ${full("allowPrivileged")} to true to accept a privileged daemon`,
  ];
}

/**
 * The rootless image runs buildkitd as user 1000 behind rootlesskit (its socket
 * under /run/user/1000); the privileged image needs privileges. Mixing them
 * gives a daemon that never becomes healthy. Checked for moby/buildkit, whose
 * tags say which is which; other images are taken at their word.
 */
export function rootlessImageProblems({ reading, rootless, image: chosen }: DaemonBasis): string[] {
  if (reading.refused("image") || reading.refused("rootless") || reading.values.image === undefined || !isBuildkitRepository(chosen)) return [];
  if (isRootlessTag(chosen) === rootless) return [];
  return [
    rootless
      ? `${full("image")} is ${show(chosen)} but ${full("rootless")} is true; the rootless daemon needs a moby/buildkit rootless tag, like ${DEFAULT_ROOTLESS_IMAGE}`
      : `${full("image")} is ${show(chosen)}, a rootless image, but ${full("rootless")} is false; set ${full("rootless")} to true, or use a tag without -rootless, like ${DEFAULT_IMAGE}`,
  ];
}

/** The GC floor must not exceed the ceiling. */
export function cacheOrderProblems({ reading }: DaemonBasis): string[] {
  const reserved = reading.values.cacheReservedSpace;
  const ceiling = reading.values.cacheMaxUsedSpace;
  if (reserved === undefined || ceiling === undefined || reserved <= ceiling) return [];
  return [`${full("cacheReservedSpace")} (${reserved} bytes) is above ${full("cacheMaxUsedSpace")} (${ceiling} bytes); the floor must not exceed the ceiling`];
}

/** An http:// and an https:// mirror of one host: the registry section would mark the host plain-HTTP for both. */
export function mirrorConflictProblems({ reading }: DaemonBasis): string[] {
  const byHost = new Map<string, string[]>();
  for (const mirror of reading.values.registryMirrors ?? []) {
    const host = mirror.replace(/^https?:\/\//, "").toLowerCase();
    byHost.set(host, [...(byHost.get(host) ?? []), mirror]);
  }
  return [...byHost.entries()]
    .filter(([, entries]) => entries.length > 1)
    .map(
      ([host, entries]) =>
        `${full("registryMirrors")} lists ${host} ${entries.length} times (${entries.map((e) => JSON.stringify(e)).join(", ")}); ` +
        `list each mirror once${entries.some((e) => e.startsWith("http://")) ? ": its http:// entry would make every entry of that host plain HTTP" : ""}`,
    );
}

/**
 * An empty list would be written as an empty `platforms` (buildkitd then
 * detects its own, so the key would say something it does not do); a platform
 * listed twice is a typo.
 */
export function platformListProblems({ reading }: DaemonBasis): string[] {
  const platforms = reading.values.platforms;
  if (platforms === undefined) return [];
  if (platforms.length === 0) {
    return [`${full("platforms")} is []; expected at least one platform, or no ${full("platforms")} at all for what buildkitd detects on its host`];
  }
  const repeated = platforms.filter((p, index) => platforms.indexOf(p) !== index);
  return repeated.length > 0 ? [`${full("platforms")} lists ${[...new Set(repeated)].map((p) => JSON.stringify(p)).join(", ")} more than once; list each platform once`] : [];
}

/** Production requires limits and a cache ceiling (each not already reported). */
export function productionProblems({ reading, production }: DaemonBasis, reported: string[]): string[] {
  if (!production) return [];
  const problems: string[] = [];
  for (const key of ["memory", "cpus", "cacheMaxUsedSpace"] as const) {
    if (reading.values[key] === undefined && !reported.some((p) => p.startsWith(`${full(key)} `))) {
      problems.push(
        `${full(key)} is required when ${full("production")} is true (expected ${DAEMON_KEYS[key].form}); ` +
          (key === "cacheMaxUsedSpace"
            ? "without a ceiling the build cache grows until the disk is full"
            : "an unbounded daemon can starve everything else on the host"),
      );
    }
  }
  return problems;
}

/**
 * A tag registry that cannot answer for this image: a digest never moves, and
 * an image with a registry of its own is pulled from there by the engine (its
 * Docker Hub mirrors serve Docker Hub images only), so another registry's
 * digest could name an image the engine never pulls.
 */
export function tagRegistryProblems({ reading, image: chosen }: DaemonBasis): string[] {
  const tagRegistry = reading.values.tagRegistry;
  if (tagRegistry === undefined || reading.refused("image")) return [];
  if (hasDigest(chosen)) {
    return [
      `${full("tagRegistry")} is ${show(tagRegistry)} but ${full("image")} is ${show(chosen)}, pinned by digest: a digest never points at another image. ` +
        `Remove ${full("tagRegistry")}, or name a tag to follow`,
    ];
  }
  const registry = registryOf(chosen);
  const host = tagRegistry.replace(/^https?:\/\//, "");
  if (registry !== undefined && registry.toLowerCase() !== host.toLowerCase()) {
    return [
      `${full("tagRegistry")} is ${show(tagRegistry)} but ${full("image")} is ${show(chosen)}, which the engine pulls from ${registry} ` +
        `(registry mirrors serve Docker Hub images only); set ${full("tagRegistry")} to ${registry} (http://${registry} for plain HTTP)`,
    ];
  }
  return [];
}

/** Production (or `requirePinnedImage`) runs an image that does not move. */
export function pinnedImageProblems({ reading, production, image: chosen }: DaemonBasis): string[] {
  if (!(reading.values.requirePinnedImage ?? production) || reading.refused("image") || isPinned(chosen)) return [];
  return [
    `${full("image")} is ${show(chosen)} but ${full("requirePinnedImage")} is in force (default in production); ` +
      `expected ${PINNED_FORM}, like ${DEFAULT_IMAGE}`,
  ];
}

/** Who may run the daemon, and as what: the first of the daemon's rules every target applies. */
export function daemonAccessProblems(basis: DaemonBasis): string[] {
  return [...privilegeProblems(basis), ...rootlessImageProblems(basis)];
}

/**
 * The daemon's rules between keys, in the order every target reports them,
 * after its own checks: GC order, mirrors, platforms, production's required
 * keys (each not already in `reported`), the tag registry, pinning.
 */
export function daemonRuleProblems(basis: DaemonBasis, reported: string[]): string[] {
  const found = [...cacheOrderProblems(basis), ...mirrorConflictProblems(basis), ...platformListProblems(basis)];
  found.push(...productionProblems(basis, [...reported, ...found]));
  found.push(...tagRegistryProblems(basis), ...pinnedImageProblems(basis));
  return found;
}

/** The daemon's settings from a reading without problems. */
export function daemonSettingsOf(basis: DaemonBasis): DaemonSettings {
  const { values } = basis.reading;
  return {
    image: basis.image,
    rootless: basis.rootless,
    allowPrivileged: basis.allowPrivileged,
    production: basis.production,
    memoryBytes: values.memory,
    cpus: values.cpus,
    cacheProtected: values.cacheProtected ?? basis.production,
    cacheReservedSpaceBytes: values.cacheReservedSpace,
    cacheMaxUsedSpaceBytes: values.cacheMaxUsedSpace,
    cacheMinFreeSpaceBytes: values.cacheMinFreeSpace,
    maxParallelism: values.maxParallelism,
    registryMirrors: values.registryMirrors ?? [],
    debug: values.debug ?? false,
    platforms: values.platforms ?? [],
    tcpPort: values.tcpPort,
    tls: tlsSettingsOf(values),
    smokeTest: values.smokeTest ?? true,
    requirePinnedImage: values.requirePinnedImage ?? basis.production,
    stopGraceSeconds: values.stopGracePeriod ?? DEFAULT_STOP_GRACE_SECONDS,
    tagRegistry: values.tagRegistry !== undefined ? tagRegistryFor(basis.image, values.tagRegistry) : undefined,
  };
}
