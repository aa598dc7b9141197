/**
 * An update that ended half-way (the pulumi process killed: a CI timeout, a
 * lost SSH session, ^C twice): what it leaves, how drift and doctor name it,
 * and the one recovery (`npm run drift -- --heal`).
 *
 * A killed `pulumi up` leaves up to three things, each of which blocks or
 * misleads the next run:
 * - the stack's lock (file backend: `.pulumi/locks/.../<stack>/<id>.json`,
 *   naming the pid and host that took it): every later `up`, `refresh` and
 *   `--heal` fails on it;
 * - pending operations in the state (`pending_operations`): steps that
 *   started and never reported back, e.g. "creating" the replacement daemon;
 * - a container of ours the pending create made (our label, the planned name,
 *   an id the state does not record), often never started: the daemon is down,
 *   and the next `up` fails on its name.
 *
 * The recovery releases a lock only when its process is gone (same host, pid
 * not a live pulumi), clears the pending creates (`pulumi refresh
 * --clear-pending-creates`), removes only those leftover containers (labelled
 * with the pending create's name and never recorded), then re-runs the update
 * the kill interrupted, under the policy pack. `pulumi cancel` alone would
 * release the lock and leave the rest.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { fileURLToPath } from "url";

import type { Stack } from "@pulumi/pulumi/automation";

import { CONTAINER_LABEL } from "../components/core/config-keys";
import { CONTAINER_TYPE } from "../components/resource-types";
import { ContainerInfo, docker, inspectContainer, shortId } from "./docker-inspect";
import { firstLine, UsageError } from "./options";
import { shellQuote } from "./shell";
import type { PendingOperation, RecordedResource } from "./stack-state";

/** A lock on the stack as the file backend records it. */
export interface StackLock {
  file: string;
  pid: number;
  hostname: string;
  timestamp: string;
  /**
   * gone: its process no longer runs on this host (safe to release);
   * running: a live pulumi holds it (an update is under way: wait);
   * elsewhere: taken on another host, whose processes this one cannot see.
   */
  holder: "gone" | "running" | "elsewhere";
}

/** A container of ours that the interrupted update created and the state does not record. */
export interface LeftoverContainer {
  urn: string;
  name: string;
  info: ContainerInfo;
  /** Created and never started: the daemon it was to become never ran. */
  neverStarted: boolean;
}

/** What an interrupted update left behind; empty lists when the last update ended cleanly. */
export interface Interruption {
  locks: StackLock[];
  pendingOperations: PendingOperation[];
  leftovers: LeftoverContainer[];
  /** Why the lock could not be checked (a backend other than file://); undefined when it was. */
  lockUnchecked?: string;
}

/** Whether anything of an interrupted update is left (a lock, pending operations, a leftover container). */
export function isInterrupted(found: Interruption): boolean {
  return found.locks.length > 0 || found.pendingOperations.length > 0 || found.leftovers.length > 0;
}

/** Whether the recovery may run: every lock's process is gone (a live or foreign one is never released here). */
export function recoverable(found: Interruption): boolean {
  return found.locks.every((lock) => lock.holder === "gone");
}

/** `docker inspect`'s StartedAt for a container that never started. */
const NEVER = "0001-01-01T00:00:00Z";

/**
 * Whether pid `pid` is a live pulumi process on this host. A pid reused by
 * another program after the kill is not the lock's holder.
 */
export function pulumiProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists under another user; treat as alive, never release it.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.some((arg) => path.basename(arg).startsWith("pulumi"));
  } catch {
    // No /proc: the pid exists, assume it is the holder.
    return true;
  }
}

/**
 * The locks of `stackName` (bare name) of `project` in a file backend
 * (`file:///dir`). Other backends keep locks elsewhere: `lockUnchecked` says so.
 */
