/**
 * Stack configuration → validated, unit-resolved settings for {@link BuildkitStack}.
 *
 * Every `buildkit:*` key is parsed here and nowhere else, before any resource
 * is declared. Each problem names the full key, the value given and the form
 * accepted; all problems are reported together, so a wrong stack file is fixed
 * in one pass rather than one error per `pulumi up`.
 */
import { z } from "zod";

/** The BuildKit release this project is built and tested against. */
export const DEFAULT_BUILDKIT_VERSION = "v0.32.2";
export const DEFAULT_IMAGE = `moby/buildkit:${DEFAULT_BUILDKIT_VERSION}`;
export const DEFAULT_ROOTLESS_IMAGE = `moby/buildkit:${DEFAULT_BUILDKIT_VERSION}-rootless`;

export const CONFIG_NAMESPACE = "buildkit";

export type RestartPolicy = "no" | "always" | "unless-stopped" | "on-failure";

/** TLS material for the TCP listener, PEM-encoded. */
export interface TlsSettings {
  /** CA that signed both the server and the client certificates. */
  ca: string;
  /** Server certificate presented by buildkitd. */
  cert: string;
  /** Server private key. */
  key: string;
  /** Client certificate and key the smoke test (and you) connect with. */
  clientCert?: string;
  clientKey?: string;
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
  memoryBytes?: number;
  cpus?: number;
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

const SIZE_FORM = "a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples)";
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i;
const UNIT_POWER: Record<string, number> = { "": 0, b: 0, k: 1, m: 2, g: 3, t: 4 };

/** Parses a docker size (`512m`, `4g`, `1.5GiB`, `1048576`) into bytes. */
export function parseSize(text: string): number | undefined {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * 1024 ** UNIT_POWER[match[2].toLowerCase()]);
  return bytes > 0 ? bytes : undefined;
}

