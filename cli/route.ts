/**
 * `npm run route -- <repo>:<context> [--stack NAME | --from FILE] [--all]`
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

const USAGE = "usage: npm run route -- <repo>:<context> [--stack NAME | --from FILE] [--all]";

/** The fleet's hosts in preference order for `key`: the first is where it builds. */
export function routeKey(endpoints: FleetEndpoint[], key: string): FleetEndpoint[] {
  if (endpoints.length === 0) throw new UsageError("the fleet has no hosts");
  // Ring members are host names, not addresses: moving a host to a new
  // address must not move its keys (and its cache) elsewhere.
  const ring = new HashRing(endpoints.map((endpoint) => endpoint.name));
  const byName = new Map(endpoints.map((endpoint) => [endpoint.name, endpoint]));
  return ring.range(key, endpoints.length).map((name) => byName.get(name)!);
}

/** Shell lines that point buildctl / buildx at `endpoint`. */
export function exportsFor(endpoint: FleetEndpoint): string {
  const lines = [`export BUILDKIT_HOST=${shellQuote(endpoint.buildkitHost)}`];
  // docker-container:// goes through `docker exec` on the host's engine.
  if (endpoint.dockerHost) lines.push(`export DOCKER_HOST=${shellQuote(endpoint.dockerHost)}`);
  lines.push(`# fleet host: ${endpoint.name}`);
  return lines.join("\n");
}

/** Accepts the output as `pulumi stack output --json` prints it; refuses anything else by name. */
export function parseEndpoints(json: string, source: string): FleetEndpoint[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new UsageError(`${source} is not JSON; expected the output of \`pulumi stack output fleetEndpoints --json\``);
  }
  const valid =
    Array.isArray(value) &&
    value.every(
      (e) => e && typeof e.name === "string" && typeof e.buildkitHost === "string" && (e.dockerHost === undefined || typeof e.dockerHost === "string"),
    );
  if (!valid || (value as unknown[]).length === 0) {
    throw new UsageError(`${source} holds no fleet endpoints (a list of {name, buildkitHost, dockerHost?}); is it a fleet stack (buildkit:hosts)?`);
  }
  return value as FleetEndpoint[];
}

function readFromStack(stack: string | undefined): FleetEndpoint[] {
  return parseEndpoints(readStackOutput("fleetEndpoints", stack), `the stack output fleetEndpoints${stack ? ` of ${stack}` : ""}`);
}

function main(argv: string[]): void {
  const { flags, positionals } = parseFlags(argv, USAGE, { all: "boolean", stack: "string", from: "string" }, true);
  const { all, stack, from } = flags;
  if (positionals.length > 1) throw new UsageError(`one key only; got ${positionals.map((p) => JSON.stringify(p)).join(" and ")}\n${USAGE}`);
  const key = positionals[0];
  if (!key || !key.includes(":")) throw new UsageError(`expected a key like <repo>:<context path>, got ${JSON.stringify(key ?? "")}\n${USAGE}`);
  if (stack && from) throw new UsageError(`--stack and --from are alternatives\n${USAGE}`);

  const endpoints = from ? parseEndpoints(fs.readFileSync(from, "utf8"), from) : readFromStack(stack);
  const ranked = routeKey(endpoints, key);
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
