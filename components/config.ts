/**
 * Stack configuration → validated, unit-resolved settings for {@link BuildkitStack}.
 *
 * Every `buildkit:*` key is parsed here and nowhere else, before any resource
 * is declared. Each problem names the full key, the value given and the form
 * accepted; all problems are reported together, so a wrong stack file is fixed
 * in one pass rather than one error per `pulumi up`. The rule is: a value is
 * either refused here, or it works on the engine exactly as written.
 */
import { createPrivateKey, KeyObject, X509Certificate } from "node:crypto";
import { isIP } from "node:net";

import { z } from "zod";

/** The BuildKit release this project is built and tested against. */
export const DEFAULT_BUILDKIT_VERSION = "v0.32.2";
export const DEFAULT_IMAGE = `moby/buildkit:${DEFAULT_BUILDKIT_VERSION}`;
export const DEFAULT_ROOTLESS_IMAGE = `moby/buildkit:${DEFAULT_BUILDKIT_VERSION}-rootless`;

export const CONFIG_NAMESPACE = "buildkit";
/**
 * `buildkit:hosts`: the fleet's host list. Parsed by `fleet-config.ts` (which
 * runs parseSettings once per host); parseSettings itself skips it.
 */
export const FLEET_HOSTS_KEY = "hosts";

/**
 * Prefix of the labels the component puts on what it creates (managed-by,
 * container, production, rootless, allow-privileged). The policy pack judges
 * containers by them, so user labels under it are refused: they would be
 * silently overridden, or worse, pass for the program's own.
 */
export const LABEL_PREFIX = "org.buildkit-stack";

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

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
/** Docker refuses a memory limit under 6 MiB and a CPU limit under 0.01 (NanoCPUs 10,000,000). */
const MAX_CPUS = 1024;

export type RestartPolicy = "no" | "always" | "unless-stopped" | "on-failure";

/** TLS material for the TCP listener, PEM-encoded. */
export interface TlsSettings {
  /** CA that signed both the server and the client certificates. */
  ca: string;
  /** Server certificate presented by buildkitd; its SANs cover the container name and the published address. */
  cert: string;
  /** Server private key. */
  key: string;
  /** Client certificate and key the smoke test (and you) connect with: buildkitd with a CA requires one. */
  clientCert: string;
  clientKey: string;
}

/**
 * Where a tag is resolved to the digest it points at now (`buildkit:tagRegistry`):
 * the registry the engine pulls the image from, asked on every preview.
 */
export interface TagRegistry {
  /** `host[:port]`, as the engine and the docker provider name it (Docker Hub: registry-1.docker.io). */
  host: string;
  /** Plain HTTP (`http://` given): a local mirror; otherwise HTTPS. */
  plainHttp: boolean;
  /** The reference to resolve there: `host/repository:tag` (Docker Hub names get their `library/`). */
  reference: string;
  /** The image as the engine pulls it, without tag or digest (`moby/buildkit`): the container runs `repository@digest`. */
  repository: string;
}

/** Validated settings, units resolved: what the component consumes. */
export interface BuildkitSettings {
  containerName: string;
  networkName: string;
  cacheVolumeName: string;
  image: string;
  rootless: boolean;
  /** Whether this stack may run buildkitd with --privileged (required unless rootless). */
  allowPrivileged: boolean;
  production: boolean;
  /** Whole MiB, at least {@link MIN_MEMORY_BYTES}. */
  memoryBytes?: number;
  /** At most two decimals, spelt back unchanged by {@link providerCpus}. */
  cpus?: number;
  /** Whole MiB. */
  shmSizeBytes?: number;
  restartPolicy: RestartPolicy;
  restartMaxRetries?: number;
  logMaxSize: string;
  logMaxFiles: number;
  labels: Record<string, string>;
  cacheProtected: boolean;
  cacheReservedSpaceBytes?: number;
  cacheMaxUsedSpaceBytes?: number;
  cacheMinFreeSpaceBytes?: number;
  maxParallelism?: number;
  registryMirrors: string[];
  extraHosts: string[];
  debug: boolean;
  /**
   * Platforms the daemon's worker advertises (`[worker.oci] platforms`), first
   * the default; empty: what buildkitd detects on its host.
   */
  platforms: string[];
  tcpPort?: number;
  tcpAddress: string;
  tls?: TlsSettings;
  smokeTest: boolean;
  dockerHost?: string;
  requirePinnedImage: boolean;
  /**
   * Seconds buildkitd gets after SIGTERM to finish in-flight builds when its
   * container is replaced or destroyed, before docker kills it.
   */
  stopGraceSeconds: number;
  /**
   * Where the image's tag is resolved to its current digest on every preview
   * and up; undefined: the tag is pulled once and a new image behind it is
   * not seen.
   */
  tagRegistry?: TagRegistry;
}

