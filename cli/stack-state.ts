/**
 * The one way the stack CLIs (drift, doctor) read a stack: open it without
 * selecting it, its recorded state with secrets decrypted, its outputs and
 * its configuration.
 */
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";

import { UsageError, firstLine } from "./options";
import { earlyExport, pulumiCli } from "./pulumi-cli";

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

/**
 * An operation an update had started and not finished when it ended: the
 * deployment keeps it (`pending_operations`) when the pulumi process was
 * killed mid-step. `type` is Pulumi's: creating, updating, deleting, reading, ...
 */
export interface PendingOperation {
  type: string;
  urn: string;
  resourceType: string;
  /** The docker object name the step was creating or changing, when it has one. */
  name: string;
}

/** The recorded resources and the operations an interrupted update left pending. */
export interface StackState {
  resources: RecordedResource[];
  pendingOperations: PendingOperation[];
}

/** Reads the deployment's resources (see {@link readStackState}). */
export async function readState(stack: Stack): Promise<RecordedResource[]> {
  return (await readStackState(stack)).resources;
}

/** Reads the deployment; `exportStack` decrypts secrets, which {@link unwrapSecrets} turns back into values. */
export async function readStackState(stack: Stack): Promise<StackState> {
  const exported = ((await earlyExport(stack.name, stack.workspace.workDir)) ?? (await stack.exportStack())) as { deployment: unknown };
  const deployment = exported.deployment as { resources?: unknown[]; pending_operations?: unknown[] };
  const resources = (deployment.resources ?? []) as Record<string, unknown>[];
  const pending = (deployment.pending_operations ?? []) as { type?: unknown; resource?: Record<string, unknown> }[];
  return {
    resources: resources.map(recordedResource),
    pendingOperations: pending.map((op) => {
      const resource = recordedResource(op.resource ?? {});
      return { type: String(op.type ?? "unknown"), urn: resource.urn, resourceType: resource.type, name: recordedName(resource) };
    }),
  };
}

function recordedResource(r: Record<string, unknown>): RecordedResource {
  return {
    urn: String(r.urn),
    type: String(r.type),
    id: typeof r.id === "string" && r.id !== "" ? r.id : undefined,
    inputs: unwrapSecrets(r.inputs ?? {}) as Record<string, unknown>,
    outputs: unwrapSecrets(r.outputs ?? {}) as Record<string, unknown>,
    parent: typeof r.parent === "string" && r.parent !== "" ? r.parent : undefined,
    provider: typeof r.provider === "string" && r.provider !== "" ? r.provider : undefined,
    secretFiles: secretUploadFiles(r.outputs),
  };
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

/** The stack's configuration as `pulumi.runtime.allConfig()` hands it to the program, secrets decrypted. */
export async function readConfig(stack: Stack): Promise<Record<string, unknown>> {
  const config = await stack.getAllConfig();
  return Object.fromEntries(Object.entries(config).map(([key, entry]) => [key, entry.value]));
}

/** The stack's name without an organisation or project (`org/proj/dev` → `dev`), as the program's getStack() sees it. */
export function bareStackName(stack: Stack): string {
  return stack.name.slice(stack.name.lastIndexOf("/") + 1);
}

/** The docker object name a resource was created with; falls back to its Pulumi name. */
export function recordedName(resource: { urn: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> }): string {
  const name = resource.outputs?.name ?? resource.inputs?.name;
  return typeof name === "string" && name !== "" ? name : urnName(resource.urn);
}

export function urnName(urn: string): string {
  return urn.slice(urn.lastIndexOf("::") + 2);
}

