/**
 * The one way the stack CLIs reach a stack's Docker engines: which recorded
 * resources live on which engine, how to reach it (its provider's DOCKER_HOST
 * and Docker TLS material, from the state), and whether it answers. A
 * single-host stack has one engine; a fleet (`buildkit:hosts`) one per host,
 * in roll order. A host that does not answer is reported on its own line and
 * the others are still checked: a whole-stack `pulumi preview --refresh` fails
 * as soon as one provider cannot reach its engine, so the checks exclude the
 * unreachable hosts' resources.
 */
import { EngineProbe, probeEngine } from "../components/docker/engine-probe";
import { childName, DOCKER_PROVIDER_TYPE, FLEET_TYPE, hostOfFleetStack, STACK_TYPE } from "../components/resource-types";
import { temporaryPrivateFiles } from "./private-files";
import { shellQuote } from "./shell";
import { RecordedResource, urnName } from "./stack-state";

/** One engine of a stack, as the state records it. */
export interface StackEngine {
  /**
   * The fleet host's name in `buildkit:hosts` (prefixed with the fleet's name
   * when a program declares several fleets); undefined for a single-host stack.
   */
  host?: string;
  /** URN of the docker provider its resources go through, when the state has one. */
  providerUrn?: string;
  /**
   * DOCKER_HOST its provider talks to. The provider records the engine it
   * resolved even without `dockerHost` (then: DOCKER_HOST at deploy time);
   * undefined only when it recorded none (docker's default socket).
   */
  dockerHost?: string;
  /** Docker TLS client files for a `tcp://` engine with `--tlsverify` (PEM). */
  tls?: { ca: string; cert: string; key: string };
  /** Every recorded resource on this engine (a fleet host's: its provider, its BuildkitStack and what that declares). */
  urns: string[];
  /** A fleet host's BuildkitStack name, `<fleet>-<host>`: what the program names the host's resources after. */
  stackName?: string;
}

/** Text inputs of a provider, by name. */
function providerText(provider: RecordedResource, key: string): string | undefined {
  const value = provider.inputs[key];
  return typeof value === "string" && value !== "" ? value : undefined;
}

function engineOf(provider: RecordedResource | undefined, urns: string[], host?: string, stackName?: string): StackEngine {
  const [ca, cert, key] = provider ? [providerText(provider, "caMaterial"), providerText(provider, "certMaterial"), providerText(provider, "keyMaterial")] : [];
  return {
    host,
    providerUrn: provider?.urn,
    dockerHost: provider ? providerText(provider, "host") : undefined,
    tls: ca && cert && key ? { ca, cert, key } : undefined,
    urns,
    stackName,
  };
}

/**
 * The stack's engines: one per fleet host in roll order (a resource belongs
 * to the host whose provider it, or a resource beside it under the same
 * component, goes through), or the single host's one.
 */
export function stackEngines(state: RecordedResource[]): { fleet: boolean; engines: StackEngine[] } {
  const fleets = state.filter((r) => r.type === FLEET_TYPE);
  const byUrn = new Map(state.map((r) => [r.urn, r]));
  if (fleets.length === 0) {
    const provider = state.find((r) => r.type === DOCKER_PROVIDER_TYPE && providerText(r, "host") !== undefined);
    return { fleet: false, engines: [engineOf(provider, state.map((r) => r.urn))] };
  }

  const engines: StackEngine[] = [];
  const engineOfUrn = new Map<string, StackEngine>();
  for (const fleet of fleets) {
    const fleetName = urnName(fleet.urn);
    for (const stack of state.filter((r) => r.type === STACK_TYPE && r.parent === fleet.urn)) {
      const host = hostOfFleetStack(fleetName, urnName(stack.urn));
      if (host === undefined) continue;
      const providerName = childName(urnName(stack.urn), "engine");
      const provider = state.find((r) => r.type === DOCKER_PROVIDER_TYPE && r.parent === fleet.urn && urnName(r.urn) === providerName);
      const engine = engineOf(provider, [], fleets.length > 1 ? `${fleetName}/${host}` : host, urnName(stack.urn));
      engines.push(engine);
      if (provider) engineOfUrn.set(provider.urn, engine);
      engineOfUrn.set(stack.urn, engine);
    }
  }
  // Everything under a host's component, and everything that goes through its provider, is that host's.
  const owner = (resource: RecordedResource): StackEngine | undefined => {
    const providerUrn = resource.provider?.slice(0, resource.provider.lastIndexOf("::"));
    if (providerUrn && engineOfUrn.has(providerUrn)) return engineOfUrn.get(providerUrn);
    for (let urn: string | undefined = resource.urn; urn; urn = byUrn.get(urn)?.parent) {
      if (engineOfUrn.has(urn)) return engineOfUrn.get(urn);
    }
    return undefined;
  };
  for (const resource of state) owner(resource)?.urns.push(resource.urn);
  // Roll order: the order the hosts' providers were created in.
  const position = (engine: StackEngine) => state.findIndex((r) => r.urn === (engine.providerUrn ?? engine.urns[0]));
  return { fleet: true, engines: engines.sort((a, b) => position(a) - position(b)) };
}