export function readLocks(
  backendUrl: string | undefined,
  project: string,
  stackName: string,
  alive: (pid: number) => boolean = pulumiProcessAlive,
  hostname = os.hostname(),
): { locks: StackLock[]; unchecked?: string } {
  if (!backendUrl || !backendUrl.startsWith("file://")) {
    return { locks: [], unchecked: `the stack lock is checked on file:// backends only (backend ${backendUrl ?? "unknown"})` };
  }
  const root = path.join(fileURLToPath(backendUrl.split("?")[0]), ".pulumi", "locks");
  // Project-scoped layout (organization/<project>/<stack>) and the older one (<stack>).
  const dirs = [path.join(root, "organization", project, stackName), path.join(root, stackName)];
  const locks: StackLock[] = [];
  for (const dir of dirs) {
    let entries: string[];
    try {
      entries = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const entry of entries.filter((e) => e.endsWith(".json"))) {
      const file = path.join(dir, entry);
      let body: { pid?: unknown; hostname?: unknown; timestamp?: unknown };
      try {
        body = JSON.parse(fs.readFileSync(file, "utf8")) as typeof body;
      } catch {
        continue;
      }
      const pid = Number(body.pid);
      const host = String(body.hostname ?? "");
      locks.push({
        file,
        pid,
        hostname: host,
        timestamp: String(body.timestamp ?? ""),
        holder: host !== hostname ? "elsewhere" : alive(pid) ? "running" : "gone",
      });
    }
  }
  return { locks };
}

/**
 * Containers a pending create of the interrupted update made: under the
 * create's name, labelled by this program with that name, and with an id no
 * recorded container has. Anything else under the name is left to the
 * hand-made-replacement checks (never removed by the recovery).
 */
export function leftoverContainers(pending: PendingOperation[], state: RecordedResource[], envOf: (urn: string) => NodeJS.ProcessEnv): LeftoverContainer[] {
  const recordedIds = new Set(state.filter((r) => r.type === CONTAINER_TYPE && r.id).map((r) => r.id!));
  const leftovers: LeftoverContainer[] = [];
  for (const op of pending.filter((p) => p.type === "creating" && p.resourceType === CONTAINER_TYPE)) {
    const info = inspectContainer(op.name, envOf(op.urn));
    if (!info || recordedIds.has(info.Id) || info.Config.Labels?.[CONTAINER_LABEL] !== op.name) continue;
    leftovers.push({ urn: op.urn, name: op.name, info, neverStarted: info.State.StartedAt === NEVER || info.State.Status === "created" });
  }
  return leftovers;
}

/** Where the stack's state lives: PULUMI_BACKEND_URL, else what `pulumi whoami` reports. */
async function backendUrlOf(stack: Stack): Promise<string | undefined> {
  if (process.env.PULUMI_BACKEND_URL) return process.env.PULUMI_BACKEND_URL;
  const envUrl = (stack.workspace.envVars ?? {}).PULUMI_BACKEND_URL;
  if (envUrl) return envUrl;
  return (await stack.workspace.whoAmI().catch(() => undefined))?.url;
}

/** What an interrupted update left in `stack`, from its state (already read) and its lock. */
export async function findInterruption(
  stack: Stack,
  state: RecordedResource[],
  pendingOperations: PendingOperation[],
  envOf: (urn: string) => NodeJS.ProcessEnv,
): Promise<Interruption> {
  const project = projectOf(state) ?? (await stack.workspace.projectSettings()).name;
  const bare = stack.name.slice(stack.name.lastIndexOf("/") + 1);
  const { locks, unchecked } = readLocks(await backendUrlOf(stack), project, bare);
  return { locks, pendingOperations, leftovers: leftoverContainers(pendingOperations, state, envOf), lockUnchecked: unchecked };
}

/** `urn:pulumi:<stack>::<project>::...` */
function projectOf(state: RecordedResource[]): string | undefined {
  return state[0]?.urn.split("::")[1];
}

const VERB: Record<string, string> = { creating: "create", updating: "update", deleting: "delete", reading: "read", importing: "import" };

