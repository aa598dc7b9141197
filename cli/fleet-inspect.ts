/**
 * What `drift` and `doctor` need to cover a fleet (`buildkit:hosts`): which
 * recorded resources live on which host, how to reach each host's engine
 * (its provider's DOCKER_HOST and Docker TLS files, from the state), and
 * whether it answers. A host that does not answer is reported on its own line
 * and the others are still checked: a whole-stack `pulumi preview --refresh`
 * fails as soon as one provider cannot reach its engine, so the checks exclude
 * the unreachable hosts' resources.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { DOCKER_PROVIDER_TYPE } from "../components/resource-types";
import { RecordedResource, firstLine, shellQuote, urnName } from "./stack-inspect";

/** The component type `BuildkitFleet` registers (components/docker/buildkit-fleet.ts). */
export const FLEET_TYPE = "buildkit:index:BuildkitFleet";
/** A fleet's provider for host H is `<fleet>-H-docker`: the host's name sits between. */
const PROVIDER_SUFFIX = "-docker";
/** Bound on `docker version` per host: an engine that does not answer in this time is unreachable. */
export const ENGINE_PROBE_TIMEOUT_MS = 20_000;

/** One host of a fleet, as the stack's state records it. */
export interface FleetHost {
  /** The host's name in `buildkit:hosts` (prefixed with the fleet's name when a program declares several fleets). */
  name: string;
  /** The name resources on this host are declared under: `<fleet>-<host>` (its BuildkitStack). */
  stackName: string;
  /** URN of the host's `docker.Provider`. */
  providerUrn: string;
  /**
   * DOCKER_HOST its provider talks to. The provider records the engine it
   * resolved even for a host without `dockerHost` (then: DOCKER_HOST at deploy
   * time); undefined only when it recorded none (docker's default socket).
   */
  dockerHost?: string;
  /** Docker TLS client files for a `tcp://` engine with `--tlsverify` (PEM). */
  tls?: { ca: string; cert: string; key: string };
  /** Every recorded resource on the host: its provider, its BuildkitStack and what that declares. */
  urns: string[];
}

/**
 * The fleet's hosts in roll order, or undefined for a single-host stack (no
 * `BuildkitFleet` in the state). A resource belongs to the host whose fleet
 * provider it, or a resource beside it under the same component, goes through
 * (the smoke test uses the command provider, but sits under its host's stack).
 */
export function fleetHostsOf(state: RecordedResource[]): FleetHost[] | undefined {
  const fleets = state.filter((r) => r.type === FLEET_TYPE);
  if (fleets.length === 0) return undefined;
  const byUrn = new Map(state.map((r) => [r.urn, r]));
  const providers = state.filter((r) => r.type === DOCKER_PROVIDER_TYPE && r.parent !== undefined && byUrn.get(r.parent)?.type === FLEET_TYPE);

  const hosts: FleetHost[] = providers.map((provider) => {
    const fleetName = urnName(provider.parent!);
    const providerName = urnName(provider.urn);
    const prefix = `${fleetName}-`;
    const named = providerName.startsWith(prefix) && providerName.endsWith(PROVIDER_SUFFIX) && providerName.length > prefix.length + PROVIDER_SUFFIX.length;
    const hostName = named ? providerName.slice(prefix.length, -PROVIDER_SUFFIX.length) : providerName;
    const text = (key: string) => (typeof provider.inputs[key] === "string" && provider.inputs[key] !== "" ? (provider.inputs[key] as string) : undefined);
    const [ca, cert, key] = [text("caMaterial"), text("certMaterial"), text("keyMaterial")];
    return {
      name: fleets.length > 1 ? `${fleetName}/${hostName}` : hostName,
      stackName: `${fleetName}-${hostName}`,
      providerUrn: provider.urn,
      dockerHost: text("host"),
      tls: ca && cert && key ? { ca, cert, key } : undefined,
      urns: [provider.urn],
    };
  });

  // Mark the host on each resource that goes through a host's provider, and on its ancestors below the fleet.
  const hostOf = new Map<string, FleetHost>();
  for (const host of hosts) hostOf.set(host.providerUrn, host);
  for (const resource of state) {
    const providerUrn = resource.provider?.slice(0, resource.provider.lastIndexOf("::"));
    const host = providerUrn ? hostOf.get(providerUrn) : undefined;
    if (!host) continue;
    for (let urn: string | undefined = resource.urn; urn && byUrn.get(urn)?.type !== FLEET_TYPE; urn = byUrn.get(urn)?.parent) {
      if (!hostOf.has(urn)) hostOf.set(urn, host);
    }
  }
  // Everything else under a marked component (the smoke test) is that host's too.
  const inherited = (resource: RecordedResource): FleetHost | undefined => {
    for (let urn: string | undefined = resource.urn; urn; urn = byUrn.get(urn)?.parent) {
      const host = hostOf.get(urn);
      if (host) return host;
    }
    return undefined;
  };
  for (const resource of state) {
    const host = inherited(resource);
    if (host && !host.urns.includes(resource.urn)) host.urns.push(resource.urn);
  }
  return hosts;
}