/** Raised when the configuration is invalid; `problems` holds one sentence each. */
export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(
      `Invalid stack configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

const SIZE_FORM = "a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples; at most 8191t)";
// A number, then b, or k/m/g/t optionally followed by b or ib: "20ib" is not a size.
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|b)?$/i;
const UNIT_POWER: Record<string, number> = { "": 0, k: 1, m: 2, g: 3, t: 4 };

/**
 * Parses a docker size (`512m`, `4g`, `1.5GiB`, `1048576`) into whole bytes.
 * Undefined for anything else, for zero, and past 2^53 bytes (8 PiB), where
 * neither JavaScript nor Pulumi's numbers hold whole bytes any more (and
 * `9999999t` would overflow docker's int64).
 */
export function parseSize(text: string): number | undefined {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * 1024 ** UNIT_POWER[(match[2] ?? "").toLowerCase()]);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

/**
 * CPUs spelt exactly as the docker provider reads them back from the engine
 * (NanoCPUs through its nanoInt64ToDecimalString: "1.0" for a nine-decimal
 * spelling with exactly nine zeros, trailing zeros trimmed otherwise, so 10
 * comes back as "10."). Any other spelling of the same number is a perpetual
 * diff. The provider's nine-zeros rule also rounds some values to one decimal
 * (0.03 → "0.0", which is no limit at all; 10.05 → "10.1"): config refuses
 * every value this function does not spell back unchanged.
 */
export function providerCpus(cpus: number): string {
  const nano = Math.round(cpus * 1e9);
  const decimal = (nano / 1e9).toFixed(9);
  if ((decimal.match(/0/g) ?? []).length === 9) return (nano / 1e9).toFixed(1);
  return decimal.replace(/0+$/, "");
}

// Docker's reference grammar (distribution/reference), reduced: [registry[:port]/]path[:tag][@digest].
// A first segment is a registry only with a '.' or a ':', or as `localhost`.
const REGISTRY = String.raw`(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?=:))(?::\d{1,5})?`;
const PATH_COMPONENT = String.raw`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`;
const IMAGE_PATTERN = new RegExp(
  String.raw`^(?:(${REGISTRY})\/)?${PATH_COMPONENT}(?:\/${PATH_COMPONENT})*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`,
);
/** distribution/reference's NameTotalLengthMax. */
const IMAGE_NAME_MAX = 255;
// Docker requires two characters at least for container and volume names.
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Network names docker keeps for itself (its predefined networks, and swarm's). */
const RESERVED_NETWORK_NAMES = ["bridge", "host", "none", "default", "ingress", "docker_gwbridge"];
const HOST_LABEL = String.raw`[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?`;
const HOSTNAME_PATTERN = new RegExp(String.raw`^${HOST_LABEL}(?:\.${HOST_LABEL})*$`);
const MIRROR_PATTERN = /^(https?:\/\/)?([^/:\s]+)(?::(\d{1,5}))?$/;
const LOG_SIZE_PATTERN = /^([1-9]\d*)([kmg])$/;
const DECIMAL_INTEGER = /^(?:0|[1-9]\d*)$/;
const DECIMAL_NUMBER = /^\d+(?:\.\d+)?$/;
const DURATION_PATTERN = /^(0|[1-9]\d*)([smh]?)$/;
const DURATION_UNIT_SECONDS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600 };
/** Longest stop grace accepted: an upgrade that waits longer is an outage of its own. */
export const MAX_STOP_GRACE_SECONDS = 3600;
export const DEFAULT_STOP_GRACE_SECONDS = 600;

/** Parses a duration (`90`, `90s`, `10m`, `1h`) into whole seconds. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  return match ? Number(match[1]) * DURATION_UNIT_SECONDS[match[2]] : undefined;
}

/** One known key: how to read it and the form a person should write. */
interface KeySpec<T> {
  schema: z.ZodType<T>;
  form: string;
  secret?: boolean;
}

/** Marks a value as refused, with a reason beyond the form when there is one (shown in parentheses after it). */
const refuse = (ctx: z.RefinementCtx, why = ""): never => {
  ctx.addIssue({ code: "custom", message: why || "refused", params: { why } });
  return z.NEVER;
};

/** The reason a schema gave with {@link refuse}, searched through union branches too. */
function reasonOf(issues: readonly z.core.$ZodIssue[]): string | undefined {
  for (const issue of issues) {
    if (issue.code === "custom" && typeof issue.params?.why === "string" && issue.params.why) return issue.params.why;
    if (issue.code === "invalid_union") {
      const nested = reasonOf(issue.errors.flat());
      if (nested) return nested;
    }
  }
  return undefined;
}

const bool: KeySpec<boolean> = {
  schema: z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]),
  form: "true or false",
};
const size: KeySpec<number> = {
  schema: z.string().transform((v, ctx) => parseSize(v) ?? refuse(ctx)),
  form: SIZE_FORM,
};
/** Whole numbers in plain decimal: `0x10`, `1e3`, `+5`, `007` or ` 5` are typos, not numbers. */
const wholeNumber = (form: string, min: number, max = Number.MAX_SAFE_INTEGER): KeySpec<number> => ({
  schema: z
    .union([z.number(), z.string().regex(DECIMAL_INTEGER).transform(Number)])
    .pipe(z.number().int().min(min).max(max)),
  form,
});
const cpus: KeySpec<number> = {
  schema: z.union([z.number(), z.string().regex(DECIMAL_NUMBER).transform(Number)]).transform((value, ctx) => {
    if (!(value > 0 && value <= MAX_CPUS) || Math.round(value * 100) / 100 !== value) return refuse(ctx);
    const spelt = providerCpus(value);
    if (Number(spelt) !== value) {
      return refuse(ctx, `the docker provider reads ${value} back as "${spelt}"${Number(spelt) === 0 ? ", which is no limit at all" : ""}`);
    }
    return value;
  }),
  form: `a number of CPUs from 0.1 to ${MAX_CPUS} with at most two decimals, like 1, 2.5 or 0.25`,
};
const name: KeySpec<string> = {
  schema: z.string().regex(NAME_PATTERN),
  form: "a docker object name: two or more letters, digits, '_', '.', '-', starting with a letter or digit",
};
const networkName: KeySpec<string> = {
  schema: z
    .string()
    .regex(NAME_PATTERN)
    .transform((v, ctx) => (RESERVED_NETWORK_NAMES.includes(v) ? refuse(ctx, `"${v}" is a network docker keeps for itself`) : v)),
  form: `${name.form}, other than ${RESERVED_NETWORK_NAMES.join(", ")}`,
};
const image: KeySpec<string> = {
  schema: z.string().transform((v, ctx) => {
    const match = IMAGE_PATTERN.exec(v);
    const port = match?.[1]?.split(":")[1];
    if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) return refuse(ctx, `registry port ${port} is not from 1 to 65535`);
    if (match && v.length <= IMAGE_NAME_MAX) return v;
    const first = v.split("/")[0];
    if (v.includes("/") && !/[.:]/.test(first) && first !== "localhost" && first !== first.toLowerCase()) {
      return refuse(ctx, `docker reads a first segment with capitals, "${first}", as a registry host; repository names are lower-case`);
    }
    return refuse(ctx, v.length > IMAGE_NAME_MAX ? `longer than docker's ${IMAGE_NAME_MAX} characters` : "");
  }),
  form: "an image reference like moby/buildkit:v0.32.2, registry:5000/moby/buildkit:TAG or moby/buildkit@sha256:<64 hex>",
};
const pem = (what: string): KeySpec<string> => ({
  schema: z.string().includes("-----BEGIN "),
  form: `a PEM-encoded ${what}, set with \`pulumi config set --secret\``,
  secret: true,
});
/** JSON text as a value; undefined when it is not JSON (a schema then refuses it by its form). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A list given natively or, as `pulumi config` stores it, as a JSON string; entries checked one by one. */
const list = (entry: (value: string) => string | undefined, form: string): KeySpec<string[]> => {
  const entries = z.array(z.string()).transform((values, ctx) => {
    for (const value of values) {
      const why = entry(value);
      if (why !== undefined) return refuse(ctx, why);
    }
    return values;
  });
  return {
    schema: z.union([
      entries,
      z.string().transform((v, ctx) => {
        const result = entries.safeParse(parseJson(v));
        return result.success ? result.data : refuse(ctx, reasonOf(result.error.issues));
      }),
    ]),
    form,
  };
};

