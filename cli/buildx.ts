/**
 * `npm run buildx -- [--stack NAME | --from FILE] [--name BUILDER] [--key REPO:CONTEXT] [--tls-dir DIR]`
 *
 * Prints the `docker buildx create --driver remote` line of a builder's first
 * node and an `--append` line for every further one, to paste or eval:
 *
 * - A fleet whose hosts publish buildkitd over TCP with mTLS: a node per host.
 *   Each host's client certificate, key and CA are written under
 *   `--tls-dir DIR/<host>/` (required), where the lines point:
 *     eval "$(npm run -s buildx -- --stack fleet --tls-dir ~/.buildkit-fleet)"
 *     docker buildx build --builder buildkit-fleet --platform linux/amd64,linux/arm64 .
 * - A cluster stack: a node per replica, at its `kube-pod://` endpoint. buildx
 *   reaches each through `kubectl exec`, run with the KUBECONFIG of the shell
 *   that builds, so the lines start by exporting the stack's kubeconfig. There
 *   are no client files: `--tls-dir` is refused.
 *     eval "$(npm run -s buildx -- --stack cluster --key github.com/acme/api:services/api)"
 *     docker buildx build --builder buildkit-cluster .
 *
 * buildx sends each platform of a build to the first node that advertises it
 * (a node's `--platform` list, from `buildkit:platforms`, else what its daemon
 * reports); it never spreads builds of one platform over several nodes. Hosts
 * of one platform are for `npm run route`; a cluster's replicas share their
 * platforms, so its builder builds everything on its first node. `--key`
 * orders the nodes as `npm run route -- KEY --all` orders the hosts, so the
 * first node is the one holding that key's cache.
 *
 * Nodes come from the stack's outputs (`--stack`: a fleet's `fleetBuildxNodes`,
 * a cluster's `fleetEndpoints` and `kubeconfig`), or from a file holding one
 * output (`--from`): a fleet's `pulumi stack output fleetBuildxNodes --json
 * --show-secrets` (it holds client keys, so keep it like one), or a cluster's
 * `pulumi stack output fleetEndpoints --json`.
 */
import * as fs from "fs";
import * as path from "path";

import type { BuildxNode, FleetEndpoint } from "../components/docker/buildkit-fleet";
import { keptPrivateFiles } from "../components/private-files";
import { parseFlags, UsageError } from "./options";
import { readStackOutput } from "./pulumi-cli";
import { checkKey, endpointsOf, routeKey } from "./route";
import { shellQuote } from "./shell";

const USAGE = [
  "usage: npm run buildx -- [--stack NAME | --from FILE] [--name BUILDER] [--key REPO:CONTEXT] [--tls-dir DIR]",
  "  a fleet's TCP hosts need --tls-dir DIR (where their client certificates go); a cluster's kube-pod:// replicas take none",
].join("\n");
export const DEFAULT_BUILDER = "buildkit-fleet";
export const DEFAULT_CLUSTER_BUILDER = "buildkit-cluster";
/** buildx's own rule for builder and node names (store.ValidateName); it lower-cases them. */
const BUILDX_NAME = /^[a-z][a-z0-9._-]*$/;
const KUBE_POD = "kube-pod://";

/** What a builder is made of: a fleet's hosts with their TLS material, or a cluster's replicas and the kubeconfig that reaches them. */
export type BuilderNodes = { kind: "fleet"; nodes: BuildxNode[] } | { kind: "cluster"; replicas: FleetEndpoint[]; kubeconfig?: string };

/** Where one node's client files go: `DIR/<host>/{ca,cert,key}.pem`. */
export interface NodeFiles {
  ca: string;
  cert: string;
  key: string;
}

/** One node as `docker buildx create` takes it. */
interface CreateNode {
  node: string;
  endpoint: string;
  platforms?: string[];
  driverOpts?: string;
}

/** The lines that make `builder`: the first node creates it, every further one is appended. */
function createLines(builder: string, nodes: CreateNode[]): string[] {
  return nodes.map((node, index) =>
    [
      "docker", "buildx", "create",
      ...(index === 0 ? [] : ["--append"]),
      "--name", builder,
      "--driver", "remote",
      "--node", node.node,
      ...(node.platforms ? ["--platform", node.platforms.join(",")] : []),
      ...(node.driverOpts ? ["--driver-opt", node.driverOpts] : []),
      node.endpoint,
    ]
      .map(shellQuote)
      .join(" "),
  );
}