// Docker's own reference grammar, reduced: [registry[:port]/]path[:tag][@digest].
const IMAGE_PATTERN =
  /^(?:(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const HOST_PORT_PATTERN = /^(?:https?:\/\/)?[a-zA-Z0-9.-]+(?::\d{1,5})?$/;
const EXTRA_HOST_PATTERN = /^[a-zA-Z0-9.-]+:(?:host-gateway|[0-9a-fA-F.:]+)$/;
// Docker requires two characters at least for container and volume names.
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const LOG_SIZE_PATTERN = /^\d+[kmg]$/;
const DURATION_PATTERN = /^(\d+)([smh]?)$/;
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

const bool: KeySpec<boolean> = {
  schema: z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")]),
  form: "true or false",
};
const size: KeySpec<number> = {
  schema: z.string().transform((v, ctx) => parseSize(v) ?? (ctx.addIssue({ code: "custom", message: "" }), z.NEVER)),
  form: SIZE_FORM,
};
const positiveInt = (form: string, max = Number.MAX_SAFE_INTEGER): KeySpec<number> => ({
  schema: z.coerce.number().int().positive().max(max),
  form,
});
const name: KeySpec<string> = {
  schema: z.string().regex(NAME_PATTERN),
  form: "a docker object name: two or more letters, digits, '_', '.', '-', starting with a letter or digit",
};
const pem = (what: string): KeySpec<string> => ({
  schema: z.string().includes("-----BEGIN "),
  form: `a PEM-encoded ${what}, set with \`pulumi config set --secret\``,
  secret: true,
});
const stringList = (pattern: RegExp, form: string): KeySpec<string[]> => ({
  schema: z.union([
    z.array(z.string().regex(pattern)),
    z.string().transform((v, ctx) => {
      try {
        return z.array(z.string().regex(pattern)).parse(JSON.parse(v));
      } catch {
        ctx.addIssue({ code: "custom", message: "" });
        return z.NEVER;
      }
    }),
  ]),
  form,
});

/** Every key this program reads, under the `buildkit:` namespace. */
const KEYS = {
  containerName: name,
  networkName: name,
  cacheVolumeName: name,
  image: {
    schema: z.string().regex(IMAGE_PATTERN),
    form: "an image reference like moby/buildkit:v0.32.2, registry:5000/moby/buildkit:TAG or moby/buildkit@sha256:<64 hex>",
  } as KeySpec<string>,
  rootless: bool,
  allowPrivileged: bool,
  production: bool,
  memory: size,
  cpus: { schema: z.coerce.number().positive().max(1024), form: "a positive number of CPUs, like 1 or 2.5" } as KeySpec<number>,
  shmSize: size,
  restartPolicy: {
    schema: z.enum(["no", "always", "unless-stopped", "on-failure"]),
    form: "one of no, always, unless-stopped, on-failure",
  } as KeySpec<RestartPolicy>,
  restartMaxRetries: positiveInt("a whole number of retries > 0 (only with restartPolicy on-failure)"),
  logMaxSize: { schema: z.string().regex(LOG_SIZE_PATTERN), form: "a json-file log size like 10m (k, m, g)" } as KeySpec<string>,
  logMaxFiles: positiveInt("a whole number of rotated log files > 0", 100),
  labels: {
    schema: z.union([
      z.record(z.string(), z.string()),
      z.string().transform((v, ctx) => {
        try {
          return z.record(z.string(), z.string()).parse(JSON.parse(v));
        } catch {
          ctx.addIssue({ code: "custom", message: "" });
          return z.NEVER;
        }
      }),
    ]),
    form: "a map of label names to string values",
  } as KeySpec<Record<string, string>>,
  cacheProtected: bool,
  cacheReservedSpace: size,
  cacheMaxUsedSpace: size,
  cacheMinFreeSpace: size,
  maxParallelism: positiveInt("a whole number of parallel build steps > 0", 1024),
  registryMirrors: stringList(
    HOST_PORT_PATTERN,
    "a list of registry hosts like [\"mirror.example.com\", \"http://host.docker.internal:5000\"] (http:// marks a plain-HTTP mirror)",
  ),
  extraHosts: stringList(EXTRA_HOST_PATTERN, "a list of HOST:IP entries, like [\"host.docker.internal:host-gateway\"]"),
  debug: bool,
  tcpPort: positiveInt("a TCP port from 1 to 65535", 65535),
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
    schema: z.string().regex(/^(unix|tcp|ssh|npipe):\/\/.+$/),
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

/**
 * Parses raw config values (as `pulumi.runtime.allConfig()` holds them, keys
 * with or without the `buildkit:` prefix) into settings, or throws a
 * {@link ConfigError} listing every problem.
 */
export function parseSettings(raw: Record<string, unknown>, context: StackContext): BuildkitSettings {
  const problems: string[] = [];
  const values: Parsed = {};
  const full = (key: string) => `${CONFIG_NAMESPACE}:${key}`;

  for (const [rawKey, value] of Object.entries(raw)) {
    const [namespace, key] = rawKey.includes(":") ? rawKey.split(":", 2) : [CONFIG_NAMESPACE, rawKey];
    if (namespace !== CONFIG_NAMESPACE) continue;
    // Own keys only: `constructor`, `toString`... are typos too, not settings.
    const spec = Object.hasOwn(KEYS, key) ? (KEYS as Record<string, KeySpec<unknown>>)[key] : undefined;
    if (!spec) {
      problems.push(`${full(key)} is not a setting this program reads; known settings: ${CONFIG_KEYS.join(", ")}`);
      continue;
    }
    const result = spec.schema.safeParse(value);
    if (result.success) {
      (values as Record<string, unknown>)[key] = result.data;
    } else {
      const given = spec.secret ? "[secret]" : show(value);
      problems.push(`${full(key)} is ${given}; expected ${spec.form}`);
    }
  }

  // The container takes memory and shm in whole MiB, where 0 means no limit (memory) or docker's
  // default (shm); docker refuses a memory limit under 6 MiB. Smaller sizes would pass here and then
  // be silently dropped (an unbounded daemon, even in production) or fail only at create time.
  const minimums: [ConfigKey, number, string][] = [
    ["memory", 6 * 1024 ** 2, "6m, docker's minimum memory limit"],
    ["shmSize", 1024 ** 2, "1m"],
  ];
  for (const [key, min, form] of minimums) {
    const bytes = values[key] as number | undefined;
    if (bytes !== undefined && bytes < min) {
      problems.push(
        `${full(key)} is ${show(raw[full(key)] ?? raw[key])} (${bytes} bytes); expected at least ${form} (the container's ${key === "memory" ? "limit" : "shm size"} is set in whole MiB)`,
      );
    }
  }

  // Given but refused: already reported, and its default must not be described as what was set.
  const given = (key: ConfigKey) => raw[key] !== undefined || raw[full(key)] !== undefined;
  const refused = (key: ConfigKey) => given(key) && values[key] === undefined;

  const production = values.production ?? false;
  const rootless = values.rootless ?? false;
  const containerName = values.containerName ?? "buildkitd";
  const image = values.image ?? (rootless ? DEFAULT_ROOTLESS_IMAGE : DEFAULT_IMAGE);
  const restartPolicy = values.restartPolicy ?? (production ? "unless-stopped" : "no");

  const allowPrivileged = values.allowPrivileged ?? !production;
  if (!rootless && !allowPrivileged && !refused("rootless") && !refused("allowPrivileged")) {
    problems.push(
      `${full("allowPrivileged")} is false${values.allowPrivileged === undefined ? " (the default in production)" : ""} but ${full("rootless")} is false; ` +
        `buildkitd needs --privileged unless it runs rootless: set ${full("rootless")} to true, or ${full("allowPrivileged")} to true to accept a privileged daemon`,
    );
  }

  const tlsKeys = ["tlsCa", "tlsCert", "tlsKey"] as const;
  const tlsGiven = tlsKeys.filter((k) => values[k] !== undefined || raw[k] !== undefined || raw[full(k)] !== undefined);
  if (tlsGiven.length > 0 && tlsGiven.length < tlsKeys.length) {
    const missing = tlsKeys.filter((k) => !tlsGiven.includes(k)).map(full);
    problems.push(
      `${tlsGiven.map(full).join(", ")} ${tlsGiven.length === 1 ? "is" : "are"} set but ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not; ` +
        `set all three TLS settings (CA, server certificate, server key) or none`,
    );
  }
  if (given("tlsClientCert") !== given("tlsClientKey")) {
    problems.push(`${full("tlsClientCert")} and ${full("tlsClientKey")} go together; set both or neither`);
  }
  if (values.tcpPort !== undefined && tlsGiven.length === 0) {
    problems.push(
      `${full("tcpPort")} is ${values.tcpPort} but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root. ` +
        `Set ${full("tlsCa")}, ${full("tlsCert")} and ${full("tlsKey")} (as secrets), or remove ${full("tcpPort")}`,
    );
  }
  if (!given("tcpPort") && values.tcpAddress !== undefined) {
    problems.push(`${full("tcpAddress")} is set but ${full("tcpPort")} is not; the address only applies to the TCP listener`);
  }
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
  if ((values.requirePinnedImage ?? production) && !isPinned(image)) {
    problems.push(
      `${full("image")} is ${show(image)} but ${full("requirePinnedImage")} is in force (default in production); ` +
        `expected a digest (@sha256:…) or a tag other than latest, like ${DEFAULT_IMAGE}`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const tls: TlsSettings | undefined =
    values.tlsCa && values.tlsCert && values.tlsKey
      ? {
          ca: values.tlsCa,
          cert: values.tlsCert,
          key: values.tlsKey,
          clientCert: values.tlsClientCert,
          clientKey: values.tlsClientKey,
        }
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
    tcpPort: values.tcpPort,
    tcpAddress: values.tcpAddress ?? "127.0.0.1",
    tls,
    smokeTest: values.smokeTest ?? true,
    dockerHost: values.dockerHost,
    requirePinnedImage: values.requirePinnedImage ?? production,
    stopGraceSeconds: values.stopGracePeriod ?? DEFAULT_STOP_GRACE_SECONDS,
  };
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
