/**
 * What only the target engine can judge, asked of it before anything is
 * declared there (in preview as in up): CPUs it does not have, swap it cannot
 * account, a port something else publishes or listens on, an address the host
 * lacks, a container, network or volume name another program holds. Each is
 * refused with the engine's own numbers, instead of half a deploy that fails
 * at the container.
 */
import { execFile } from "child_process";
import * as net from "net";

import { full, LABEL_PREFIX, show } from "../core/config-keys";
import type { DockerSettings } from "./config";

/** What `docker info` says about an engine. */
export interface EngineFacts {
  /** The engine's own identity (two endpoints of one engine have the same). */
  id: string;
  /** The host's name as the engine reports it. */
  name: string;
  cpus: number;
  /** The kernel accounts swap: a container's memory+swap limit is honoured. */
  swapLimit: boolean;
}

/** A docker object's labels, or undefined when there is no object of that name. */
type Labels = Record<string, string> | undefined;

/** What the preflight asks an engine; {@link dockerInspector} asks a real one. */
export interface EngineInspector {
  facts(): Promise<EngineFacts>;
  containerLabels(name: string): Promise<Labels>;
  networkLabels(name: string): Promise<Labels>;
  volumeLabels(name: string): Promise<Labels>;
  /** Containers publishing host port `port`, with the address each binds. */
  publishers(port: number): Promise<{ container: string; address: string }[]>;
  /**
   * Whether this machine can bind `address`:`port` itself (for an engine on
   * this machine): "ok", "in use" or "no such address".
   */
  bindable?(address: string, port: number): Promise<"ok" | "in use" | "no such address">;
}

function dockerJson<T>(args: string[], env: NodeJS.ProcessEnv): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    execFile("docker", args, { env, encoding: "utf8", timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve(JSON.parse(stdout || "null") as T);
      // "No such container / network / volume" is an answer: there is none.
      if (/no such|not found/i.test(stderr)) return resolve(undefined);
      reject(new Error(`docker ${args.join(" ")}: ${stderr.trim() || error.message}`));
    });
  });
}

/** An engine asked through the docker CLI with `env` (its DOCKER_HOST and TLS files). */
export function dockerInspector(env: NodeJS.ProcessEnv, local: boolean): EngineInspector {
  return {
    async facts() {
      const info = await dockerJson<{ ID: string; Name: string; NCPU: number; SwapLimit: boolean }>(["info", "--format", "{{json .}}"], env);
      if (!info) throw new Error("docker info printed nothing");
      return { id: info.ID, name: info.Name, cpus: info.NCPU, swapLimit: info.SwapLimit };
    },
    containerLabels: (name) => dockerJson<Labels>(["container", "inspect", "--format", "{{json .Config.Labels}}", name], env),
    networkLabels: (name) => dockerJson<Labels>(["network", "inspect", "--format", "{{json .Labels}}", name], env),
    volumeLabels: (name) => dockerJson<Labels>(["volume", "inspect", "--format", "{{json .Labels}}", name], env),
    async publishers(port) {
      const rows = await new Promise<string>((resolve, reject) =>
        execFile("docker", ["ps", "-a", "--filter", `publish=${port}`, "--format", "{{.Names}}\t{{.Ports}}"], { env, encoding: "utf8", timeout: 30_000 }, (error, stdout, stderr) =>
          error ? reject(new Error(`docker ps: ${stderr.trim() || error.message}`)) : resolve(stdout),
        ),
      );
      return rows
        .split("\n")
        .filter((row) => row.trim() !== "")
        .map((row) => {
          const [container, ports = ""] = row.split("\t");
          const binding = ports.split(", ").find((p) => new RegExp(`:${port}->`).test(p));
          return { container, address: binding ? binding.slice(0, binding.lastIndexOf(":")).replace(/^\[|\]$/g, "") : "" };
        });
    },
    ...(local ? { bindable } : {}),
  };
}

/** Tries to listen on `address`:`port` and closes at once. */
function bindable(address: string, port: number): Promise<"ok" | "in use" | "no such address"> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "EADDRNOTAVAIL" ? "no such address" : "in use"));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve("ok")));
  });
}

