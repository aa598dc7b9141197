/**
 * What `drift` and `doctor` both need: command-line flags, the stack (without
 * disturbing the user's selected stack), its recorded state and outputs, and
 * the engine's view of the same docker objects.
 */
import { spawnSync } from "child_process";
import * as path from "path";

import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";

import { DOCKER_PROVIDER_TYPE } from "../components/resource-types";
import { CommandResult, runCommand } from "./command";
import { repoRoot, UsageError } from "./options";
import { earlyExport, pulumiCli } from "./pulumi-cli";

export { CliOptions, UsageError, parseCli, repoRoot } from "./options";

/**
 * Opens the stack for reading, without selecting it: the Automation API's
 * select is `pulumi stack select`, which would change the stack a later bare
 * `pulumi up` targets, and every Stack operation passes `--stack NAME` anyway.
 * A stack named by `requested` is not looked up first (`pulumi stack ls`, one
 * CLI start on every check): the first command on it fails if it does not
 * exist, and {@link withStackCheck} then says so. Without `requested`, the
 * selected stack (else `fallback`) is looked up.
 */
export async function openStack(requested: string | undefined, workDir: string, fallback?: string): Promise<Stack> {
  let workspace: LocalWorkspace;
  try {
    workspace = await LocalWorkspace.create({ workDir, pulumiCommand: await pulumiCli() });
  } catch (error) {
    throw new UsageError(`cannot open the Pulumi project in ${workDir}: ${firstLine(error)}`);
  }
  let name = requested;
  if (name === undefined) {
    const known = await workspace.listStacks();
    name = known.find((s) => s.current)?.name ?? fallback;
    if (!name) throw new UsageError(`no stack selected in ${workDir}; pass --stack NAME (stacks: ${known.map((s) => s.name).join(", ") || "none"})`);
    const missing = missingStackError(name, workDir, known);
    if (missing) throw missing;
  }
  workspace.selectStack = async () => undefined;
  return Stack.select(name, workspace);
}

function missingStackError(name: string, workDir: string, known: { name: string }[]): UsageError | undefined {
  if (known.some((s) => s.name === name || s.name.endsWith(`/${name}`))) return undefined;
  return new UsageError(
    `stack ${name} does not exist in ${workDir} (backend ${process.env.PULUMI_BACKEND_URL ?? "default"}); ` +
      `stacks: ${known.map((s) => s.name).join(", ") || "none"}`,
  );
}

/**
 * `operation` on `stack`; when it fails because the stack does not exist
 * (not looked up by {@link openStack}), that is the error, naming the stacks
 * there are.
 */
export async function withStackCheck<T>(stack: Stack, operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    const known = await stack.workspace.listStacks().catch(() => undefined);
    throw (known && missingStackError(stack.name, stack.workspace.workDir, known)) || error;
  }
}

/** One resource as the last deployment recorded it, secrets decrypted. */
export interface RecordedResource {
  urn: string;
  type: string;
  id?: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  /** URN of the resource it was declared under (a component), if any. */
  parent?: string;
  /** `URN::id` of the explicit provider it goes through, if any. */
  provider?: string;
  /** Uploaded files whose content is a secret in the state (TLS keys): compared, never shown. */
  secretFiles: Set<string>;
}

/** Reads the deployment; `exportStack` decrypts secrets, which {@link unwrapSecrets} turns back into values. */
export async function readState(stack: Stack): Promise<RecordedResource[]> {
  const exported = ((await earlyExport(stack.name, stack.workspace.workDir)) ?? (await stack.exportStack())) as { deployment: unknown };
  const resources = ((exported.deployment as { resources?: unknown[] }).resources ?? []) as Record<string, unknown>[];
  return resources.map((r) => ({
    urn: String(r.urn),
    type: String(r.type),
    id: typeof r.id === "string" && r.id !== "" ? r.id : undefined,
    inputs: unwrapSecrets(r.inputs ?? {}) as Record<string, unknown>,
    outputs: unwrapSecrets(r.outputs ?? {}) as Record<string, unknown>,
    parent: typeof r.parent === "string" && r.parent !== "" ? r.parent : undefined,
    provider: typeof r.provider === "string" && r.provider !== "" ? r.provider : undefined,
    secretFiles: secretUploadFiles(r.outputs),
  }));
}

/**
 * A secret in exported state is `{ [specialSigKey]: specialSecretSig, plaintext }`
 * (`ciphertext` without --show-secrets): Pulumi's own constants, not a copy.
 */
function isSecretValue(record: Record<string, unknown>): boolean {
  return record[specialSigKey] === specialSecretSig;
}

export function unwrapSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (isSecretValue(record) && typeof record.plaintext === "string") return unwrapSecrets(JSON.parse(record.plaintext));
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, unwrapSecrets(v)]));
  }
  return value;
}

