/**
 * Stack configuration → validated, unit-resolved settings of a BuildKit daemon
 * on a Docker host ({@link BuildkitStack}).
 *
 * The daemon's own keys and rules are the core's (components/core); this adds
 * what only a Docker host has — docker object names, restart policy, log
 * rotation, labels, /etc/hosts entries, the published address, the engine's
 * endpoint — and the order every rule is checked in. Every problem names the
 * full key, the value given and the form accepted; all are reported together,
 * so a wrong stack file is fixed in one pass. The rule is: a value is either
 * refused here, or it works on the engine exactly as written.
 */
import { isIP } from "node:net";

import { z } from "zod";

import { TCP_PORT } from "../core/buildkitd";
import {
  ConfigError,
  full,
  KeyReading,
  KeySpec,
  KeyTable,
  KeyValues,
  LABEL_PREFIX,
  list,
  pem,
  readKeys,
  refuse,
  show,
  size,
  stringMap,
  wholeNumber,
} from "../core/config-keys";
import {
  cacheFloors,
  DAEMON_KEYS,
  daemonAccessProblems,
  daemonBasis,
  daemonRuleProblems,
  DaemonSettings,
  daemonSettingsOf,
  HOSTNAME_PATTERN,
  memoryFloor,
  sizeFloorProblems,
} from "../core/daemon-settings";
import { tlsProblems, TlsKey } from "../core/tls";
import { MIB, UNIT_POWER } from "../core/units";

/**
 * `buildkit:hosts`: the fleet's host list. Parsed by `fleet-config.ts` (which
 * runs parseDockerSettings once per host); parseDockerSettings itself skips it.
 */
export const FLEET_HOSTS_KEY = "hosts";

export type RestartPolicy = "no" | "always" | "unless-stopped" | "on-failure";

/** PEM material the Docker client presents to a `tcp://` engine started with `--tlsverify`. */
export interface DockerTlsMaterial {
  /** CA that signed the engine's certificate (docker's `ca.pem`). */
  ca: string;
  /** Client certificate (docker's `cert.pem`). */
  cert: string;
  /** Client private key (docker's `key.pem`). */
  key: string;
}

/** Validated settings of a daemon on one Docker host: the core's, plus the host's own. */
export interface DockerSettings extends DaemonSettings {
  containerName: string;
  networkName: string;
  cacheVolumeName: string;
  /** Whole MiB. */
  shmSizeBytes?: number;
  restartPolicy: RestartPolicy;
  restartMaxRetries?: number;
  logMaxSize: string;
  logMaxFiles: number;
  labels: Record<string, string>;
  extraHosts: string[];
  /** Host address the TCP listener is published on. */
  tcpAddress: string;
  dockerHost?: string;
  /** Docker TLS client material for a `tcp://` dockerHost (required there). */
  dockerTls?: DockerTlsMaterial;
}

