/**
 * `npm run route -- <repo>:<context> [--stack NAME | --from FILE] [--in-flight FILE] [--all]`
 *
 * Prints which fleet host a build should go to, as shell exports:
 *   eval "$(npm run -s route -- github.com/acme/api:services/api --stack fleet)"
 * The host is chosen by consistent hashing of the key over the fleet's host
 * names (the `hashring` library, ketama-compatible): the same repository and
 * context keep landing on the daemon that holds their cache, and adding or
 * removing a host moves only the keys of that host. BuildKit's own
 * examples/kubernetes/consistenthash and buildx's kubernetes driver
 * (loadbalance=sticky) route the same way; buildx's multi-node builders do not
 * spread same-platform builds at all.
 *
 * Plain hashing lets a few hot keys pile onto one host (docker/buildx#579: a
 * monorepo's builds kept 8 of 10 pods idle). `--in-flight FILE` names the keys
 * building at the same time (one per line, e.g. every context a monorepo
 * pipeline builds for one commit): they are placed with bounded loads
 * (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
 * Loads"): in a fixed order, each key takes the first host of its ring order
 * that holds fewer than the bound, ⌊1.25 × keys / hosts⌋ but never below
 * ⌈keys / hosts⌉, so no host takes more than 1.25× its share and a key leaves
 * its own host only when that host is full. The assignment depends only on the
 * set of keys and the host names, so every job of a pipeline, routing alone,
 * computes the same one. No maintained npm library does bounded loads (hashring,
 * consistent-hash, consistent-hashing, ketama, skeleton-rendezvous, jump hashes:
 * none bounds load), so this is the small layer below on top of hashring.
 *
 * Endpoints come from the stack output `fleetEndpoints` (`--stack`), or from a
 * file holding that output (`--from`), so CI runners without access to the
 * Pulumi backend can route from an artifact. `--all` prints every host in
 * preference order: the next line is where the key goes if the first host is
 * out.
 */
import * as fs from "fs";

import HashRing = require("hashring");

import type { FleetEndpoint } from "../components/docker/buildkit-fleet";
import { parseFlags, UsageError } from "./options";
import { readStackOutput } from "./pulumi-cli";
import { shellQuote } from "./shell";

const USAGE = "usage: npm run route -- <repo>:<context> [--stack NAME | --from FILE] [--in-flight FILE] [--all]";

/** How far above its share of the keys in flight a host may go (c in the bounded-loads paper). */
export const LOAD_FACTOR = 1.25;

/** One ring per host list: a pipeline's jobs route many keys over the same hosts. */
function ringOf<T extends FleetEndpoint>(endpoints: T[]): { ring: HashRing; byName: Map<string, T> } {
  if (endpoints.length === 0) throw new UsageError("the fleet has no hosts");
  // Ring members are host names, not addresses: moving a host to a new
  // address must not move its keys (and its cache) elsewhere.
  return { ring: new HashRing(endpoints.map((endpoint) => endpoint.name)), byName: new Map(endpoints.map((endpoint) => [endpoint.name, endpoint])) };
}

/**
 * The fleet's hosts in preference order for `key`: the first is where it
 * builds. Anything named like a host orders the same way (`npm run buildx
 * --key` orders a builder's nodes by it).
 */
export function routeKey<T extends FleetEndpoint>(endpoints: T[], key: string): T[] {
  const { ring, byName } = ringOf(endpoints);
  return ring.range(key, endpoints.length).map((name) => byName.get(name)!);
}

/** The most keys of `keys` in flight one host of `hosts` may take: never below an even split, never above LOAD_FACTOR × it. */
export function loadBound(keys: number, hosts: number, factor = LOAD_FACTOR): number {
  return Math.max(Math.ceil(keys / hosts), Math.floor((factor * keys) / hosts));
}

/**
 * Consistent hashing with bounded loads: where each of `keys` (the keys in
 * flight together; duplicates count once) builds. Keys are placed in sorted
 * order, so the result depends on the set of keys and the host names only;
 * each takes the first host in its ring order ({@link routeKey}) that holds
 * fewer than {@link loadBound} keys.
 */
export function assignKeys(endpoints: FleetEndpoint[], keys: Iterable<string>, factor = LOAD_FACTOR): Map<string, FleetEndpoint> {
  const { ring, byName } = ringOf(endpoints);
  const unique = [...new Set(keys)].sort();
  const bound = loadBound(unique.length, endpoints.length, factor);
  const load = new Map<string, number>();
  const assigned = new Map<string, FleetEndpoint>();
  for (const key of unique) {
    // Some host always has room: hosts × bound ≥ keys.
    const name = ring.range(key, endpoints.length).find((host) => (load.get(host) ?? 0) < bound)!;
    load.set(name, (load.get(name) ?? 0) + 1);
    assigned.set(key, byName.get(name)!);
  }
  return assigned;
}