const NOT_NODES = "expected the output of `pulumi stack output fleetBuildxNodes --json --show-secrets` (a fleet) or of `pulumi stack output fleetEndpoints --json` (a cluster)";

/** Accepts the output as `pulumi stack output fleetBuildxNodes --json --show-secrets` prints it; refuses anything else by name. */
export function parseBuildxNodes(json: string, source: string): BuildxNode[] {
  return buildxNodesOf(parseJson(json, source), source);
}

function parseJson(json: string, source: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    throw new UsageError(`${source} is not JSON; ${NOT_NODES}`);
  }
}

/** {@link parseBuildxNodes} of a value already read. */
function buildxNodesOf(value: unknown, source: string): BuildxNode[] {
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
 * A `--from` file: a list of kube-pod:// endpoints is a cluster's replicas
 * (its `fleetEndpoints`), anything else is read as a fleet's `fleetBuildxNodes`.
 */
export function parseNodesFile(json: string, source: string): BuilderNodes {
  const value = parseJson(json, source);
  const kubePods = Array.isArray(value) && value.length > 0 && value.every((e) => typeof e?.buildkitHost === "string" && e.buildkitHost.startsWith(KUBE_POD));
  return kubePods ? { kind: "cluster", replicas: endpointsOf(value, source) } : { kind: "fleet", nodes: buildxNodesOf(value, source) };
}

/**
 * The nodes of a stack, from all its outputs (`pulumi stack output --json
 * --show-secrets`): a fleet's `fleetBuildxNodes`, or a cluster's
 * `fleetEndpoints` with its `kubeconfig`. A single-host stack is told its one line.
 */
export function nodesOfOutputs(outputs: Record<string, unknown>, stack: string | undefined): BuilderNodes {
  const source = (output: string) => `the stack output ${output}${stack ? ` of ${stack}` : ""}`;
  if (outputs.fleetBuildxNodes !== undefined) return { kind: "fleet", nodes: buildxNodesOf(outputs.fleetBuildxNodes, source("fleetBuildxNodes")) };
  if (typeof outputs.kubeconfig === "string") {
    const replicas = endpointsOf(outputs.fleetEndpoints, source("fleetEndpoints"));
    const other = replicas.find((replica) => !replica.buildkitHost.startsWith(KUBE_POD));
    if (other) throw new UsageError(`${source("fleetEndpoints")}: replica ${JSON.stringify(other.name)} is at ${JSON.stringify(other.buildkitHost)}, not a ${KUBE_POD} endpoint`);
    return { kind: "cluster", replicas, kubeconfig: outputs.kubeconfig };
  }
  const stackName = stack ? `stack ${stack}` : "the current stack";
  if (typeof outputs.buildkitHost === "string") {
    throw new UsageError(`${stackName} is a single daemon: its builder is one line, docker buildx create --name BUILDER --driver remote ${shellQuote(outputs.buildkitHost)}`);
  }
  throw new UsageError(`${stackName} has no fleetBuildxNodes output (a fleet, buildkit:hosts) nor kubeconfig and fleetEndpoints (a cluster, buildkit:kubeconfig); has it been deployed (pulumi up)?`);
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
        "Give every host buildkit:tcpPort, a tcpAddress its clients reach and the TLS keys (see docs/scale-out.md), then `pulumi up`",
    );
  }
}

/** buildx's node name for a host or replica: its name, which must start with a letter there. */
export function nodeName(name: string, prefix = "host"): string {
  return /^[a-z]/.test(name) ? name : `${prefix}-${name}`;
}

/** The files of each node, by host name, under `tlsDir` (absolute: buildx refuses relative certificate paths). */
export function nodeFiles(tlsDir: string, host: string): NodeFiles {
  const dir = path.join(tlsDir, host);
  return { ca: path.join(dir, "ca.pem"), cert: path.join(dir, "cert.pem"), key: path.join(dir, "key.pem") };
}

/**
 * The `docker buildx create` lines that make `builder` of a fleet's hosts.
 * Each node is verified against its container name (`servername`), which
 * config guarantees the daemon's certificate carries, whatever address it is dialled at.
 */