// Docker requires two characters at least for container and volume names.
const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Network names docker keeps for itself (its predefined networks, and swarm's). */
const RESERVED_NETWORK_NAMES = ["bridge", "host", "none", "default", "ingress", "docker_gwbridge"];
const LOG_SIZE_PATTERN = /^([1-9]\d*)([kmg])$/;

/**
 * CPUs spelt exactly as the docker provider reads them back from the engine
 * (NanoCPUs through its nanoInt64ToDecimalString: "1.0" for a nine-decimal
 * spelling with exactly nine zeros, trailing zeros trimmed otherwise, so 10
 * comes back as "10."). Any other spelling of the same number is a perpetual
 * diff. The provider's nine-zeros rule also rounds some values to one decimal
 * (10.05 → "10.1"): config refuses every value this function does not spell
 * back unchanged.
 */
export function providerCpus(cpus: number): string {
  const nano = Math.round(cpus * 1e9);
  const decimal = (nano / 1e9).toFixed(9);
  if ((decimal.match(/0/g) ?? []).length === 9) return (nano / 1e9).toFixed(1);
  return decimal.replace(/0+$/, "");
}

const cpus: KeySpec<number> = {
  schema: DAEMON_KEYS.cpus.schema.transform((value, ctx) => {
    const spelt = providerCpus(value);
    if (Number(spelt) !== value) {
      return refuse(ctx, `the docker provider reads ${value} back as "${spelt}"${Number(spelt) === 0 ? ", which is no limit at all" : ""}`);
    }
    return value;
  }),
  form: DAEMON_KEYS.cpus.form,
};
const NAME_FORM = "a docker object name: two or more letters, digits, '_', '.', '-', starting with a letter or digit";
/**
 * Longest name the local volume driver can take: it is one directory under
 * /var/lib/docker/volumes, and a file name holds 255 bytes (longer fails at
 * create time with "file name too long").
 */
export const VOLUME_NAME_MAX = 255;
/**
 * DNS limits for the container's name: containers on its network (the smoke
 * test of a TCP listener, builds' clients) resolve it by name through docker's
 * DNS, and a resolver refuses a label over 63 characters or a name over 253.
 */
export const DNS_LABEL_MAX = 63;
export const DNS_NAME_MAX = 253;

const containerNameSpec: KeySpec<string> = {
  schema: z
    .string()
    .regex(NAME_PATTERN)
    .transform((v, ctx) => {
      const long = v.split(".").find((label) => label.length > DNS_LABEL_MAX);
      if (long !== undefined) return refuse(ctx, `its part "${long.slice(0, 20)}…" is ${long.length} characters; containers on its network find it by DNS, where a name's dot-separated parts hold ${DNS_LABEL_MAX} at most`);
      if (v.length > DNS_NAME_MAX) return refuse(ctx, `it is ${v.length} characters; containers on its network find it by DNS, where a name holds ${DNS_NAME_MAX} at most`);
      return v;
    }),
  form: `${NAME_FORM}, at most ${DNS_LABEL_MAX} characters between dots`,
};
const volumeNameSpec: KeySpec<string> = {
  schema: z
    .string()
    .regex(NAME_PATTERN)
    .transform((v, ctx) => (v.length > VOLUME_NAME_MAX ? refuse(ctx, `it is ${v.length} characters; the volume is a directory on the engine's disk, whose names hold ${VOLUME_NAME_MAX}`) : v)),
  form: `${NAME_FORM}, at most ${VOLUME_NAME_MAX} characters`,
};
const networkName: KeySpec<string> = {
  schema: z
    .string()
    .regex(NAME_PATTERN)
    .transform((v, ctx) => (RESERVED_NETWORK_NAMES.includes(v) ? refuse(ctx, `"${v}" is a network docker keeps for itself`) : v)),
  form: `${NAME_FORM}, other than ${RESERVED_NETWORK_NAMES.join(", ")}`,
};

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
 * One name, one address: docker writes every entry to /etc/hosts, and the
 * first line for a name wins there, so a second address for the same name
 * (names compare case-insensitively) would be written and never used; the
 * provider keeps the entries as a set, so a repeated one would be a
 * perpetual diff.
 */
function extraHostConflicts(entries: string[] | undefined): string[] {
  if (!entries) return [];
  const byHost = new Map<string, string[]>();
  for (const entry of entries) {
    const host = entry.slice(0, entry.indexOf(":")).toLowerCase();
    byHost.set(host, [...(byHost.get(host) ?? []), entry]);
  }
  return [...byHost.values()]
    .filter((given) => given.length > 1)
    .map((given) => {
      const addresses = new Set(given.map((e) => e.slice(e.indexOf(":") + 1)));
      const name = given[0].slice(0, given[0].indexOf(":"));
      return addresses.size > 1
        ? `${full("extraHosts")} maps ${JSON.stringify(name)} to ${[...addresses].join(" and ")} (${given.map((e) => JSON.stringify(e)).join(", ")}); list each host once, with the one address it should resolve to`
        : `${full("extraHosts")} lists ${JSON.stringify(given[0])} ${given.length} times; list each host once`;
    });
}

/** Why a container label name is refused, or undefined. */
function labelNameProblem(key: string): string | undefined {
  if (key.trim() === "" || /[\s=]/.test(key)) return `label name ${JSON.stringify(key)} is empty or has a space or '='`;
  const lower = key.toLowerCase();
  if (lower === LABEL_PREFIX || lower.startsWith(`${LABEL_PREFIX}.`)) return `${JSON.stringify(key)} is under ${LABEL_PREFIX}., which the program's own labels use`;
  return undefined;
}

/** Every key a daemon on a Docker host reads, under the `buildkit:` namespace, in the reference's order. */
const KEYS = {
  containerName: containerNameSpec,
  networkName,
  cacheVolumeName: volumeNameSpec,
  image: DAEMON_KEYS.image,
  rootless: DAEMON_KEYS.rootless,
  allowPrivileged: DAEMON_KEYS.allowPrivileged,
  production: DAEMON_KEYS.production,
  memory: DAEMON_KEYS.memory,
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
  labels: stringMap(labelNameProblem, `a map of label names to string values, no name under ${LABEL_PREFIX}.`),
  cacheProtected: DAEMON_KEYS.cacheProtected,
  cacheReservedSpace: DAEMON_KEYS.cacheReservedSpace,
  cacheMaxUsedSpace: DAEMON_KEYS.cacheMaxUsedSpace,
  cacheMinFreeSpace: DAEMON_KEYS.cacheMinFreeSpace,
  maxParallelism: DAEMON_KEYS.maxParallelism,
  registryMirrors: DAEMON_KEYS.registryMirrors,
  extraHosts: list(extraHostProblem, "a list of HOST:IP entries, like [\"db:10.0.0.2\", \"host.docker.internal:host-gateway\"]"),
  debug: DAEMON_KEYS.debug,
  platforms: DAEMON_KEYS.platforms,
  tcpPort: DAEMON_KEYS.tcpPort,
  tcpAddress: {
    schema: z.union([z.ipv4(), z.ipv6()]),
    form: "an IP address of this Docker host to publish the TCP listener on, like 127.0.0.1",
  } as KeySpec<string>,
  tlsCa: DAEMON_KEYS.tlsCa,
  tlsCert: DAEMON_KEYS.tlsCert,
  tlsKey: DAEMON_KEYS.tlsKey,
  tlsClientCert: DAEMON_KEYS.tlsClientCert,
  tlsClientKey: DAEMON_KEYS.tlsClientKey,
  smokeTest: DAEMON_KEYS.smokeTest,
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
  dockerTlsCa: pem("CA certificate of the Docker engine (docker's ca.pem)"),
  dockerTlsCert: pem("Docker client certificate (docker's cert.pem)"),
  dockerTlsKey: pem("Docker client private key (docker's key.pem)"),
  requirePinnedImage: DAEMON_KEYS.requirePinnedImage,
  stopGracePeriod: DAEMON_KEYS.stopGracePeriod,
  tagRegistry: DAEMON_KEYS.tagRegistry,
} satisfies KeyTable;

const DOCKER_TLS_KEYS = ["dockerTlsCa", "dockerTlsCert", "dockerTlsKey"] as const;

/**
 * A `tcp://` engine is reached with TLS only: a plaintext Docker API is root
 * on that host for anyone on the path. The three PEMs go together, and only
 * with a `tcp://` endpoint.
 */
function dockerTlsProblems(reading: KeyReading<typeof KEYS>): string[] {
  const dockerHost = reading.values.dockerHost;
  if (reading.refused("dockerHost")) return [];
  const given = DOCKER_TLS_KEYS.filter(reading.given);
  const tcp = dockerHost?.startsWith("tcp://") ?? false;
  if (given.length > 0 && given.length < DOCKER_TLS_KEYS.length) {
    const missing = DOCKER_TLS_KEYS.filter((key) => !given.includes(key));
    return [`${given.map(full).join(", ")} set but ${missing.map(full).join(", ")} not; set all three Docker TLS files (CA, client certificate, client key) or none`];
  }
  if (given.length > 0 && !tcp) {
    return [
      `${full("dockerTlsCa")}, ${full("dockerTlsCert")} and ${full("dockerTlsKey")} are set but ${full("dockerHost")} is ` +
        `${dockerHost === undefined ? "the local engine" : show(dockerHost)}; Docker TLS material applies only to a tcp:// engine`,
    ];
  }
  if (tcp && given.length === 0) {
    return [
      `${full("dockerHost")} is ${show(dockerHost)} but no Docker TLS material is set; a plaintext Docker API is root on that host for anyone who reaches the port. ` +
        `Set ${full("dockerTlsCa")}, ${full("dockerTlsCert")} and ${full("dockerTlsKey")} (secrets), or reach the host over ssh://`,
    ];
  }
  return [];
}

export type DockerKey = keyof typeof KEYS;
export const DOCKER_KEYS = Object.keys(KEYS) as DockerKey[];
/** Keys whose values are key material: never echoed, stored as Pulumi secrets. */
export const SECRET_KEYS = DOCKER_KEYS.filter((k) => (KEYS as KeyTable)[k].secret);

/** What the program is deploying into. */
export interface StackContext {
  /** The stack's name: per-stack default names. */
  stack: string;
  /**
   * Whether a key (full name) is stored as a Pulumi secret; the program passes
   * the runtime's answer, so key material in plain text is refused. Unset:
   * not checked (raw config from elsewhere: tests, the doctor reading config).
   */
  isSecret?: (key: string) => boolean;
}

/**
 * Parses raw config (as `pulumi.runtime.allConfig()` holds it, keys with or
 * without the `buildkit:` prefix) into a Docker host's settings, or throws a
 * {@link ConfigError} listing every problem.
 */
export function parseDockerSettings(raw: Record<string, unknown>, context: StackContext): DockerSettings {
  const reading = readKeys(raw, KEYS, { skip: [FLEET_HOSTS_KEY], isSecret: context.isSecret });
  const values: KeyValues<typeof KEYS> = reading.values;
  const basis = daemonBasis(reading);
  const containerName = values.containerName ?? "buildkitd";
  const restartPolicy = values.restartPolicy ?? (basis.production ? "unless-stopped" : "no");
  const tcpAddress = values.tcpAddress ?? "127.0.0.1";
  // Clients verify the name they dial against the SANs: the smoke test dials the container on the stack's network,
  // clients the published address. 0.0.0.0 and :: publish on every address of the host, so clients dial a name of
  // yours that the certificate must carry: not checkable here.
  const wildcard = tcpAddress === "0.0.0.0" || tcpAddress === "::";
  const dialled = {
    dns: [containerName],
    ips: wildcard ? [] : [tcpAddress],
    dialledBy: `the smoke test dials tcp://${containerName}:${TCP_PORT} and clients dial ${full("tcpAddress")}`,
  };

  const problems = [...reading.problems];
  problems.push(...sizeFloorProblems(reading, [memoryFloor(basis.production), shmFloor, ...cacheFloors(basis.production)]));
  problems.push(...daemonAccessProblems(basis));
  if (!reading.given("tcpPort") && values.tcpAddress !== undefined) {
    problems.push(`${full("tcpAddress")} is set but ${full("tcpPort")} is not; the address only applies to the TCP listener`);
  }
  problems.push(...tlsProblems({ ...reading, tcpPort: values.tcpPort, formOf: (key: TlsKey) => KEYS[key].form }, dialled));
  if (values.restartMaxRetries !== undefined && restartPolicy !== "on-failure" && !reading.refused("restartPolicy")) {
    problems.push(
      `${full("restartMaxRetries")} is ${values.restartMaxRetries} but ${full("restartPolicy")} is ${show(restartPolicy)}; retries apply only to on-failure`,
    );
  }
  problems.push(...extraHostConflicts(values.extraHosts));
  problems.push(...daemonRuleProblems(basis, problems));
  problems.push(...dockerTlsProblems(reading));
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    containerName,
    networkName: values.networkName ?? `buildkit-${context.stack}`,
    cacheVolumeName: values.cacheVolumeName ?? `buildkit-${context.stack}-cache`,
    ...daemonSettingsOf(basis),
    shmSizeBytes: values.shmSize,
    restartPolicy,
    restartMaxRetries: values.restartMaxRetries,
    logMaxSize: values.logMaxSize ?? "10m",
    logMaxFiles: values.logMaxFiles ?? 3,
    labels: values.labels ?? {},
    extraHosts: values.extraHosts ?? [],
    tcpAddress,
    dockerHost: values.dockerHost,
    dockerTls:
      values.dockerTlsCa && values.dockerTlsCert && values.dockerTlsKey ? { ca: values.dockerTlsCa, cert: values.dockerTlsCert, key: values.dockerTlsKey } : undefined,
  };
}