/** Shell lines that point buildctl / buildx at `endpoint`. */
export function exportsFor(endpoint: FleetEndpoint): string {
  const lines = [`export BUILDKIT_HOST=${shellQuote(endpoint.buildkitHost)}`];
  // docker-container:// goes through `docker exec` on the host's engine.
  if (endpoint.dockerHost) lines.push(`export DOCKER_HOST=${shellQuote(endpoint.dockerHost)}`);
  // A comment ends at a line break, so parseEndpoints refuses control characters: nothing here can start a command.
  lines.push(`# fleet host: ${shellQuote(endpoint.name)}`);
  return lines.join("\n");
}

/** The keys of an --in-flight file: one per line; blank lines and `#` comments are skipped. */
export function parseInFlight(text: string): string[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
}

/** A routing key as `<repo>:<context path>`; anything else is a usage error naming the form. */
export function checkKey(key: string | undefined, usage: string): string {
  if (!key || !key.includes(":")) throw new UsageError(`expected a key like <repo>:<context path>, got ${JSON.stringify(key ?? "")}\n${usage}`);
  return key;
}

/** Accepts the output as `pulumi stack output --json` prints it; refuses anything else by name. */
export function parseEndpoints(json: string, source: string): FleetEndpoint[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new UsageError(`${source} is not JSON; expected the output of \`pulumi stack output fleetEndpoints --json\``);
  }
  return endpointsOf(value, source);
}

/** {@link parseEndpoints} of a value already read (from all of a stack's outputs, say). */
export function endpointsOf(value: unknown, source: string): FleetEndpoint[] {
  const valid =
    Array.isArray(value) &&
    value.every(
      (e) => e && typeof e.name === "string" && typeof e.buildkitHost === "string" && (e.dockerHost === undefined || typeof e.dockerHost === "string"),
    );
  if (!valid || (value as unknown[]).length === 0) {
    throw new UsageError(`${source} holds no fleet endpoints (a list of {name, buildkitHost, dockerHost?}); is it a fleet stack (buildkit:hosts) or a cluster stack (buildkit:kubeconfig)?`);
  }
  const endpoints = value as FleetEndpoint[];
  // What route prints is eval'd: a line break (or any control character) in a value could end the quoted
  // word's line or the comment and start a command. No host name or address the program outputs has one.
  for (const endpoint of endpoints) {
    for (const field of ["name", "buildkitHost", "dockerHost"] as const) {
      const text = endpoint[field];
      if (text !== undefined && /[\u0000-\u001f\u007f]/.test(text)) {
        throw new UsageError(`${source}: host ${JSON.stringify(endpoint.name)}: ${field} ${JSON.stringify(text)} holds a control character; expected a host name and addresses as \`pulumi stack output fleetEndpoints --json\` prints them`);
      }
    }
  }
  if (new Set(endpoints.map((e) => e.name)).size !== endpoints.length) {
    throw new UsageError(`${source}: host names repeat (${endpoints.map((e) => e.name).join(", ")}); each host is on the ring once, by its name`);
  }
  return endpoints;
}

function readFromStack(stack: string | undefined): FleetEndpoint[] {
  return parseEndpoints(readStackOutput("fleetEndpoints", stack), `the stack output fleetEndpoints${stack ? ` of ${stack}` : ""}`);
}

function readFile(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function main(argv: string[]): void {
  const { flags, positionals } = parseFlags(argv, USAGE, { all: "boolean", stack: "string", from: "string", "in-flight": "string" }, true);
  const { all, stack, from } = flags;
  const inFlightFile = flags["in-flight"];
  if (positionals.length > 1) throw new UsageError(`one key only; got ${positionals.map((p) => JSON.stringify(p)).join(" and ")}\n${USAGE}`);
  const key = checkKey(positionals[0], USAGE);
  if (stack && from) throw new UsageError(`--stack and --from are alternatives\n${USAGE}`);

  const endpoints = from ? parseEndpoints(readFile(from), from) : readFromStack(stack);
  let ranked = routeKey(endpoints, key);
  if (inFlightFile !== undefined) {
    // Bounded loads over the keys in flight, this one included; its ring order follows the host it got.
    const chosen = assignKeys(endpoints, [key, ...parseInFlight(readFile(inFlightFile))]).get(key)!;
    ranked = [chosen, ...ranked.filter((endpoint) => endpoint !== chosen)];
  }
  if (all) {
    for (const endpoint of ranked) console.log([endpoint.name, endpoint.buildkitHost, endpoint.dockerHost ?? ""].join("\t").trimEnd());
  } else {
    console.log(exportsFor(ranked[0]));
  }
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof UsageError ? error.message : error);
    process.exit(2);
  }
}
