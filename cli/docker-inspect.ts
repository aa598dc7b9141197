/**
 * What the CLIs ask a Docker engine about a stack's container — inspect,
 * logs, files inside it, and what the provider cannot see (uploaded files
 * edited in place, a lost network) — each call against the engine whose
 * environment it is given (cli/stack-engines.ts).
 */
import { spawnSync } from "child_process";

import { MIB } from "../components/core/units";
import { CommandResult, runCommand } from "./command";
import type { RecordedResource } from "./stack-state";

/** The docker CLI with `env` (the engine's DOCKER_HOST and TLS files). */
export function docker(args: string[], env: NodeJS.ProcessEnv): CommandResult {
  return runCommand("docker", args, { env });
}

/** The parts of `docker inspect` the checks read. */
export interface ContainerInfo {
  Id: string;
  Name: string;
  RestartCount: number;
  State: {
    Status: string;
    Running: boolean;
    /** Frozen by `docker pause`: still "running" to the engine and the provider, but answers nothing. */
    Paused: boolean;
    Restarting: boolean;
    /** "0001-01-01T00:00:00Z" for a container that was created and never started. */
    StartedAt?: string;
    OOMKilled: boolean;
    ExitCode: number;
    Error: string;
    Health?: { Status: string; FailingStreak: number; Log?: { ExitCode: number; Output: string }[] };
  };
  Config: { Image: string; Labels?: Record<string, string> | null };
  HostConfig: { Memory: number; NanoCpus: number; Privileged: boolean };
  NetworkSettings: { Networks?: Record<string, unknown> | null };
}

/** `docker inspect` of a container by name or id; undefined when there is none. */
export function inspectContainer(nameOrId: string, env: NodeJS.ProcessEnv): ContainerInfo | undefined {
  const result = docker(["container", "inspect", nameOrId], env);
  if (result.code !== 0) return undefined;
  return (JSON.parse(result.stdout) as ContainerInfo[])[0];
}

export type ContainerOwnership =
  | { kind: "missing" }
  | { kind: "ours"; info: ContainerInfo }
  | { kind: "foreign"; info: ContainerInfo };

/**
 * Whether the container under `name` is the one the stack created. A
 * container replaced by hand keeps the name but not the id; `pulumi up` would
 * then fail on the name, after refresh has already forgotten the old one.
 */
export function containerOwnership(name: string, recordedId: string | undefined, env: NodeJS.ProcessEnv): ContainerOwnership {
  const info = inspectContainer(name, env);
  if (!info) return { kind: "missing" };
  return info.Id === recordedId ? { kind: "ours", info } : { kind: "foreign", info };
}

/** A short description of a container's limits, to tell a hand-made one from the stack's. */
export function describeLimits(info: ContainerInfo): string {
  const memory = info.HostConfig.Memory > 0 ? `memory ${formatMib(info.HostConfig.Memory)}` : "no memory limit";
  const cpus = info.HostConfig.NanoCpus > 0 ? `cpus ${info.HostConfig.NanoCpus / 1e9}` : "no cpu limit";
  return `${memory}, ${cpus}, image ${info.Config.Image}`;
}

export function formatMib(bytes: number): string {
  return `${Math.round(bytes / MIB)} MiB`;
}

export function shortId(id: string | undefined): string {
  return id ? id.slice(0, 12) : "unknown";
}

/** The last lines of a container's log, both streams, as `docker logs` prints them. */
export function containerLogs(name: string, lines: number, env: NodeJS.ProcessEnv): string {
  const result = docker(["logs", "--tail", String(lines), name], env);
  return (result.stdout + result.stderr).trimEnd();
}

/**
 * A file's bytes inside a container, running or not (`docker cp` works on
 * stopped containers where `docker exec cat` does not). Undefined when absent.
 */
export function readContainerFile(container: string, file: string, env: NodeJS.ProcessEnv): Buffer | undefined {
  const result = spawnSync("docker", ["cp", `${container}:${file}`, "-"], { maxBuffer: 64 * 1024 * 1024, env });
  if (result.status !== 0 || !result.stdout) return undefined;
  return firstRegularFileInTar(result.stdout);
}

/** `docker cp … -` writes a tar stream; a ustar reader for the one regular file in it. */
function firstRegularFileInTar(tar: Buffer): Buffer | undefined {
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) return undefined;
    const size = parseInt(header.subarray(124, 136).toString("ascii").replace(/\0.*$/s, "").trim() || "0", 8);
    const type = String.fromCharCode(header[156]);
    const body = offset + 512;
    if (type === "0" || type === "\0") return tar.subarray(body, body + size);
    offset = body + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

/** One upload the provider wrote into a container at creation; `secret` contents are never printed. */
export interface RecordedUpload {
  file: string;
  content: Buffer;
  secret: boolean;
}

/**
 * The files the stack uploaded into a container, as the state recorded them.
 * Uploads from a host path (`source`) are not in the state and are skipped.
 */
export function recordedUploads(container: RecordedResource): RecordedUpload[] {
  const uploads = (container.outputs.uploads ?? container.inputs.uploads ?? []) as Record<string, unknown>[];
  const result: RecordedUpload[] = [];
  for (const upload of uploads) {
    const file = String(upload.file ?? "");
    if (!file) continue;
    if (typeof upload.content === "string" && upload.content !== "") {
      result.push({ file, content: Buffer.from(upload.content, "utf8"), secret: container.secretFiles.has(file) });
    } else if (typeof upload.contentBase64 === "string" && upload.contentBase64 !== "") {
      result.push({ file, content: Buffer.from(upload.contentBase64, "base64"), secret: container.secretFiles.has(file) });
    }
  }
  return result;
}

/** Networks the stack attached the container to (networksAdvanced names). */
export function recordedNetworks(container: RecordedResource): string[] {
  const networks = (container.outputs.networksAdvanced ?? container.inputs.networksAdvanced ?? []) as { name?: unknown }[];
  return networks.map((n) => n.name).filter((n): n is string => typeof n === "string" && n !== "");
}

/**
 * Out-of-band changes the docker provider cannot see on refresh: it never
 * reads uploaded files back, and it does not notice a container detached from
 * its network. Each finding is one sentence; empty when the container matches.
 */
export function invisibleDrift(container: RecordedResource, info: ContainerInfo, env: NodeJS.ProcessEnv): string[] {
  const findings: string[] = [];
  for (const upload of recordedUploads(container)) {
    const live = readContainerFile(info.Id, upload.file, env);
    if (!live) {
      findings.push(`${upload.file} was removed inside the container`);
    } else if (!live.equals(upload.content)) {
      findings.push(`${upload.file} changed inside the container${upload.secret ? "" : describeTextChange(upload.content, live)}`);
    }
  }
  const attached = Object.keys(info.NetworkSettings.Networks ?? {});
  for (const network of recordedNetworks(container)) {
    if (!attached.includes(network)) findings.push(`detached from network ${network}`);
  }
  return findings;
}

function describeTextChange(recorded: Buffer, live: Buffer): string {
  const before = recorded.toString("utf8").split("\n");
  const after = live.toString("utf8").split("\n");
  const added = after.filter((line) => line.trim() !== "" && !before.includes(line)).map((line) => `+${line}`);
  const removed = before.filter((line) => line.trim() !== "" && !after.includes(line)).map((line) => `-${line}`);
  const shown = [...removed, ...added];
  if (shown.length === 0) return " (whitespace or line order)";
  return ` (${shown.slice(0, 3).join(" ")}${shown.length > 3 ? ` and ${shown.length - 3} more` : ""})`;
}
