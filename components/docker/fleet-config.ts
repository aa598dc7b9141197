/**
 * `buildkit:hosts` → validated settings for every host of a {@link BuildkitFleet}.
 *
 * A fleet is the stack's own `buildkit:*` configuration (the base) plus a list
 * of hosts, each with a name, how to reach its Docker engine and overrides of
 * any `buildkit:*` setting. Each host's settings are the base with its
 * overrides on top, parsed by {@link parseDockerSettings} itself, so a host is held
 * to exactly the rules a single-host stack is. Every problem names its host;
 * all problems of all hosts are reported together.
 */
import { z } from "zod";

import { CONFIG_NAMESPACE, ConfigError } from "../core/config-keys";
import { DockerSettings, FLEET_HOSTS_KEY, parseDockerSettings, StackContext } from "./config";

/** PEM material the Docker client presents to a `tcp://` engine started with `--tlsverify`. */
export interface DockerTlsMaterial {
  /** CA that signed the engine's certificate (docker's `ca.pem`). */
  ca: string;
  /** Client certificate (docker's `cert.pem`). */
  cert: string;
  /** Client private key (docker's `key.pem`). */
  key: string;
}

/** One host of the fleet, validated. */
export interface FleetHostSettings {
  /** The host's name: part of every resource name and of the docker object names derived for it. */
  name: string;
  /** The daemon on this host: base configuration with the host's overrides, parsed by parseDockerSettings. */
  settings: DockerSettings;
  /** Docker TLS client material, for a `tcp://` engine. */
  dockerTls?: DockerTlsMaterial;
}

const HOST_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const HOST_NAME_FORM = "1 to 32 lowercase letters, digits or '-', starting and ending with a letter or digit";

/** Fields of a host entry that are about reaching the host, not settings of its daemon. */
const DOCKER_TLS_FIELDS = { dockerTlsCa: "ca", dockerTlsCert: "cert", dockerTlsKey: "key" } as const;
type DockerTlsField = keyof typeof DOCKER_TLS_FIELDS;
const HOST_FIELDS = ["name", ...Object.keys(DOCKER_TLS_FIELDS)];

const hostListSchema = z.array(z.record(z.string(), z.unknown()));

/**
 * Parses the fleet from raw config (as `pulumi.runtime.allConfig()` holds it).
 * Returns `undefined` when `buildkit:hosts` is not set: the stack is a single
 * host, exactly as before fleets existed. Throws a {@link ConfigError} listing
 * every problem, each naming its host.
 */
export function parseFleetSettings(raw: Record<string, unknown>, context: StackContext): FleetHostSettings[] | undefined {
  const hostsKey = `${CONFIG_NAMESPACE}:${FLEET_HOSTS_KEY}`;
  const rawHosts = raw[hostsKey] ?? raw[FLEET_HOSTS_KEY];
  if (rawHosts === undefined) return undefined;

  const list = hostListSchema.safeParse(typeof rawHosts === "string" ? safeJson(rawHosts) : rawHosts);
  if (!list.success || list.data.length === 0) {
    throw new ConfigError([
      `${hostsKey} is ${typeof rawHosts === "string" ? rawHosts : JSON.stringify(rawHosts)}; expected a non-empty list of hosts, ` +
        `each like {"name": "build-1", "dockerHost": "ssh://user@host"} with optional overrides of any ${CONFIG_NAMESPACE}:* setting ` +
        `(remove ${hostsKey} for a single-host stack)`,
    ]);
  }

  const base = Object.fromEntries(Object.entries(raw).filter(([key]) => key !== hostsKey && key !== FLEET_HOSTS_KEY));
  const problemsByText = new Map<string, string[]>();
  const report = (host: string, problem: string) => problemsByText.set(problem, [...(problemsByText.get(problem) ?? []), host]);
  const hosts: FleetHostSettings[] = [];
  const seenNames = new Set<string>();

  list.data.forEach((entry, index) => {
    const label = typeof entry.name === "string" && entry.name !== "" ? entry.name : `#${index}`;
    const where = `${hostsKey}[${index}]`;
    if (typeof entry.name !== "string" || !HOST_NAME_PATTERN.test(entry.name)) {
      report(label, `${where}.name is ${JSON.stringify(entry.name)}; expected ${HOST_NAME_FORM}`);
    } else if (seenNames.has(entry.name)) {
      report(label, `${where}.name ${JSON.stringify(entry.name)} is used by an earlier host; every host needs its own name`);
    }
    if (typeof entry.name === "string") seenNames.add(entry.name);

    const overrides = Object.fromEntries(
      Object.entries(entry)
        .filter(([key]) => !HOST_FIELDS.includes(key))
        .map(([key, value]) => [`${CONFIG_NAMESPACE}:${key.replace(/^buildkit:/, "")}`, value]),
    );
    if (`${hostsKey}` in overrides) report(label, `${where} sets ${hostsKey}; hosts cannot be nested`);
    delete overrides[hostsKey];

    let settings: DockerSettings | undefined;
    try {
      // Names derived from the host go in before parsing, so every rule (a TLS certificate's names, shared objects)
      // judges the names this host will really use.
      settings = parseDockerSettings(withHostNames({ ...base, ...overrides }, label, context), context);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) report(label, problem);
    }
    const dockerTls = parseDockerTls(entry, where, settings?.dockerHost ?? stringOrUndefined(overrides[`${CONFIG_NAMESPACE}:dockerHost`] ?? base[`${CONFIG_NAMESPACE}:dockerHost`]), (p) => report(label, p));
    if (settings && HOST_NAME_PATTERN.test(label)) {
      hosts.push({ name: label, settings, dockerTls });
    }
  });

  for (const problem of sharedObjectProblems(hosts)) report(problem.host, problem.text);

  if (problemsByText.size > 0) {
    throw new ConfigError(
      [...problemsByText].map(([problem, names]) => `${names.length === 1 ? "host" : "hosts"} ${names.map((n) => JSON.stringify(n)).join(", ")}: ${problem}`),
    );
  }
  return hosts;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/**
 * A `tcp://` engine is reached with TLS only: plaintext Docker API access is
 * root on that host for anyone on the path. The three PEMs go together, and
 * only with a `tcp://` endpoint.
 */