/** Why a registry mirror entry is refused, or undefined. */
function mirrorProblem(entry: string): string | undefined {
  const match = MIRROR_PATTERN.exec(entry);
  if (!match) return `"${entry}" is not a host, an optional :port and nothing else`;
  const [, , host, port] = match;
  if (!HOSTNAME_PATTERN.test(host) && isIP(host) !== 4) return `"${host}" is not a host name or IPv4 address`;
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) return `port ${port} is not from 1 to 65535`;
  return undefined;
}

/** Why an extra-hosts entry is refused, or undefined. Docker splits HOST:IP at the first colon. */
function extraHostProblem(entry: string): string | undefined {
  const separator = entry.indexOf(":");
  if (separator < 0) return `"${entry}" has no :IP`;
  const host = entry.slice(0, separator);
  const ip = entry.slice(separator + 1);
  if (!HOSTNAME_PATTERN.test(host)) return `"${host}" is not a host name`;
  // Zone ids (fe80::1%eth0) pass node's isIP but not docker's net.ParseIP.
  if (ip !== "host-gateway" && (isIP(ip) === 0 || ip.includes("%"))) return `"${ip}" is not an IPv4 or IPv6 address, nor host-gateway`;
  return undefined;
}

/**
 * Architectures (GOARCH, as BuildKit and OCI image indexes spell them) a Linux
 * worker can advertise. A misspelt one ("x86_64", "aarch64") would be
 * advertised as written and match no build's --platform.
 */
const PLATFORM_ARCHITECTURES = ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "mips64", "loong64"];
const PLATFORM_PATTERN = /^([a-z]+)\/([a-z0-9]+)(?:\/(v\d+(?:\.\d+)?))?$/;

/** Why a worker platform entry is refused, or undefined. */
function platformProblem(entry: string): string | undefined {
  const match = PLATFORM_PATTERN.exec(entry);
  if (!match) return `"${entry}" is not os/arch or os/arch/variant in lower case`;
  const [, os, arch] = match;
  // buildkitd's OCI worker runs Linux containers; advertising another OS only makes builds for it fail later.
  if (os !== "linux") return `"${entry}": the OCI worker runs linux containers only, not ${os}`;
  if (!PLATFORM_ARCHITECTURES.includes(arch)) return `"${arch}" is not an architecture as Go and OCI spell it (${PLATFORM_ARCHITECTURES.join(", ")})`;
  return undefined;
}