/** One line per thing the interrupted update left, each saying what it blocks. */
export function describeInterruption(found: Interruption, labelOf: (urn: string) => string = () => ""): string[] {
  const lines: string[] = [];
  for (const lock of found.locks) {
    const who = `pid ${lock.pid} on host ${lock.hostname} since ${lock.timestamp}`;
    if (lock.holder === "gone") lines.push(`stack lock held by ${who}, a process that no longer runs: a stale lock, every pulumi up fails on it`);
    else if (lock.holder === "running") lines.push(`stack lock held by ${who}, still running: an update is under way`);
    else lines.push(`stack lock held by ${who} (another host: this one cannot tell whether it still runs)`);
  }
  for (const op of found.pendingOperations) {
    lines.push(`${labelOf(op.urn)}${op.name}: the update stopped while it was ${op.type} it (pending ${VERB[op.type] ?? op.type} in the state)`);
  }
  for (const leftover of found.leftovers) {
    const state = leftover.neverStarted ? "created but never started: the daemon is down" : `${leftover.info.State.Status}, not recorded in the state`;
    lines.push(`${labelOf(leftover.urn)}container ${leftover.name} (id ${shortId(leftover.info.Id)}) was made by the interrupted update: ${state}; pulumi up would fail on its name`);
  }
  return lines;
}

/** The fix, as one line: the recovery when it may run, else why not and what to do. */
export function interruptionFix(found: Interruption, stackName: string): string {
  const heal = `npm run drift -- --stack ${shellQuote(stackName)} --heal`;
  const running = found.locks.find((l) => l.holder === "running");
  if (running) return `wait for pid ${running.pid} to finish (or stop it), then check again; ${heal} recovers what it leaves`;
  const elsewhere = found.locks.find((l) => l.holder === "elsewhere");
  if (elsewhere) {
    return `make sure nothing runs pulumi on host ${elsewhere.hostname} (pid ${elsewhere.pid}), then release its lock with ` +
      `\`source scripts/env.sh && pulumi cancel --yes --stack ${shellQuote(stackName)}\` and run ${heal}`;
  }
  return `${heal} (releases the stale lock, clears the pending operations, removes the leftover container, re-runs the interrupted update under the policy pack)`;
}

/**
 * Everything but the final `up`: the stale lock released (`pulumi cancel`,
 * after checking again that its process is gone), pending creates cleared
 * (`pulumi refresh --clear-pending-creates`: the refresh also forgets a
 * container the interrupted update had already deleted), then the leftover
 * containers removed by id. Refuses while a live or foreign lock exists.
 */
export async function clearInterruption(stack: Stack, found: Interruption, envOf: (urn: string) => NodeJS.ProcessEnv, log: (line: string) => void): Promise<void> {
  if (!recoverable(found)) throw new UsageError(`not recovering stack ${stack.name}: ${interruptionFix(found, stack.name)}`);
  if (found.locks.length > 0) {
    // Checked again just before: the holder could have been a pid that came back (it cannot: a pid names one process).
    const still = found.locks.filter((lock) => fs.existsSync(lock.file) && pulumiProcessAlive(lock.pid));
    if (still.length > 0) throw new UsageError(`not recovering stack ${stack.name}: pid ${still[0].pid} runs again`);
    log(`heal: pulumi cancel --stack ${shellQuote(stack.name)} (the lock's process, pid ${found.locks.map((l) => l.pid).join(", ")}, is gone)`);
    try {
      await stack.cancel();
    } catch (error) {
      throw new UsageError(`pulumi cancel of stack ${stack.name} failed: ${firstLine(error)}`);
    }
  }
  if (found.pendingOperations.length > 0 || found.leftovers.length > 0) {
    log(`heal: pulumi refresh --clear-pending-creates --stack ${shellQuote(stack.name)}`);
    try {
      await stack.refresh({ clearPendingCreates: true, onOutput: () => undefined });
    } catch (error) {
      throw new UsageError(`pulumi refresh --clear-pending-creates of stack ${stack.name} failed: ${firstLine(error)}`);
    }
  }
  for (const leftover of found.leftovers) {
    log(`heal: docker rm -f ${shortId(leftover.info.Id)} (container ${leftover.name}, made by the interrupted update, not in the state)`);
    const removed = docker(["rm", "-f", leftover.info.Id], envOf(leftover.urn));
    if (removed.code !== 0) throw new UsageError(`docker rm -f ${leftover.info.Id} failed: ${firstLine(removed.stderr)}`);
  }
}