/** docker ignores a smaller shm size; the container takes it in whole MiB. */
const shmFloor = { key: "shmSize", min: MIB, why: "docker ignores a smaller shm size", wholeMib: "shm size" };

/**
 * The Pulumi runtime's answer to "is this key a secret": the language host
 * hands the program the secret keys' names (PULUMI_CONFIG_SECRET_KEYS), read
 * by the SDK's isConfigSecret. Without it key material in plain text could not
 * be refused, so its absence is an error, not a skipped check.
 */
export function configSecretness(): (key: string) => boolean {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const runtimeConfig = require("@pulumi/pulumi/runtime/config") as { isConfigSecret?: (key: string) => boolean };
  const isConfigSecret = runtimeConfig.isConfigSecret;
  if (typeof isConfigSecret !== "function") throw new Error("@pulumi/pulumi no longer has runtime/config isConfigSecret: cannot tell secret config from plain");
  return (key) => isConfigSecret(key);
}

/**
 * Reads and validates this stack's `buildkit:*` configuration from the Pulumi
 * runtime. Call it before declaring any resource.
 */
export function loadDockerSettings(): DockerSettings {
  // Imported lazily so parseDockerSettings stays usable (and testable) without a Pulumi engine.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  return parseDockerSettings(pulumi.runtime.allConfig(), { stack: pulumi.getStack(), isSecret: configSecretness() });
}