/** Every key this program reads, under the `buildkit:` namespace. */
const KEYS = {
  containerName: name,
  networkName,
  cacheVolumeName: name,
  image,
  rootless: bool,
  allowPrivileged: bool,
  production: bool,
  memory: size,
  cpus,
  shmSize: size,
  restartPolicy: {
    schema: z.enum(["no", "always", "unless-stopped", "on-failure"]),
    form: "one of no, always, unless-stopped, on-failure",
  } as KeySpec<RestartPolicy>,
  restartMaxRetries: wholeNumber("a whole number of retries > 0 (only with restartPolicy on-failure)", 1),
  logMaxSize: {
    schema: z.string().transform((v, ctx) => {
      const match = LOG_SIZE_PATTERN.exec(v);
      return match && Number.isSafeInteger(Number(match[1]) * 1024 ** UNIT_POWER[match[2]]) ? v : refuse(ctx);
    }),
    form: "a json-file log size above zero like 10m (k, m, g)",
  } as KeySpec<string>,
  logMaxFiles: wholeNumber("a whole number of rotated log files from 1 to 100", 1, 100),
  labels: {
    schema: z
      .union([z.record(z.string(), z.string()), z.string().transform((v, ctx) => parseJson(v) ?? refuse(ctx)).pipe(z.record(z.string(), z.string()))])
      .transform(
      (labels, ctx) => {
        for (const key of Object.keys(labels)) {
          if (key.trim() === "" || /[\s=]/.test(key)) return refuse(ctx, `label name ${JSON.stringify(key)} is empty or has a space or '='`);
          const lower = key.toLowerCase();
          if (lower === LABEL_PREFIX || lower.startsWith(`${LABEL_PREFIX}.`)) {
            return refuse(ctx, `${JSON.stringify(key)} is under ${LABEL_PREFIX}., which the program's own labels use`);
          }
        }
        return labels;
      },
    ),
    form: `a map of label names to string values, no name under ${LABEL_PREFIX}.`,
  } as KeySpec<Record<string, string>>,
  cacheProtected: bool,
  cacheReservedSpace: size,
  cacheMaxUsedSpace: size,
  cacheMinFreeSpace: size,
  maxParallelism: wholeNumber("a whole number of parallel build steps from 1 to 1024", 1, 1024),
  registryMirrors: list(
    mirrorProblem,
    "a list of registry hosts like [\"mirror.example.com\", \"http://host.docker.internal:5000\"] (http:// marks a plain-HTTP mirror)",
  ),
  extraHosts: list(extraHostProblem, "a list of HOST:IP entries, like [\"db:10.0.0.2\", \"host.docker.internal:host-gateway\"]"),
  debug: bool,
  platforms: list(platformProblem, 'a list of platforms like ["linux/arm64"] or ["linux/amd64", "linux/arm/v7"] (os/arch[/variant], linux only; the first is the default)'),
  tcpPort: wholeNumber("a TCP port from 1 to 65535", 1, 65535),
  tcpAddress: {
    schema: z.union([z.ipv4(), z.ipv6()]),
    form: "an IP address of this Docker host to publish the TCP listener on, like 127.0.0.1",
  } as KeySpec<string>,
  tlsCa: pem("CA certificate"),
  tlsCert: pem("server certificate"),
  tlsKey: pem("server private key"),
  tlsClientCert: pem("client certificate"),
  tlsClientKey: pem("client private key"),
  smokeTest: bool,
  dockerHost: {
    schema: z.string().transform((v, ctx) => {
      let url: URL;
      try {
        url = new URL(v);
      } catch {
        return refuse(ctx);
      }
      const scheme = url.protocol.slice(0, -1);
      const ok =
        (scheme === "unix" && url.hostname === "" && url.pathname.startsWith("/") && url.pathname.length > 1) ||
        ((scheme === "tcp" || scheme === "ssh") && url.hostname !== "" && (url.pathname === "" || url.pathname === "/")) ||
        (scheme === "npipe" && url.pathname.length > 1);
      return ok ? v : refuse(ctx);
    }),
    form: "a Docker endpoint like unix:///var/run/docker.sock, ssh://user@host or tcp://host:2376",
  } as KeySpec<string>,
  requirePinnedImage: bool,
  stopGracePeriod: {
    schema: z.union([z.number(), z.string()]).transform((v, ctx) => {
      const seconds = parseDuration(String(v));
      if (seconds === undefined || seconds > MAX_STOP_GRACE_SECONDS) {
        ctx.addIssue({ code: "custom", message: "" });
        return z.NEVER;
      }
      return seconds;
    }),
    form: `a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)`,
  } as KeySpec<number>,
  tagRegistry: {
    schema: z.string().transform((v, ctx) => {
      const why = mirrorProblem(v);
      return why === undefined ? v : refuse(ctx, why);
    }),
    form:
      "the registry the engine pulls the image from, host[:port] (http:// for plain HTTP), like http://127.0.0.1:5000 for a local mirror or registry-1.docker.io for Docker Hub",
  } as KeySpec<string>,
} satisfies Record<string, KeySpec<unknown>>;

export type ConfigKey = keyof typeof KEYS;
export const CONFIG_KEYS = Object.keys(KEYS) as ConfigKey[];

type Parsed = { [K in ConfigKey]?: (typeof KEYS)[K] extends KeySpec<infer T> ? T : never };

/** What the program is deploying into: used only for per-stack default names. */
export interface StackContext {
  stack: string;
}

const show = (value: unknown): string =>
  typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
const full = (key: string) => `${CONFIG_NAMESPACE}:${key}`;
const sizeName = (bytes: number) =>
  bytes % GIB === 0 ? `${bytes / GIB}g` : bytes % MIB === 0 ? `${bytes / MIB}m` : `${bytes} bytes`;

/**
 * Parses raw config values (as `pulumi.runtime.allConfig()` holds them, keys
 * with or without the `buildkit:` prefix) into settings, or throws a
 * {@link ConfigError} listing every problem.
 */
