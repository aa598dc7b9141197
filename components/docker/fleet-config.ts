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
import { configSecretness, DockerSettings, FLEET_HOSTS_KEY, parseDockerSettings, StackContext } from "./config";
import { bindingsCollide } from "./engine-preflight";

/** One host of the fleet, validated. */
export interface FleetHostSettings {
  /** The host's name: part of every resource name and of the docker object names derived for it. */
  name: string;
  /** The daemon on this host: base configuration with the host's overrides, parsed by parseDockerSettings. */
  settings: DockerSettings;
}

const HOST_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const HOST_NAME_FORM = "1 to 32 lowercase letters, digits or '-', starting and ending with a letter or digit";

/** Fields of a host entry that are not settings of its daemon. */
const HOST_FIELDS = ["name"];
/** Settings that belong to one host's engine and may not be given for the whole fleet. */
const PER_HOST_KEYS = ["dockerTlsCa", "dockerTlsCert", "dockerTlsKey"];

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
  const fleetWide = PER_HOST_KEYS.filter((key) => base[`${CONFIG_NAMESPACE}:${key}`] !== undefined || base[key] !== undefined);
  if (fleetWide.length > 0) {
    throw new ConfigError([
      `${fleetWide.map((key) => `${CONFIG_NAMESPACE}:${key}`).join(", ")} set for the whole fleet; each host's engine has its own Docker TLS files: ` +
        `set them on the host, like ${hostsKey}[0].dockerTlsCa (as secrets)`,
    ]);
  }

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

    // A host's overrides are part of buildkit:hosts: secret exactly when that whole key is.
    const isSecret = context.isSecret;
    const hostContext: StackContext = isSecret ? { ...context, isSecret: (key) => (key in overrides ? isSecret(hostsKey) : isSecret(key)) } : context;
    let settings: DockerSettings | undefined;
    try {
      // Names derived from the host go in before parsing, so every rule (a TLS certificate's names, shared objects)
      // judges the names this host will really use.
      settings = parseDockerSettings(withHostNames({ ...base, ...overrides }, label, context), hostContext);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) report(label, problem);
    }
    if (settings && HOST_NAME_PATTERN.test(label)) {
      hosts.push({ name: label, settings });
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

/** How the fleet's rules tell engines apart: by what each host's engine is. */
export interface EngineIdentity {
  /** Equal for two hosts exactly when they reach the same engine. */
  key: string;
  /** How a message names it. */
  description: string;
}

/** Before any engine is asked: hosts whose dockerHost is spelt alike are on one engine. */
export function endpointIdentity(host: FleetHostSettings): EngineIdentity {
  const endpoint = host.settings.dockerHost ?? "the local engine";
  return { key: endpoint, description: endpoint };
}

/**
 * Two hosts on one engine must not claim the same container, network, cache
 * volume or published port: two daemons must never share a state directory,
 * and the second would replace the first's objects. Ports collide by what
 * they bind: `0.0.0.0:P` (or `::`) takes P on every address of the host. The
 * program asks each engine its identity (docker info ID) and applies this rule
 * again with it, so two spellings of one engine are one engine.
 */
export function sharedObjectProblems(
  hosts: FleetHostSettings[],
  identityOf: (host: FleetHostSettings) => EngineIdentity = endpointIdentity,
): { host: string; text: string }[] {
  const problems: { host: string; text: string }[] = [];
  const claims: { host: string; engine: EngineIdentity; what: string; value: string; port?: number; address?: string }[] = [];
  for (const host of hosts) {
    const engine = identityOf(host);
    const { settings } = host;
    const own = [
      { what: "container", value: settings.containerName },
      { what: "network", value: settings.networkName },
      { what: "cache volume", value: settings.cacheVolumeName },
      ...(settings.tcpPort !== undefined
        ? [{ what: "TCP port", value: `${settings.tcpAddress}:${settings.tcpPort}`, port: settings.tcpPort, address: settings.tcpAddress }]
        : []),
    ];
    for (const claim of own) {
      const owner = claims.find(
        (c) =>
          c.engine.key === engine.key &&
          c.what === claim.what &&
          (claim.port === undefined ? c.value === claim.value : c.port === claim.port && bindingsCollide(c.address!, claim.address!)),
      );
      if (owner) {
        problems.push({
          host: host.name,
          text: `its ${claim.what} ${JSON.stringify(claim.value)} on ${engine.description} is already host ${JSON.stringify(owner.host)}'s; give one of them another name`,
        });
      } else {
        claims.push({ host: host.name, engine, ...claim });
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
  return parseFleetSettings(pulumi.runtime.allConfig(), { stack: pulumi.getStack(), isSecret: configSecretness() });
}