export function buildxCreateCommands(nodes: BuildxNode[], builder: string, tlsDir: string): string[] {
  checkNodes(nodes);
  return createLines(
    builder,
    nodes.map((node) => {
      const files = nodeFiles(tlsDir, node.name);
      const driverOpts = `cacert=${files.ca},cert=${files.cert},key=${files.key},servername=${node.tls!.serverName}`;
      return { node: nodeName(node.name), endpoint: node.buildkitHost, platforms: node.platforms, driverOpts };
    }),
  );
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
 * A cluster's builder: the kubeconfig exported (when the stack names it),
 * a node per replica at its kube-pod:// endpoint, and what the builder does.
 * `keyed`: the replicas were ordered by a key, so the first is that key's.
 */
export function clusterLines(replicas: FleetEndpoint[], builder: string, kubeconfig: string | undefined, keyed: boolean): string[] {
  const nodes = replicas.map((replica) => ({ node: nodeName(replica.name, "replica"), endpoint: replica.buildkitHost }));
  const first = nodes[0].node;
  return [
    ...(kubeconfig ? [`export KUBECONFIG=${shellQuote(kubeconfig)}`] : []),
    ...createLines(builder, nodes),
    // buildx keeps no kubeconfig with a remote node: it runs kubectl when it dials, in the shell that builds.
    kubeconfig
      ? "# kube-pod:// nodes: buildx runs kubectl exec with the KUBECONFIG of the shell that builds (export it again in another shell)"
      : "# kube-pod:// nodes: buildx runs kubectl exec with the KUBECONFIG of the shell that builds: export the cluster stack's (pulumi stack output kubeconfig)",
    keyed
      ? `# every build goes to node ${first}, the key's replica as npm run route picks it: buildx sends a platform to the first node that has it, and the replicas share theirs`
      : `# every build goes to node ${first}: buildx sends a platform to the first node that has it, and the replicas share theirs (--key REPO:CONTEXT puts a key's replica first)`,
    `# build: docker buildx build --builder ${builder} …`,
  ];
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

function readFile(file: string, shown: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read ${shown}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function main(argv: string[]): void {
  const { flags } = parseFlags(argv, USAGE, { stack: "string", from: "string", "tls-dir": "string", name: "string", key: "string" });
  const { stack, from, "tls-dir": tlsDir, name } = flags;
  if (stack && from) throw new UsageError(`--stack and --from are alternatives\n${USAGE}`);
  if (name !== undefined && !BUILDX_NAME.test(name)) throw new UsageError(`--name ${JSON.stringify(name)} is not a buildx builder name: a lower-case letter, then letters, digits, '.', '_' or '-'`);
  const key = flags.key === undefined ? undefined : checkKey(flags.key, USAGE);
  // npm runs scripts in the package's directory; INIT_CWD is where the user typed the command.
  const userDir = process.env.INIT_CWD ?? process.cwd();
  const source = from
    ? parseNodesFile(readFile(path.resolve(userDir, from), from), from)
    : nodesOfOutputs(JSON.parse(readStackOutput(undefined, stack)) as Record<string, unknown>, stack);
  // The ring npm run route uses: the key's host or replica first, the rest in its order of preference.
  const ordered = <T extends FleetEndpoint>(nodes: T[]): T[] => (key === undefined ? nodes : routeKey(nodes, key));

  if (source.kind === "cluster") {
    if (tlsDir !== undefined) {
      throw new UsageError(
        `--tls-dir is for a fleet's TCP hosts; this builder's nodes are a cluster's ${KUBE_POD} replicas, which buildx reaches through kubectl and the kubeconfig: there are no client files to write, drop --tls-dir\n${USAGE}`,
      );
    }
    console.log(clusterLines(ordered(source.replicas), name ?? DEFAULT_CLUSTER_BUILDER, source.kubeconfig, key !== undefined).join("\n"));
    return;
  }
  if (!tlsDir) throw new UsageError(`--tls-dir is required for a fleet: where the client certificates go (buildx reads them from files)\n${USAGE}`);
  const absoluteDir = path.resolve(userDir, tlsDir);
  // buildx reads --driver-opt as CSV: a comma or quote in a path would split it.
  if (/[",\n]/.test(absoluteDir)) throw new UsageError(`--tls-dir ${JSON.stringify(absoluteDir)} has a comma, quote or newline, which buildx's --driver-opt (CSV) cannot carry; choose another directory`);
  const builder = name ?? DEFAULT_BUILDER;
  const nodes = ordered(source.nodes);
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