export function parseSettings(raw: Record<string, unknown>, context: StackContext): BuildkitSettings {
  const problems: string[] = [];
  const values: Parsed = {};
  const rawOf = (key: ConfigKey) => raw[full(key)] ?? raw[key];

  for (const [rawKey, value] of Object.entries(raw)) {
    const [namespace, key] = rawKey.includes(":") ? rawKey.split(":", 2) : [CONFIG_NAMESPACE, rawKey];
    if (namespace !== CONFIG_NAMESPACE || key === FLEET_HOSTS_KEY) continue;
    // Own keys only: `constructor`, `toString`... are typos too, not settings.
    // (Object.hasOwn is ES2022; the policy pack, which imports this module, compiles for ES2021.)
    const spec = Object.prototype.hasOwnProperty.call(KEYS, key) ? (KEYS as Record<string, KeySpec<unknown>>)[key] : undefined;
    if (!spec) {
      problems.push(`${full(key)} is not a setting this program reads; known settings: ${CONFIG_KEYS.join(", ")}`);
      continue;
    }
    const result = spec.schema.safeParse(value);
    if (result.success) {
      (values as Record<string, unknown>)[key] = result.data;
    } else {
      const given = spec.secret ? "[secret]" : show(value);
      const why = reasonOf(result.error.issues);
      problems.push(`${full(key)} is ${given}; expected ${spec.form}${why ? ` (${why})` : ""}`);
    }
  }

  // Given but refused: already reported, and its default must not be described as what was set.
  const given = (key: ConfigKey) => rawOf(key) !== undefined;
  const refused = (key: ConfigKey) => given(key) && values[key] === undefined;

  const production = values.production ?? false;
  const rootless = values.rootless ?? false;
  const containerName = values.containerName ?? "buildkitd";
  const image = values.image ?? (rootless ? DEFAULT_ROOTLESS_IMAGE : DEFAULT_IMAGE);
  const restartPolicy = values.restartPolicy ?? (production ? "unless-stopped" : "no");
  const tcpAddress = values.tcpAddress ?? "127.0.0.1";

  problems.push(...sizeFloorProblems(values, rawOf, production));

  const allowPrivileged = values.allowPrivileged ?? !production;
  if (!rootless && !allowPrivileged && !refused("rootless") && !refused("allowPrivileged")) {
    problems.push(
      `${full("allowPrivileged")} is false${values.allowPrivileged === undefined ? " (the default in production)" : ""} but ${full("rootless")} is false; ` +
        `buildkitd needs --privileged unless it runs rootless: set ${full("rootless")} to true, or ${full("allowPrivileged")} to true to accept a privileged daemon`,
    );
  }
  if (!refused("image") && !refused("rootless")) problems.push(...rootlessImageProblems(image, rootless, values.image !== undefined));

  problems.push(...tcpProblems(values, given, refused, containerName, tcpAddress));

  if (values.restartMaxRetries !== undefined && restartPolicy !== "on-failure" && !refused("restartPolicy")) {
    problems.push(
      `${full("restartMaxRetries")} is ${values.restartMaxRetries} but ${full("restartPolicy")} is ${show(restartPolicy)}; retries apply only to on-failure`,
    );
  }
  const reserved = values.cacheReservedSpace;
  const ceiling = values.cacheMaxUsedSpace;
  if (reserved !== undefined && ceiling !== undefined && reserved > ceiling) {
    problems.push(
      `${full("cacheReservedSpace")} (${reserved} bytes) is above ${full("cacheMaxUsedSpace")} (${ceiling} bytes); the floor must not exceed the ceiling`,
    );
  }
  problems.push(...mirrorConflictProblems(values.registryMirrors ?? []));
  problems.push(...platformListProblems(values.platforms));
  if (production) {
    const required: ConfigKey[] = ["memory", "cpus", "cacheMaxUsedSpace"];
    for (const key of required) {
      if (values[key] === undefined && !problems.some((p) => p.startsWith(`${full(key)} `))) {
        problems.push(
          `${full(key)} is required when ${full("production")} is true (expected ${KEYS[key].form}); ` +
            (key === "cacheMaxUsedSpace"
              ? "without a ceiling the build cache grows until the disk is full"
              : "an unbounded daemon can starve everything else on the host"),
        );
      }
    }
  }
  if (values.tagRegistry !== undefined && !refused("image")) problems.push(...tagRegistryProblems(image, values.tagRegistry));
  if ((values.requirePinnedImage ?? production) && !refused("image") && !isPinned(image)) {
    problems.push(
      `${full("image")} is ${show(image)} but ${full("requirePinnedImage")} is in force (default in production); ` +
        `expected a digest (@sha256:…) or a tag other than latest, like ${DEFAULT_IMAGE}`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const tls: TlsSettings | undefined =
    values.tlsCa && values.tlsCert && values.tlsKey && values.tlsClientCert && values.tlsClientKey
      ? { ca: values.tlsCa, cert: values.tlsCert, key: values.tlsKey, clientCert: values.tlsClientCert, clientKey: values.tlsClientKey }
      : undefined;

  return {
    containerName,
    networkName: values.networkName ?? `buildkit-${context.stack}`,
    cacheVolumeName: values.cacheVolumeName ?? `buildkit-${context.stack}-cache`,
    image,
    rootless,
    allowPrivileged,
    production,
    memoryBytes: values.memory,
    cpus: values.cpus,
    shmSizeBytes: values.shmSize,
    restartPolicy,
    restartMaxRetries: values.restartMaxRetries,
    logMaxSize: values.logMaxSize ?? "10m",
    logMaxFiles: values.logMaxFiles ?? 3,
    labels: values.labels ?? {},
    cacheProtected: values.cacheProtected ?? production,
    cacheReservedSpaceBytes: reserved,
    cacheMaxUsedSpaceBytes: ceiling,
    cacheMinFreeSpaceBytes: values.cacheMinFreeSpace,
    maxParallelism: values.maxParallelism,
    registryMirrors: values.registryMirrors ?? [],
    extraHosts: values.extraHosts ?? [],
    debug: values.debug ?? false,
    platforms: values.platforms ?? [],
    tcpPort: values.tcpPort,
    tcpAddress,
    tls,
    smokeTest: values.smokeTest ?? true,
    dockerHost: values.dockerHost,
    requirePinnedImage: values.requirePinnedImage ?? production,
    stopGraceSeconds: values.stopGracePeriod ?? DEFAULT_STOP_GRACE_SECONDS,
    tagRegistry: values.tagRegistry !== undefined ? tagRegistryFor(image, values.tagRegistry) : undefined,
  };
}

/** Docker Hub's names: an image without a registry is pulled from there. */
const DOCKER_HUB_HOSTS = ["docker.io", "index.docker.io", "registry-1.docker.io"];
/** Where Docker Hub answers the registry API (`docker.io` itself does not). */
const DOCKER_HUB_API_HOST = "registry-1.docker.io";

/** An image reference split as docker reads it: registry (undefined: Docker Hub), repository path, tag, digest. */
function splitImage(image: string): { registry?: string; path: string; tag: string; digest?: string } {
  const [named, digest] = image.split("@");
  const slash = named.indexOf("/");
  const first = slash < 0 ? "" : named.slice(0, slash);
  // As in the reference grammar above: a first segment is a registry only with a '.' or a ':', or as `localhost`.
  const registry = /[.:]/.test(first) || first === "localhost" ? first : undefined;
  const rest = registry === undefined ? named : named.slice(slash + 1);
  const colon = rest.lastIndexOf(":");
  return {
    registry: registry !== undefined && DOCKER_HUB_HOSTS.includes(registry.toLowerCase()) ? undefined : registry,
    path: colon < 0 ? rest : rest.slice(0, colon),
    tag: colon < 0 ? "latest" : rest.slice(colon + 1),
    digest,
  };
}

/**
 * A tag registry that cannot answer for this image: a digest never moves, and
 * an image with a registry of its own is pulled from there by the engine (its
 * Docker Hub mirrors serve Docker Hub images only), so another registry's
 * digest could name an image the engine never pulls.
 */
function tagRegistryProblems(image: string, tagRegistry: string): string[] {
  const { registry, digest } = splitImage(image);
  const host = tagRegistry.replace(/^https?:\/\//, "");
  if (digest !== undefined) {
    return [
      `${full("tagRegistry")} is ${show(tagRegistry)} but ${full("image")} is ${show(image)}, pinned by digest: a digest never points at another image. ` +
        `Remove ${full("tagRegistry")}, or name a tag to follow`,
    ];
  }
  if (registry !== undefined && registry.toLowerCase() !== host.toLowerCase()) {
    return [
      `${full("tagRegistry")} is ${show(tagRegistry)} but ${full("image")} is ${show(image)}, which the engine pulls from ${registry} ` +
        `(registry mirrors serve Docker Hub images only); set ${full("tagRegistry")} to ${registry} (http://${registry} for plain HTTP)`,
    ];
  }
  return [];
}

/** The resolved form of a valid `tagRegistry` for `image`. */
function tagRegistryFor(image: string, tagRegistry: string): TagRegistry {
  const { registry, path, tag } = splitImage(image);
  const given = tagRegistry.replace(/^https?:\/\//, "");
  const host = DOCKER_HUB_HOSTS.includes(given.toLowerCase()) ? DOCKER_HUB_API_HOST : given;
  // Docker Hub's official images live under library/ (`busybox` is library/busybox), in a mirror too.
  const hubPath = registry === undefined && !path.includes("/") ? `library/${path}` : path;
  return {
    host,
    plainHttp: tagRegistry.startsWith("http://"),
    reference: `${host}/${hubPath}:${tag}`,
    repository: registry === undefined ? path : `${registry}/${path}`,
  };
}

/**
 * Sizes the engine would not honour as written. The container takes memory
 * and shm in whole MiB (a remainder would be dropped; under 1 MiB means no
 * limit or docker's default); GC sizes of a few bytes are a missing unit, not
 * a cache; and production has floors of its own.
 */
function sizeFloorProblems(values: Parsed, rawOf: (key: ConfigKey) => unknown, production: boolean): string[] {
  const problems: string[] = [];
  const floors: { key: ConfigKey; min: number; why: string; wholeMib?: boolean }[] = [
    {
      key: "memory",
      min: production ? MIN_PRODUCTION_MEMORY_BYTES : MIN_MEMORY_BYTES,
      why: production
        ? "in production: build steps share the daemon's limit, and real builds need more"
        : "the least buildkitd needs to become healthy and pass the smoke test, measured",
      wholeMib: true,
    },
    { key: "shmSize", min: MIB, why: "docker ignores a smaller shm size", wholeMib: true },
    { key: "cacheReservedSpace", min: MIB, why: "a GC size of a few bytes is a missing unit" },
    {
      key: "cacheMaxUsedSpace",
      min: production ? MIN_PRODUCTION_CACHE_CEILING_BYTES : MIB,
      why: production
        ? "in production: a smaller ceiling prunes the layers a build just made, so every build starts cold"
        : "a GC size of a few bytes is a missing unit",
    },
    { key: "cacheMinFreeSpace", min: MIB, why: "a GC size of a few bytes is a missing unit" },
  ];
  for (const { key, min, why, wholeMib } of floors) {
    const bytes = values[key] as number | undefined;
    if (bytes === undefined) continue;
    const givenAs = `${full(key)} is ${show(rawOf(key))} (${bytes} bytes)`;
    if (bytes < min) {
      problems.push(`${givenAs}; expected at least ${sizeName(min)} (${why})`);
    } else if (wholeMib && bytes % MIB !== 0) {
      problems.push(`${givenAs}; expected a whole number of MiB, like ${Math.floor(bytes / MIB)}m (the container's ${key === "memory" ? "limit" : "shm size"} is set in MiB)`);
    }
  }
  return problems;
}

/**
 * The rootless image runs buildkitd as user 1000 behind rootlesskit (its socket
 * under /run/user/1000); the privileged image needs --privileged. Mixing them
 * gives a daemon that never becomes healthy. Checked for moby/buildkit, whose
 * tags say which is which; other images are taken at their word.
 */
function rootlessImageProblems(image: string, rootless: boolean, imageGiven: boolean): string[] {
  const match = /^(?:docker\.io\/)?(?:library\/)?moby\/buildkit(?::([\w][\w.-]*))?(?:@sha256:[a-f0-9]{64})?$/.exec(image);
  if (!match || !imageGiven) return [];
  const rootlessTag = /(^|-)rootless$/.test(match[1] ?? "latest");
  if (rootlessTag === rootless) return [];
  return [
    rootless
      ? `${full("image")} is ${show(image)} but ${full("rootless")} is true; the rootless daemon needs a moby/buildkit rootless tag, like ${DEFAULT_ROOTLESS_IMAGE}`
      : `${full("image")} is ${show(image)}, a rootless image, but ${full("rootless")} is false; set ${full("rootless")} to true, or use a tag without -rootless, like ${DEFAULT_IMAGE}`,
  ];
}

/** An http:// and an https:// mirror of one host: the registry section would mark the host plain-HTTP for both. */
function mirrorConflictProblems(mirrors: string[]): string[] {
  const byHost = new Map<string, string[]>();
  for (const mirror of mirrors) {
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
function platformListProblems(platforms: string[] | undefined): string[] {
  if (platforms === undefined) return [];
  if (platforms.length === 0) {
    return [`${full("platforms")} is []; expected at least one platform, or no ${full("platforms")} at all for what buildkitd detects on its host`];
  }
  const repeated = platforms.filter((p, index) => platforms.indexOf(p) !== index);
  return repeated.length > 0 ? [`${full("platforms")} lists ${[...new Set(repeated)].map((p) => JSON.stringify(p)).join(", ")} more than once; list each platform once`] : [];
}

/** A parsed certificate or key, or the problem that it is not one. */
type Parsed509 = { cert?: X509Certificate; key?: KeyObject; problem?: string };

function readCertificate(key: ConfigKey, pemText: string | undefined): Parsed509 {
  if (pemText === undefined) return {};
  try {
    return { cert: new X509Certificate(pemText) };
  } catch (error) {
    return { problem: `${full(key)} is [secret]; expected ${KEYS[key].form} (node:crypto cannot read it as an X.509 certificate: ${(error as Error).message})` };
  }
}

function readKey(key: ConfigKey, pemText: string | undefined): Parsed509 {
  if (pemText === undefined) return {};
  try {
    return { key: createPrivateKey(pemText) };
  } catch (error) {
    return { problem: `${full(key)} is [secret]; expected ${KEYS[key].form} (node:crypto cannot read it as a private key: ${(error as Error).message})` };
  }
}

/**
 * The TCP listener: only with mTLS, and with material that works. buildkitd
 * given a CA requires client certificates, and the smoke test connects to
 * `tcp://<containerName>:1234` on the stack's network, so the server
 * certificate must name the container (and the published address, which is
 * what `buildkitHost` tells clients to dial), be the key's, be signed by the
 * CA, and the client certificate too.
 */
function tcpProblems(
  values: Parsed,
  given: (key: ConfigKey) => boolean,
  refused: (key: ConfigKey) => boolean,
  containerName: string,
  tcpAddress: string,
): string[] {
  const problems: string[] = [];
  const serverKeys = ["tlsCa", "tlsCert", "tlsKey"] as const;
  const clientKeys = ["tlsClientCert", "tlsClientKey"] as const;
  const tlsGiven = [...serverKeys, ...clientKeys].filter(given);
  const serverGiven = serverKeys.filter(given);

  if (!given("tcpPort")) {
    if (values.tcpAddress !== undefined) {
      problems.push(`${full("tcpAddress")} is set but ${full("tcpPort")} is not; the address only applies to the TCP listener`);
    }
    if (tlsGiven.length > 0) {
      problems.push(
        `${tlsGiven.map(full).join(", ")} ${tlsGiven.length === 1 ? "is" : "are"} set but ${full("tcpPort")} is not; ` +
          `TLS material is only for the TCP listener (it would be uploaded into the container for nothing): set ${full("tcpPort")}, or remove them`,
      );
    }
    return problems;
  }
  if (serverGiven.length > 0 && serverGiven.length < serverKeys.length) {
    const missing = serverKeys.filter((k) => !serverGiven.includes(k)).map(full);
    problems.push(
      `${serverGiven.map(full).join(", ")} ${serverGiven.length === 1 ? "is" : "are"} set but ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not; ` +
        `set all three TLS settings (CA, server certificate, server key) or none`,
    );
  }
  if (refused("tcpPort")) return problems;
  if (serverGiven.length === 0) {
    problems.push(
      `${full("tcpPort")} is ${values.tcpPort} but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root. ` +
        `Set ${full("tlsCa")}, ${full("tlsCert")} and ${full("tlsKey")} (as secrets), or remove ${full("tcpPort")}`,
    );
    return problems;
  }
  const clientMissing = clientKeys.filter((k) => !given(k));
  if (clientMissing.length > 0) {
    problems.push(
      `${full("tcpPort")} is ${values.tcpPort} but ${clientMissing.map(full).join(" and ")} ${clientMissing.length === 1 ? "is" : "are"} not set; ` +
        `buildkitd given a CA accepts only clients with a certificate it signed, and the smoke test connects with this one: ` +
        `set ${full("tlsClientCert")} and ${full("tlsClientKey")} (as secrets)`,
    );
  }
  if ([...serverKeys, ...clientKeys].some(refused) || problems.length > 0) return problems;

  const ca = readCertificate("tlsCa", values.tlsCa);
  const server = readCertificate("tlsCert", values.tlsCert);
  const serverKey = readKey("tlsKey", values.tlsKey);
  const client = readCertificate("tlsClientCert", values.tlsClientCert);
  const clientKey = readKey("tlsClientKey", values.tlsClientKey);
  const unreadable = [ca, server, serverKey, client, clientKey].flatMap((p) => (p.problem ? [p.problem] : []));
  if (unreadable.length > 0) return [...problems, ...unreadable];

  const now = new Date();
  const pairs = [
    { certKey: "tlsCert", keyKey: "tlsKey", cert: server.cert!, key: serverKey.key!, usage: "1.3.6.1.5.5.7.3.1", usageName: "serverAuth" },
    { certKey: "tlsClientCert", keyKey: "tlsClientKey", cert: client.cert!, key: clientKey.key!, usage: "1.3.6.1.5.5.7.3.2", usageName: "clientAuth" },
  ] as const;
  for (const { certKey, keyKey, cert, key, usage, usageName } of pairs) {
    if (!cert.checkPrivateKey(key)) problems.push(`${full(keyKey)} is not the private key of ${full(certKey)}; set the key the certificate was issued for`);
    if (!cert.verify(ca.cert!.publicKey)) {
      problems.push(`${full(certKey)} is not signed by ${full("tlsCa")} (issuer ${JSON.stringify(cert.issuer.replace(/\n/g, ", "))}); sign it with that CA, which both sides trust`);
    }
    if (new Date(cert.validTo) < now || new Date(cert.validFrom) > now) {
      problems.push(`${full(certKey)} is valid from ${cert.validFrom} to ${cert.validTo}, not now; issue a current one`);
    }
    if (cert.keyUsage !== undefined && !cert.keyUsage.includes(usage)) {
      problems.push(`${full(certKey)} has extended key usage ${cert.keyUsage.join(", ")} without ${usageName} (${usage}); issue it for ${usageName}`);
    }
  }
  // Clients verify the name they dial against the SANs (Go ignores the CN). 0.0.0.0 and :: publish on every
  // address of the host, so clients dial a name of yours that the certificate must carry: not checkable here.
  const missing: string[] = [];
  if (server.cert!.checkHost(containerName, { subject: "never" }) === undefined) missing.push(`DNS:${containerName}`);
  if (tcpAddress !== "0.0.0.0" && tcpAddress !== "::" && server.cert!.checkIP(tcpAddress) === undefined) missing.push(`IP:${tcpAddress}`);
  if (missing.length > 0) {
    problems.push(
      `${full("tlsCert")} does not cover ${missing.join(" and ")} in its subjectAltName (it has ${server.cert!.subjectAltName ?? "none"}); ` +
        `the smoke test dials tcp://${containerName}:1234 and clients dial ${full("tcpAddress")}: issue it with subjectAltName=${missing.join(",")}`,
    );
  }
  return problems;
}

/** True when the reference names an immutable image: a digest, or a tag other than `latest`. */
export function isPinned(image: string): boolean {
  if (image.includes("@sha256:")) return true;
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  const tag = lastSegment.includes(":") ? lastSegment.slice(lastSegment.indexOf(":") + 1) : "latest";
  return tag !== "latest";
}

/** Keys whose values must be stored encrypted in the stack file. */
export const SECRET_KEYS = CONFIG_KEYS.filter((k) => (KEYS as Record<string, KeySpec<unknown>>)[k].secret);

/**
 * Reads and validates this stack's `buildkit:*` configuration from the Pulumi
 * runtime. Call it before declaring any resource.
 */
export function loadSettings(): BuildkitSettings {
  // Imported lazily so parseSettings stays usable (and testable) without a Pulumi engine.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  return parseSettings(pulumi.runtime.allConfig(), { stack: pulumi.getStack() });
}