const WILDCARDS = ["0.0.0.0", "::", ""];
/** Two bindings of one port collide when they share an address or either is every address. */
export function bindingsCollide(a: string, b: string): boolean {
  return a === b || WILDCARDS.includes(a) || WILDCARDS.includes(b);
}

/** Whether a docker object carries the program's own label: made by this program (some stack of it), not another. */
function ours(labels: Labels): boolean {
  return labels?.[`${LABEL_PREFIX}.managed-by`] === "pulumi";
}

/**
 * Set (to "1") in the environment of the previews `npm run drift` runs: a
 * name another program holds is then drift to report (drift names the
 * container that took it, with its id and limits, and what heals it), not a
 * refusal that would stop the check. `pulumi up` and plain previews refuse it.
 */
export const DRIFT_CHECK_ENV = "BUILDKIT_STACK_DRIFT_CHECK";

/**
 * The problems of `settings` on the engine `inspector` asks, each naming the
 * key, the engine (`where`) and what it said; empty when the engine can run
 * the daemon exactly as configured. `names: false` leaves out the names
 * another program holds (see {@link DRIFT_CHECK_ENV}).
 */
export async function enginePreflightProblems(settings: DockerSettings, inspector: EngineInspector, where: string, names = true): Promise<string[]> {
  const [facts, container, network, volume, publishers] = await Promise.all([
    inspector.facts(),
    inspector.containerLabels(settings.containerName),
    inspector.networkLabels(settings.networkName),
    inspector.volumeLabels(settings.cacheVolumeName),
    settings.tcpPort !== undefined ? inspector.publishers(settings.tcpPort) : Promise.resolve([]),
  ]);
  const problems: string[] = [];
  if (settings.cpus !== undefined && settings.cpus > facts.cpus) {
    problems.push(
      `${full("cpus")} is ${settings.cpus} but the Docker engine at ${where} has ${facts.cpus} CPU${facts.cpus === 1 ? "" : "s"} (docker info: NCPU ${facts.cpus}); ` +
        `expected at most ${facts.cpus}: docker refuses a larger limit when it creates the container`,
    );
  }
  if (settings.memoryBytes !== undefined && !facts.swapLimit) {
    problems.push(
      `${full("memory")} is set but the Docker engine at ${where} has no swap accounting (docker info: SwapLimit false): the daemon's memory and swap ` +
        `limit cannot be enforced as configured. Enable swap accounting on that host (kernel swapaccount=1, or cgroup v2), or remove ${full("memory")}`,
    );
  }
  const held: [string, string, Labels, string][] = [
    ["containerName", "container", container, settings.containerName],
    ["networkName", "network", network, settings.networkName],
    ["cacheVolumeName", "volume", volume, settings.cacheVolumeName],
  ];
  for (const [key, kind, labels, name] of held) {
    if (names && labels !== undefined && !ours(labels)) {
      problems.push(
        `${full(key)} is ${show(name)} but a ${kind} of that name on the Docker engine at ${where} was not made by this program ` +
          `(no ${LABEL_PREFIX}.managed-by label); choose another name, or remove that ${kind} if it is yours to remove`,
      );
    }
  }
  if (settings.tcpPort !== undefined) {
    const others = publishers.filter((p) => p.container !== settings.containerName && bindingsCollide(p.address, settings.tcpAddress));
    for (const other of others) {
      problems.push(
        `${full("tcpPort")} is ${settings.tcpPort} but container ${show(other.container)} on the Docker engine at ${where} already publishes it` +
          `${other.address ? ` (on ${other.address})` : ""}; choose another port, or stop publishing it there`,
      );
    }
    const ownPublishes = publishers.some((p) => p.container === settings.containerName);
    if (others.length === 0 && !ownPublishes && inspector.bindable) {
      const bind = await inspector.bindable(settings.tcpAddress, settings.tcpPort);
      if (bind === "no such address") {
        problems.push(`${full("tcpAddress")} is ${show(settings.tcpAddress)} but the Docker host at ${where} has no such address; publish on one of its addresses, or 0.0.0.0 for all`);
      } else if (bind === "in use") {
        problems.push(
          `${full("tcpPort")} is ${settings.tcpPort} but something on the Docker host at ${where} (not a container) already listens on ` +
            `${settings.tcpAddress}:${settings.tcpPort}; choose another port, or stop it`,
        );
      }
    }
  }
  return problems;
}
