/**
 * `npm run buildx -- --tls-dir DIR [--stack NAME | --from FILE] [--name BUILDER]`
 *
 * Turns a fleet whose hosts publish buildkitd over TCP with mTLS into one
 * buildx builder with a node per host, for multi-platform builds: writes each
 * host's client certificate, key and CA under DIR/<host>/ and prints the
 * `docker buildx create --driver remote` line for the first host and an
 * `--append` line for every further one, to paste or eval:
 *   eval "$(npm run -s buildx -- --stack fleet --tls-dir ~/.buildkit-fleet)"
 *   docker buildx build --builder buildkit-fleet --platform linux/amd64,linux/arm64 .
 *
 * buildx sends each platform of a build to the first node that advertises it
 * (a node's `--platform` list, from `buildkit:platforms`, else what its daemon
 * reports); it never spreads builds of one platform over several nodes. Hosts
 * of one platform are for `npm run route`, not for this builder.
 *
 * Nodes come from the stack output `fleetBuildxNodes` (`--stack`), or from a
 * file holding it (`--from`, as `pulumi stack output fleetBuildxNodes --json
 * --show-secrets` prints it; it holds client keys, so keep it like one).
 */
import * as fs from "fs";
import * as path from "path";

import type { BuildxNode } from "../components/docker/buildkit-fleet";
import { parseFlags, UsageError } from "./options";
import { keptPrivateFiles } from "./private-files";
import { readStackOutput } from "./pulumi-cli";
import { shellQuote } from "./shell";

const USAGE = "usage: npm run buildx -- --tls-dir DIR [--stack NAME | --from FILE] [--name BUILDER]";
export const DEFAULT_BUILDER = "buildkit-fleet";
/** buildx's own rule for builder and node names (store.ValidateName); it lower-cases them. */
const BUILDX_NAME = /^[a-z][a-z0-9._-]*$/;

/** Where one node's client files go: `DIR/<host>/{ca,cert,key}.pem`. */
export interface NodeFiles {
  ca: string;
  cert: string;
  key: string;
}

/** Accepts the output as `pulumi stack output fleetBuildxNodes --json --show-secrets` prints it; refuses anything else by name. */
export function parseBuildxNodes(json: string, source: string): BuildxNode[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new UsageError(`${source} is not JSON; expected the output of \`pulumi stack output fleetBuildxNodes --json --show-secrets\``);
  }
  if (value === "[secret]") throw new UsageError(`${source} is "[secret]"; read it with --show-secrets`);
  const isStringList = (v: unknown) => Array.isArray(v) && v.every((p) => typeof p === "string");
  const valid =
    Array.isArray(value) &&
    value.length > 0 &&
    value.every(
      (n) =>
        n &&
        typeof n.name === "string" &&
        typeof n.buildkitHost === "string" &&
        (n.platforms === undefined || isStringList(n.platforms)) &&
        (n.tls === undefined || ["serverName", "ca", "cert", "key"].every((k) => typeof n.tls[k] === "string")),
    );
  if (!valid) throw new UsageError(`${source} holds no buildx nodes (a list of {name, buildkitHost, platforms?, tls?}); is it a fleet stack (buildkit:hosts)?`);
  return value as BuildxNode[];
}

/**
 * buildx's remote driver dials every node itself, by its own address: a
 * `docker-container://` endpoint would need that host's DOCKER_HOST, which
 * buildx cannot set per node. So every host must publish buildkitd over TCP,
 * and with mTLS (config refuses plaintext TCP).
 */
export function checkNodes(nodes: BuildxNode[]): void {
  const unreachable = nodes.filter((node) => !node.buildkitHost.startsWith("tcp://") || !node.tls);
  if (unreachable.length > 0) {
    throw new UsageError(
      `${unreachable.map((n) => `host ${JSON.stringify(n.name)} (${n.buildkitHost})`).join(", ")} ${unreachable.length === 1 ? "publishes" : "publish"} no TCP listener; ` +
        "buildx's remote driver dials each node by address and cannot reach a docker-container:// daemon on another engine. " +
        "Give every host buildkit:tcpPort, a tcpAddress its clients reach and the TLS keys (see the README, Scale out), then `pulumi up`",
    );
  }
}

/** buildx's node name for a host: the host's name, which must start with a letter there. */
export function nodeName(host: string): string {
  return /^[a-z]/.test(host) ? host : `host-${host}`;
}

/** The files of each node, by host name, under `tlsDir` (absolute: buildx refuses relative certificate paths). */
export function nodeFiles(tlsDir: string, host: string): NodeFiles {
  const dir = path.join(tlsDir, host);
  return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
}