/** The `file` of every upload that sits under a secret marker, or holds one. */
export function secretUploadFiles(rawOutputs: unknown): Set<string> {
  const files = new Set<string>();
  const walk = (value: unknown, secret: boolean, file?: string): void => {
    if (Array.isArray(value)) {
      value.forEach((v) => walk(v, secret, file));
    } else if (value && typeof value === "object") {
      const record = value as Record<string, unknown>;
      if (isSecretValue(record)) {
        if (typeof record.plaintext === "string") walk(JSON.parse(record.plaintext), true, file);
        if (file) files.add(file);
        return;
      }
      const here = typeof record.file === "string" ? record.file : file;
      if (secret && here) files.add(here);
      Object.values(record).forEach((v) => walk(v, secret, here));
    }
  };
  walk((rawOutputs as Record<string, unknown> | undefined)?.uploads, false);
  return files;
}

/** Stack outputs as plain values (buildkitHost, containerName, containerId, ...). */
export async function readOutputs(stack: Stack): Promise<Record<string, unknown>> {
  const outputs = await stack.outputs();
  return Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.value]));
}

/** The Docker host the stack's provider deployed to, once {@link useDockerHostOf} has read it. */
let stackDockerHost: string | undefined;

/**
 * The stack may target another Docker host (buildkit:dockerHost); the CLI
 * checks must look at the same engine the provider deployed to. Only our own
 * docker and buildctl calls get it ({@link engineEnv}): the pulumi runs keep
 * this process's environment, because the program's provider reads
 * DOCKER_HOST itself and a leaked one would become a change of its own.
 */
export function useDockerHostOf(state: RecordedResource[]): void {
  const provider = state.find((r) => r.type === DOCKER_PROVIDER_TYPE && typeof r.inputs.host === "string" && r.inputs.host !== "");
  stackDockerHost = provider ? String(provider.inputs.host) : undefined;
}

/** The environment for docker and buildctl: this process's, with the stack's DOCKER_HOST. */
export function engineEnv(): NodeJS.ProcessEnv {
  return stackDockerHost ? { ...process.env, DOCKER_HOST: stackDockerHost } : process.env;
}

/** The Docker host our docker calls talk to (undefined: docker's default). */
export function engineHost(): string | undefined {
  return engineEnv().DOCKER_HOST;
}

/** The docker object name a resource was created with; falls back to its Pulumi name. */
export function recordedName(resource: { urn: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> }): string {
  const name = resource.outputs?.name ?? resource.inputs?.name;
  return typeof name === "string" && name !== "" ? name : urnName(resource.urn);
}

export function urnName(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

/**
 * The docker CLI against the stack's engine, or against `env`'s (a fleet
 * host's DOCKER_HOST and TLS files, see cli/fleet-inspect.ts).
 */
export function docker(args: string[], env: NodeJS.ProcessEnv = engineEnv()): CommandResult {
  return runCommand("docker", args, { env });
}

/** `docker info` answers: the engine is up and this user may talk to it. */
export function engineStatus(env: NodeJS.ProcessEnv = engineEnv()): { ok: true; version: string } | { ok: false; reason: string } {
  const info = docker(["info", "--format", "{{.ServerVersion}}"], env);
  if (info.code === 0 && info.stdout.trim() !== "") return { ok: true, version: info.stdout.trim() };
  return { ok: false, reason: firstLine(info.stderr || info.stdout) || `docker info exited ${info.code}` };
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
export function inspectContainer(nameOrId: string, env: NodeJS.ProcessEnv = engineEnv()): ContainerInfo | undefined {
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
export function containerOwnership(name: string, recordedId: string | undefined, env: NodeJS.ProcessEnv = engineEnv()): ContainerOwnership {
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
  return `${Math.round(bytes / (1024 * 1024))} MiB`;
}

export function shortId(id: string | undefined): string {
  return id ? id.slice(0, 12) : "unknown";
}

/** The last lines of a container's log, both streams, as `docker logs` prints them. */
export function containerLogs(name: string, lines: number, env: NodeJS.ProcessEnv = engineEnv()): string {
  const result = docker(["logs", "--tail", String(lines), name], env);
  return (result.stdout + result.stderr).trimEnd();
}

/**
 * A file's bytes inside a container, running or not (`docker cp` works on
 * stopped containers where `docker exec cat` does not). Undefined when absent.
 */
export function readContainerFile(container: string, file: string, env: NodeJS.ProcessEnv = engineEnv()): Buffer | undefined {
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
export function invisibleDrift(container: RecordedResource, info: ContainerInfo, env: NodeJS.ProcessEnv = engineEnv()): string[] {
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

/** Quotes a word for a POSIX shell line the user will paste (URNs contain `$`). */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * How to run pulumi against this stack by hand: the env file puts the CLI and
 * backend in place; `-C` when the program is not the repo's own.
 */
export function pulumiCommand(stack: string, workDir: string, args: string[]): string {
  const cwd = path.resolve(workDir) === repoRoot ? [] : ["-C", shellQuote(workDir)];
  return `source scripts/env.sh && pulumi ${[...cwd, ...args, "--stack", shellQuote(stack)].join(" ")}`;
}

export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const meaningful = lines.find((l) => /^error:/i.test(l)) ?? lines[0] ?? "";
  return meaningful.length > 400 ? `${meaningful.slice(0, 400)}…` : meaningful;
}

/** Runs a script's main; a {@link UsageError} or any failure becomes one line and exit 1. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof UsageError ? error.message : `error: ${firstLine(error)}`}\n`);
      process.exit(1);
    },
  );
}