function parseDockerTls(entry: Record<string, unknown>, where: string, dockerHost: string | undefined, report: (problem: string) => void): DockerTlsMaterial | undefined {
  const fields = Object.keys(DOCKER_TLS_FIELDS) as DockerTlsField[];
  const given = fields.filter((field) => entry[field] !== undefined);
  for (const field of given) {
    const value = entry[field];
    if (typeof value !== "string" || !value.includes("-----BEGIN ")) {
      report(`${where}.${field} is [secret]; expected a PEM-encoded ${field === "dockerTlsKey" ? "private key" : "certificate"}, set with \`pulumi config set --secret --path '${where}.${field}'\``);
    }
  }
  const tcp = dockerHost?.startsWith("tcp://") ?? false;
  if (given.length > 0 && given.length < fields.length) {
    const missing = fields.filter((field) => !given.includes(field));
    report(`${given.map((f) => `${where}.${f}`).join(", ")} set but ${missing.map((f) => `${where}.${f}`).join(", ")} not; set all three Docker TLS files (CA, client certificate, client key) or none`);
  } else if (given.length > 0 && !tcp) {
    report(`${where} has Docker TLS material but its dockerHost is ${dockerHost === undefined ? "the local engine" : JSON.stringify(dockerHost)}; TLS material applies only to a tcp:// engine`);
  }
  if (tcp && given.length === 0) {
    report(
      `${where}: dockerHost is ${JSON.stringify(dockerHost)} but no Docker TLS material is set; a plaintext Docker API is root on that host for anyone who reaches the port. ` +
        `Set ${where}.dockerTlsCa, .dockerTlsCert and .dockerTlsKey (secrets), or reach the host over ssh://`,
    );
  }
  if (given.length !== fields.length || given.some((f) => typeof entry[f] !== "string")) return undefined;
  return { ca: entry.dockerTlsCa as string, cert: entry.dockerTlsCert as string, key: entry.dockerTlsKey as string };
}

/**
 * Docker object names not set explicitly are derived from the host's name, so
 * two hosts that share an engine never collide and `docker ps` says which
 * fleet member a container is.
 */
function withHostNames(merged: Record<string, unknown>, host: string, context: StackContext): Record<string, unknown> {
  const named = { ...merged };
  const defaults: [string, string][] = [
    ["containerName", `buildkitd-${host}`],
    ["networkName", `buildkit-${context.stack}-${host}`],
    ["cacheVolumeName", `buildkit-${context.stack}-${host}-cache`],
  ];
  for (const [key, value] of defaults) {
    if (named[`${CONFIG_NAMESPACE}:${key}`] === undefined && named[key] === undefined) named[`${CONFIG_NAMESPACE}:${key}`] = value;
  }
  return named;
}

/**
 * Two hosts on one engine must not claim the same container, network, cache
 * volume or published port: two daemons must never share a state directory,
 * and the second would replace the first's objects.
 */
function sharedObjectProblems(hosts: FleetHostSettings[]): { host: string; text: string }[] {
  const problems: { host: string; text: string }[] = [];
  const claimed = new Map<string, string>();
  for (const host of hosts) {
    const engine = host.settings.dockerHost ?? "the local engine";
    const claims: [string, string | undefined][] = [
      ["container", host.settings.containerName],
      ["network", host.settings.networkName],
      ["cache volume", host.settings.cacheVolumeName],
      ["TCP port", host.settings.tcpPort !== undefined ? `${host.settings.tcpAddress}:${host.settings.tcpPort}` : undefined],
    ];
    for (const [what, value] of claims) {
      if (value === undefined) continue;
      const key = `${engine}\u0000${what}\u0000${value}`;
      const owner = claimed.get(key);
      if (owner) {
        problems.push({ host: host.name, text: `its ${what} ${JSON.stringify(value)} on ${engine} is already host ${JSON.stringify(owner)}'s; give one of them another name` });
      } else {
        claimed.set(key, host.name);
      }
    }
  }
  return problems;
}

/**
 * Reads and validates the fleet from the Pulumi runtime, or `undefined` for a
 * single-host stack. Call it before declaring any resource.
 */
export function loadFleetSettings(): FleetHostSettings[] | undefined {
  // Imported lazily so parseFleetSettings stays usable (and testable) without a Pulumi engine.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  return parseFleetSettings(pulumi.runtime.allConfig(), { stack: pulumi.getStack() });
}