/**
 * The host a URN belongs to: by the recorded resources, else (a resource the
 * program would create) by its name, `<fleet>-<host>-…`, longest host first.
 */
export function hostOfUrn(hosts: FleetHost[], urn: string): FleetHost | undefined {
  const recorded = hosts.find((host) => host.urns.includes(urn));
  if (recorded) return recorded;
  const name = urnName(urn);
  return [...hosts].sort((a, b) => b.stackName.length - a.stackName.length).find((host) => name === host.stackName || name.startsWith(`${host.stackName}-`));
}

/** Where a host's engine is, as a user would write it. */
export function endpointOf(host: FleetHost): string {
  return host.dockerHost ?? "the default Docker socket";
}

/** A host's engine, ready for docker and buildctl calls: the environment they need, and its removal. */
export interface HostEngine {
  host: FleetHost;
  /** This process's environment with the host's DOCKER_HOST and, for TLS, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY. */
  env: NodeJS.ProcessEnv;
  /** Removes the TLS files written for this host. */
  cleanup(): void;
}

/**
 * The docker CLI reads TLS client files from DOCKER_CERT_PATH only; the
 * state holds them as text (the key as a secret), so they are written to a
 * private temporary directory for the duration of the check.
 */
export function openHostEngine(host: FleetHost, base: NodeJS.ProcessEnv = process.env): HostEngine {
  const env: NodeJS.ProcessEnv = { ...base };
  if (host.dockerHost) env.DOCKER_HOST = host.dockerHost;
  delete env.DOCKER_CONTEXT;
  if (!host.tls) {
    // A TLS setting of the user's shell belongs to another engine.
    delete env.DOCKER_TLS_VERIFY;
    delete env.DOCKER_CERT_PATH;
    return { host, env, cleanup: () => undefined };
  }
  // mkdtemp creates the directory 0700; the files are the owner's alone too.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildkit-fleet-tls-"));
  for (const [file, content] of [["ca.pem", host.tls.ca], ["cert.pem", host.tls.cert], ["key.pem", host.tls.key]] as const) {
    fs.writeFileSync(path.join(dir, file), content, { mode: 0o600 });
  }
  env.DOCKER_CERT_PATH = dir;
  env.DOCKER_TLS_VERIFY = "1";
  return { host, env, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export type EngineProbe = { ok: true; version: string } | { ok: false; reason: string };

/**
 * `docker version` against one host, bounded: a host whose engine is down, or
 * whose ssh never answers, costs at most the bound, and says why. Hosts are
 * probed at once, so a dead one does not delay the others.
 */
export function probeEngine(env: NodeJS.ProcessEnv, timeoutMs = ENGINE_PROBE_TIMEOUT_MS): Promise<EngineProbe> {
  return new Promise((resolve) => {
    execFile("docker", ["version", "--format", "{{.Server.Version}}"], { env, timeout: timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      const version = stdout.trim();
      if (!error && version !== "") return resolve({ ok: true, version });
      if (error?.killed) return resolve({ ok: false, reason: `docker version did not answer within ${timeoutMs / 1000}s` });
      // `docker version` prints the client's half even when the server does not answer: the error is what matters.
      resolve({ ok: false, reason: firstLine(stderr) || firstLine(error) || "docker version printed no server version" });
    });
  });
}

/** The line for a host that was not checked: its name, where its engine should be, and why it is not there. */
export function unreachableLine(host: FleetHost, reason: string): string {
  return `host ${host.name}: unreachable: the Docker engine at ${endpointOf(host)} does not answer (${reason})`;
}

/**
 * URNs for `--exclude` when some hosts are unreachable: every recorded
 * resource of those hosts, so pulumi neither refreshes nor plans them (their
 * provider would fail the whole run) while everything else is checked,
 * including what the program would add. Undefined when all hosts answer.
 * Not `--exclude-dependents`: the next host's provider waits on this host's
 * smoke test (the roll), and must still be checked.
 */
export function unreachableExcludes(hosts: FleetHost[], unreachable: Set<string>): string[] | undefined {
  if (unreachable.size === 0) return undefined;
  return hosts.filter((host) => unreachable.has(host.name)).flatMap((host) => host.urns);
}

/**
 * The docker CLI line for one host, as a user pastes it: DOCKER_HOST for a
 * remote engine, and where the TLS files go for a `--tlsverify` one.
 */
export function dockerCommandFor(host: FleetHost, args: string[]): string {
  const target = host.dockerHost ? `DOCKER_HOST=${shellQuote(host.dockerHost)} ` : "";
  const tls = host.tls ? "DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=<dir with the host's ca.pem, cert.pem, key.pem> " : "";
  return `${target}${tls}docker ${args.map(shellQuote).join(" ")}`;
}