/**
 * The engine a URN belongs to: by the recorded resources, else (a resource the
 * program would create) by its name, `<fleet>-<host>-…`, longest host first.
 */
export function engineOfUrn(engines: StackEngine[], urn: string): StackEngine | undefined {
  const recorded = engines.find((engine) => engine.urns.includes(urn));
  if (recorded || engines.length === 1) return recorded ?? engines[0];
  const name = urnName(urn);
  return [...engines]
    .filter((engine) => engine.stackName !== undefined)
    .sort((a, b) => b.stackName!.length - a.stackName!.length)
    .find((engine) => name === engine.stackName || name.startsWith(`${engine.stackName}-`));
}

/** Where an engine is, as a user would write it. */
export function endpointOf(engine: StackEngine): string {
  return engine.dockerHost ?? "the default Docker socket";
}

/** An engine ready for docker and buildctl calls: the environment they need, and its cleanup. */
export interface OpenEngine {
  engine: StackEngine;
  /** This process's environment with the engine's DOCKER_HOST and, for TLS, DOCKER_CERT_PATH and DOCKER_TLS_VERIFY. */
  env: NodeJS.ProcessEnv;
  /** Removes the TLS files written for this engine (also removed if the process ends first). */
  close(): void;
}

/**
 * The docker CLI reads TLS client files from DOCKER_CERT_PATH only; the state
 * holds them as text (the key as a secret), so they become private files for
 * the duration of the check. An engine recorded by address is reached there
 * and nowhere else: an active docker context or TLS setting of the user's
 * shell belongs to another engine.
 */
export function openEngine(engine: StackEngine, base: NodeJS.ProcessEnv = process.env): OpenEngine {
  const env: NodeJS.ProcessEnv = { ...base };
  if (engine.dockerHost) {
    env.DOCKER_HOST = engine.dockerHost;
    delete env.DOCKER_CONTEXT;
  }
  if (!engine.tls) {
    if (engine.dockerHost) {
      delete env.DOCKER_TLS_VERIFY;
      delete env.DOCKER_CERT_PATH;
    }
    return { engine, env, close: () => undefined };
  }
  const files = temporaryPrivateFiles("buildkit-engine-tls", { "ca.pem": engine.tls.ca, "cert.pem": engine.tls.cert, "key.pem": engine.tls.key });
  env.DOCKER_CERT_PATH = files.dir;
  env.DOCKER_TLS_VERIFY = "1";
  return { engine, env, close: () => files.remove() };
}

/** Every engine probed at once (bounded each), so a dead one does not delay the others. */
export function probeEngines(opened: OpenEngine[]): Promise<EngineProbe[]> {
  return Promise.all(opened.map((engine) => probeEngine(engine.env)));
}

/** The line for a host that was not checked: its name, where its engine should be, and why it is not there. */
export function unreachableLine(engine: StackEngine, reason: string): string {
  return `host ${engine.host}: unreachable: the Docker engine at ${endpointOf(engine)} does not answer (${reason})`;
}

/**
 * URNs for `--exclude` when some hosts are unreachable: every recorded
 * resource of those hosts, so pulumi neither refreshes nor plans them (their
 * provider would fail the whole run) while everything else is checked,
 * including what the program would add. Undefined when all hosts answer.
 * Not `--exclude-dependents`: the next host's provider waits on this host's
 * smoke test (the roll), and must still be checked.
 */
export function unreachableExcludes(engines: StackEngine[], unreachable: Set<string>): string[] | undefined {
  if (unreachable.size === 0) return undefined;
  return engines.filter((engine) => engine.host !== undefined && unreachable.has(engine.host)).flatMap((engine) => engine.urns);
}

/**
 * The docker CLI line for one engine, as a user pastes it: DOCKER_HOST for a
 * remote engine, and where the TLS files go for a `--tlsverify` one.
 */
export function dockerCommandFor(engine: StackEngine, args: string[]): string {
  const target = engine.dockerHost ? `DOCKER_HOST=${shellQuote(engine.dockerHost)} ` : "";
  const tls = engine.tls ? "DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=<dir with the host's ca.pem, cert.pem, key.pem> " : "";
  return `${target}${tls}docker ${args.map(shellQuote).join(" ")}`;
}