/**
 * The `docker buildx create` lines that make `builder`: the first host
 * creates it, every further host is appended as a node. Each node is
 * verified against its container name (`servername`), which config
 * guarantees the daemon's certificate carries, whatever address it is dialled at.
 */
export function buildxCreateCommands(nodes: BuildxNode[], builder: string, tlsDir: string): string[] {
  checkNodes(nodes);
  return nodes.map((node, index) => {
    const files = nodeFiles(tlsDir, node.name);
    const driverOpts = `cacert=${files.ca},cert=${files.cert},key=${files.key},servername=${node.tls!.serverName}`;
    const words = [
      "docker", "buildx", "create",
      ...(index === 0 ? [] : ["--append"]),
      "--name", builder,
      "--driver", "remote",
      "--node", nodeName(node.name),
      ...(node.platforms ? ["--platform", node.platforms.join(",")] : []),
      "--driver-opt", driverOpts,
      node.buildkitHost,
    ];
    return words.map(shellQuote).join(" ");
  });
}

/**
 * What the builder will do with each platform, as comment lines: buildx
 * sends a platform to the first node advertising it, so a platform two hosts
 * list goes to the first of them only.
 */
export function platformNotes(nodes: BuildxNode[], builder: string): string[] {
  const notes: string[] = [];
  const firstFor = new Map<string, string>();
  for (const node of nodes) {
    if (!node.platforms) {
      notes.push(`# node ${nodeName(node.name)}: the platforms its daemon reports (no buildkit:platforms)`);
      continue;
    }
    notes.push(`# node ${nodeName(node.name)}: ${node.platforms.join(", ")}`);
    for (const platform of node.platforms) {
      const first = firstFor.get(platform);
      if (first) notes.push(`# ${platform} is also on node ${first}: buildx builds it there only (spread same-platform builds with npm run route)`);
      else firstFor.set(platform, nodeName(node.name));
    }
  }
  if (nodes.every((node) => node.platforms)) notes.push(`# build: docker buildx build --builder ${builder} --platform ${[...firstFor.keys()].join(",")} …`);
  return notes;
}

/**
 * Writes each node's CA, client certificate and key under `tlsDir/<host>/`:
 * the directory and the files the user's alone; a host name that is not one
 * plain path segment is refused before anything is written.
 */
export function writeNodeFiles(nodes: BuildxNode[], tlsDir: string): void {
  checkNodes(nodes);
  for (const node of nodes) {
    try {
      keptPrivateFiles(tlsDir, node.name, { "ca.pem": node.tls!.ca, "cert.pem": node.tls!.cert, "key.pem": node.tls!.key });
    } catch (error) {
      throw new UsageError(`host ${JSON.stringify(node.name)}: ${(error as Error).message}`);
    }
  }
}

function main(argv: string[]): void {
  const { flags } = parseFlags(argv, USAGE, { stack: "string", from: "string", "tls-dir": "string", name: "string" });
  const { stack, from, "tls-dir": tlsDir, name: builder = DEFAULT_BUILDER } = flags;
  if (!tlsDir) throw new UsageError(`--tls-dir is required: where the client certificates go (buildx reads them from files)\n${USAGE}`);
  if (stack && from) throw new UsageError(`--stack and --from are alternatives\n${USAGE}`);
  if (!BUILDX_NAME.test(builder)) throw new UsageError(`--name ${JSON.stringify(builder)} is not a buildx builder name: a lower-case letter, then letters, digits, '.', '_' or '-'`);
  // npm runs scripts in the package's directory; INIT_CWD is where the user typed the command.
  const userDir = process.env.INIT_CWD ?? process.cwd();
  const absoluteDir = path.resolve(userDir, tlsDir);
  // buildx reads --driver-opt as CSV: a comma or quote in a path would split it.
  if (/[",\n]/.test(absoluteDir)) throw new UsageError(`--tls-dir ${JSON.stringify(absoluteDir)} has a comma, quote or newline, which buildx's --driver-opt (CSV) cannot carry; choose another directory`);

  const nodes = from
    ? parseBuildxNodes(fs.readFileSync(path.resolve(userDir, from), "utf8"), from)
    : parseBuildxNodes(readStackOutput("fleetBuildxNodes", stack), `the stack output fleetBuildxNodes${stack ? ` of ${stack}` : ""}`);
  const commands = buildxCreateCommands(nodes, builder, absoluteDir);
  writeNodeFiles(nodes, absoluteDir);
  console.log([...commands, ...platformNotes(nodes, builder)].join("\n"));
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof UsageError ? error.message : error);
    process.exit(2);
  }
}
