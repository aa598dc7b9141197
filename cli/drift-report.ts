/**
 * What a drift check found, and what to do about it: refresh steps, planned
 * steps and our own container checks joined into one entry per resource
 * ({@link analyse}), each described in one line, the commands that heal them
 * ({@link fixes}), what a heal may touch while a fleet host is down
 * ({@link healPlan}), and a fleet's report. No engine or pulumi runs here:
 * cli/drift.ts gathers, this judges and words.
 */
import type { EngineEvent, StepEventMetadata } from "@pulumi/pulumi/automation";

import { childName, COMMAND_TYPE, STACK_CHILD, CONTAINER_TYPE, IMAGE_TYPE, NETWORK_TYPE, VOLUME_TYPE } from "../components/resource-types";
import { ContainerInfo, containerOwnership, describeLimits, inspectContainer, invisibleDrift, shortId } from "./docker-inspect";
import { policyGateFlags } from "./policy-gate";
import { pulumiCommand, shellQuote } from "./shell";
import { OpenEngine, StackEngine, dockerCommandFor, endpointOf, engineOfUrn, unreachableLine } from "./stack-engines";
import { RecordedResource, recordedName, urnName } from "./stack-state";

export const EXIT_CLEAN = 0;
export const EXIT_DRIFT = 2;
export const EXIT_ERROR = 1;

const KIND: Record<string, string> = {
  [CONTAINER_TYPE]: "container",
  [NETWORK_TYPE]: "network",
  [VOLUME_TYPE]: "volume",
  [IMAGE_TYPE]: "image",
  [COMMAND_TYPE]: "smoke test",
};

/** What one resource looks like after refresh and what `up` will do about it. */
export interface Drift {
  urn: string;
  type: string;
  name: string;
  /** What changed out of band, as refresh (or our own checks) saw it. */
  changes: string[];
  /** The planned step (create, update, replace, delete); undefined when `up` leaves it alone. */
  op?: string;
  /** Properties behind the planned step: what differs, or what forces the replacement. */
  keys: Set<string>;
  /** Replaced only because something it uses is replaced: no difference of its own. */
  dependent?: boolean;
  /** A container under the planned name that the stack did not create. */
  foreign?: ContainerInfo;
  /** Changes only a forced replacement heals. */
  needsReplace?: boolean;
  /** Frozen with `docker pause`: `docker unpause` heals it; pulumi cannot see it. */
  paused?: boolean;
  /** An image the program now names differently: a new digest behind a followed tag, or a new buildkit:image. */
  plannedImage?: string;
  /** The stack's cache guard (a command, like the smoke test). */
  cacheGuard?: boolean;
}

export const DELETED = "deleted out of band";
export const PAUSED = "paused out of band (docker pause: frozen, answers no client; the provider sees it running)";

/**
 * Where a resource's docker calls go and how lines about it read: the stack's
 * one engine, or (on a fleet) the engine of the host the resource is on.
 */
export interface Scope {
  envOf(urn: string): NodeJS.ProcessEnv;
  /** Put before a line about the resource: "" for a single host, "host NAME: " on a fleet. */
  labelOf(urn: string): string;
  /** A docker command line for the resource's engine, as a user pastes it. */
  dockerLine(urn: string, args: string[]): string;
  /** The fleet host a resource is on; undefined for a single host (or outside every host). */
  hostOf(urn: string): string | undefined;
  /** A fleet host is unreachable: no pulumi run may touch it (see {@link healPlan}). */
  partial: boolean;
  /** The recorded commands (smoke test, cache guard) on a host (undefined: a single host): a heal targets them with what it heals. */
  commandsOn(host: string | undefined): string[];
}

/** The URNs of the recorded commands, for {@link Scope.commandsOn}. */
function commandUrns(state: RecordedResource[]): string[] {
  return state.filter((r) => r.type === COMMAND_TYPE).map((r) => r.urn);
}

/** A single host: every call goes to its one engine, lines name no host. */
export function singleHostScope(env: NodeJS.ProcessEnv, state: RecordedResource[] = []): Scope {
  return {
    commandsOn: () => commandUrns(state),
    envOf: () => env,
    labelOf: () => "",
    dockerLine: (_urn, args) => `docker ${args.map(shellQuote).join(" ")}`,
    hostOf: () => undefined,
    partial: false,
  };
}

/** Steps that describe a change; the others repeat them (replacement halves) or are no-ops. */
export const PLANNED_OPS = new Set(["create", "update", "replace", "delete", "import"]);
/** A replacement's reasons are on its halves: `replace` carries the diff, `create-replacement` what forced it. */
export const KEYED_OPS = new Set(["update", "replace", "create-replacement"]);

/** What one check of a fleet found. */
export interface FleetFound {
  /** The hosts in roll order, as the state records them. */
  hosts: StackEngine[];
  state: RecordedResource[];
  /** Hosts whose engine did not answer, with why: not previewed, not inspected. */
  unreachable: Map<string, string>;
  /** Drift on the hosts that answered. */
  drifts: Drift[];
  scope: Scope;
}

/** Each resource's docker calls and lines go to the host it is on; anything outside every host, to this process's engine. */
export function fleetScope(hosts: StackEngine[], opened: OpenEngine[], partial: boolean, state: RecordedResource[] = []): Scope {
  const local = singleHostScope(process.env);
  return {
    // A fleet host's smoke test only: its cache guard waits on the previous host's proof, and targeting it pulled
    // the roll's order into the heal (Pulumi then planned to destroy an untargeted image).
    commandsOn: (host) => commandUrns(state).filter((urn) => engineOfUrn(hosts, urn)?.host === host && !urnName(urn).endsWith(`-${STACK_CHILD.cacheGuard}`)),
    envOf: (urn) => {
      const host = engineOfUrn(hosts, urn);
      return opened.find((engine) => engine.engine === host)?.env ?? local.envOf(urn);
    },
    labelOf: (urn) => {
      const host = engineOfUrn(hosts, urn);
      return host ? `host ${host.host}: ` : "";
    },
    dockerLine: (urn, args) => {
      const host = engineOfUrn(hosts, urn);
      return host ? dockerCommandFor(host, args) : local.dockerLine(urn, args);
    },
    hostOf: (urn) => engineOfUrn(hosts, urn)?.host,
    partial,
  };
}

/**
 * 0 clean, 2 drift, 1 when a host could not be checked: an unreachable engine
 * is an error for a single host too, the fleet's state there is unknown, and
 * `--heal` cannot start an engine. Drift on the others is printed either way.
 */
export function fleetExitCode(found: Pick<FleetFound, "unreachable" | "drifts">): number {
  if (found.unreachable.size > 0) return EXIT_ERROR;
  return found.drifts.length > 0 ? EXIT_DRIFT : EXIT_CLEAN;
}

/**
 * The fleet's report: a summary line, then one line per host and drifted
 * resource in roll order (a clean host and an unreachable one get one line
 * each), then the fixes.
 */
export function fleetReport(found: FleetFound, stackName: string, workDir: string): string[] {
  const { hosts, state, unreachable, drifts, scope } = found;
  const containersOn = (host: StackEngine) => state.filter((r) => r.type === CONTAINER_TYPE && host.urns.includes(r.urn)).length;
  const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? "" : "s"}`;
  const lines: string[] = [];
  const notChecked = unreachable.size > 0 ? `${unreachable.size} of ${plural(hosts.length, "host")} unreachable, not checked` : "";
  if (drifts.length > 0) {
    lines.push(`drift in stack ${stackName}${notChecked ? ` (${notChecked})` : ""}:`);
  } else if (unreachable.size > 0 && unreachable.size === hosts.length) {
    lines.push(`nothing checked: no host of stack ${stackName} answers (${notChecked})`);
  } else if (notChecked) {
    lines.push(`no drift on the hosts that answer, but ${notChecked}: stack ${stackName}`);
  } else {
    const containers = hosts.reduce((sum, host) => sum + containersOn(host), 0);
    lines.push(
      `no drift: stack ${stackName} matches the engines of all ${plural(hosts.length, "host")} (refresh + preview show no changes; ` +
        `state, uploaded files and networks of ${plural(containers, "container")} checked)`,
    );
  }
  for (const host of hosts) {
    const reason = unreachable.get(host.host!);
    if (reason !== undefined) {
      lines.push(`  ${unreachableLine(host, reason)}; not checked`);
      continue;
    }
    const own = drifts.filter((d) => engineOfUrn(hosts, d.urn) === host);
    if (own.length === 0) lines.push(`  host ${host.host}: no drift (${plural(containersOn(host), "container")} checked)`);
    for (const drift of own) lines.push(`  host ${host.host}: ${describe(drift)}`);
  }
  for (const drift of drifts.filter((d) => !engineOfUrn(hosts, d.urn))) lines.push(`  ${describe(drift)}`);

  if (drifts.length === 0 && unreachable.size === 0) return lines;
  const plan = healPlan(drifts, scope);
  const healable = drifts.filter((d) => d.paused || d.foreign || (plan.up.includes(d) && needsUp(d)));
  lines.push(healable.length > 0 ? "fix (or run: npm run drift -- --heal):" : "fix:");
  if (drifts.length > 0) lines.push(...fixes(drifts, stackName, workDir, scope).map((line) => `  ${line}`));
  const waiting = [...new Set(plan.deferred.map((d) => scope.hostOf(d.urn)).filter((h): h is string => h !== undefined))];
  if (scope.partial) {
    for (const host of waiting) lines.push(`  host ${host}: its pending change waits until every host answers; pulumi up then resumes the roll in order`);
  } else if (waiting.length > 0) {
    lines.push(`  ${pendingChangeLine(stackName)} (hosts ${waiting.join(", ")})`);
  }
  for (const host of hosts.filter((h) => unreachable.has(h.host!))) {
    lines.push(
      `  host ${host.host}: make its engine answer at ${endpointOf(host)} (start dockerd there, or repair the ssh or TLS connection), ` +
        `then run npm run drift -- --stack ${shellQuote(stackName)} again${healable.length > 0 ? "; --heal skips it until then" : ""}`,
    );
  }
  return lines;
}

/**
 * What a heal's `pulumi up` may touch: only what changed out of band, always
 * as `--target`, with what must follow it on its host — a resource replaced
 * only because something it uses is re-created (a container on a re-created
 * network), and the smoke test and cache guard (commands), which prove the
 * healed daemon. They are named one by one, not with `--target-dependents`:
 * Pulumi 3.276's targeted refresh then reaches a dependent whose default
 * provider it has not loaded ("unknown provider"). Pending program changes are
 * not drift: a heal leaves them (`deferred`) to `npm run up`, the reviewed
 * deploy. With a fleet host unreachable this also keeps a stopped roll from
 * going on while it is down (two hosts out at once).
 */
export function healPlan(drifts: Drift[], scope: Scope): { target: string[]; up: Drift[]; deferred: Drift[] } {
  // A pause is healed by `docker unpause` alone: a paused container's planned step is the program's, and waits.
  const outOfBand = (d: Drift) => d.changes.some((c) => c !== PAUSED) || Boolean(d.needsReplace) || Boolean(d.foreign);
  const hostsHealed = new Set(drifts.filter(outOfBand).map((d) => scope.hostOf(d.urn)));
  const follows = (d: Drift) => (d.type === COMMAND_TYPE || d.dependent === true) && hostsHealed.has(scope.hostOf(d.urn));
  const up = drifts.filter((d) => outOfBand(d) || follows(d));
  // A replaced container re-runs its smoke test even when the preview could not foresee it (a replacement
  // only our own checks asked for): every command recorded on a healed host is targeted too.
  const commands = [...hostsHealed].flatMap((host) => scope.commandsOn(host));
  const target = [...new Set([...up.map((d) => d.urn), ...commands])];
  return { target, up, deferred: drifts.filter((d) => !up.includes(d) && needsUp(d)) };
}

/** Whether pulumi has to act: anything but a pause, which unpausing alone heals. */
export function needsUp(drift: Drift): boolean {
  return !(drift.paused && drift.op === undefined && !drift.needsReplace && drift.changes.length === 1);
}

/** Joins refresh steps, planned steps and our own container checks into one entry per resource. */
export function analyse(events: EngineEvent[], state: RecordedResource[], scope: Scope): Drift[] {
  const byUrn = new Map<string, Drift>();
  const recorded = new Map(state.map((r) => [r.urn, r]));
  const entry = (meta: StepEventMetadata): Drift => {
    let drift = byUrn.get(meta.urn);
    if (!drift) {
      const source = meta.old ?? meta.new;
      drift = { urn: meta.urn, type: meta.type, name: source ? recordedName(source) : urnName(meta.urn), changes: [], keys: new Set() };
      // A smoke test and the cache guard are both commands: the guard is its stack's `cache-owner` child.
      const parent = source?.parent;
      if (meta.type === COMMAND_TYPE && parent && urnName(meta.urn) === childName(urnName(parent), "cacheGuard")) drift.cacheGuard = true;
      byUrn.set(meta.urn, drift);
    }
    return drift;
  };
  const isTracked = (meta: StepEventMetadata) => meta.type in KIND;

  for (const event of events) {
    const refreshed = event.resOutputsEvent?.metadata;
    if (refreshed?.op === "refresh" && isTracked(refreshed)) {
      if (!refreshed.new) {
        entry(refreshed).changes.push(DELETED);
      } else {
        const changed = refreshChanges(refreshed, scope.envOf(refreshed.urn));
        if (changed.length > 0) entry(refreshed).changes.push(...changed);
      }
    }
    const planned = event.resourcePreEvent?.metadata;
    if (planned && KEYED_OPS.has(planned.op) && isTracked(planned)) {
      for (const key of [...(planned.diffs ?? []), ...(planned.keys ?? [])]) entry(planned).keys.add(key);
    }
    if (planned && PLANNED_OPS.has(planned.op) && isTracked(planned)) {
      const drift = entry(planned);
      drift.op = planned.op;
      drift.dependent = planned.op === "replace" && !planned.diffs?.length;
      const plannedImage = planned.type === IMAGE_TYPE ? planned.new?.inputs.name : undefined;
      if (typeof plannedImage === "string" && plannedImage !== planned.old?.inputs.name) drift.plannedImage = plannedImage;
      if (planned.op === "create" && planned.type === CONTAINER_TYPE) {
        const name = String(planned.new?.inputs.name ?? drift.name);
        const ownership = containerOwnership(name, recorded.get(planned.urn)?.id, scope.envOf(planned.urn));
        // Refresh saw the stack's container gone; one under the same name is a hand-made replacement.
        if (ownership.kind !== "missing") drift.foreign = ownership.info;
      }
    }
  }

  for (const container of state.filter((r) => r.type === CONTAINER_TYPE)) {
    const op = byUrn.get(container.urn)?.op;
    const survives = op === undefined || op === "update";
    const env = scope.envOf(container.urn);
    const ownership = containerOwnership(recordedName(container), container.id, env);
    if (ownership.kind !== "ours") continue;
    // Only a container that survives the update can keep a hand-edited file or a lost network. A pause matters
    // either way: with a fleet host down, a pending replacement waits, and the frozen daemon with it.
    const findings = survives ? invisibleDrift(container, ownership.info, env) : [];
    const paused = ownership.info.State.Paused;
    if (findings.length === 0 && !paused) continue;
    const drift = byUrn.get(container.urn) ?? { urn: container.urn, type: container.type, name: recordedName(container), changes: [], keys: new Set<string>() };
    if (paused) {
      // The engine (and so the provider) still calls it running; buildkitd answers nothing until unpaused.
      drift.changes.push(PAUSED);
      drift.paused = true;
    }
    if (findings.length > 0) {
      drift.changes.push(...findings.map((f) => `${f} (the provider cannot see this)`));
      drift.needsReplace = true;
    }
    byUrn.set(container.urn, drift);
  }

  // A smoke test that re-runs because its container is new is a consequence, not drift of its own.
  const drifts = [...byUrn.values()].filter((d) => d.changes.length > 0 || d.op !== undefined);
  const real = drifts.filter((d) => !(d.type === COMMAND_TYPE && d.changes.length === 0));
  return real.length === 0 ? [] : drifts;
}

/** Property changes refresh found on a resource that still exists. */
function refreshChanges(meta: StepEventMetadata, env: NodeJS.ProcessEnv): string[] {
  const keys = [...new Set(Object.keys(meta.detailedDiff ?? {}).map((k) => k.split(/[.[]/)[0]))];
  const before = meta.old?.outputs ?? {};
  const after = meta.new?.outputs ?? {};
  if (meta.type === CONTAINER_TYPE && keys.includes("mustRun") && after.mustRun === false) {
    const rest = keys.filter((k) => k !== "mustRun").map((k) => describeValueChange(k, before[k], after[k]));
    const live = inspectContainer(String(after.name ?? ""), env);
    const how = live ? ` (${live.State.Status}, exit code ${live.State.ExitCode}${live.State.OOMKilled ? ", killed: out of memory" : ""})` : "";
    return [`stopped out of band${how}`, ...rest];
  }
  return keys.map((k) => describeValueChange(k, before[k], after[k]));
}

function describeValueChange(key: string, before: unknown, after: unknown): string {
  const simple = (v: unknown) => v === undefined || v === null || typeof v !== "object";
  if (simple(before) && simple(after)) return `${key} ${show(before)} → ${show(after)} out of band`;
  if (Array.isArray(before) && Array.isArray(after)) {
    const was = before.map(itemText);
    const now = after.map(itemText);
    const delta = [...now.filter((i) => !was.includes(i)).map((i) => `+${i}`), ...was.filter((i) => !now.includes(i)).map((i) => `-${i}`)];
    if (delta.length > 0) return `${key} changed out of band (${delta.slice(0, 4).join(" ")}${delta.length > 4 ? " …" : ""})`;
  }
  return `${key} changed out of band`;
}

/** Labels read as `name=value`, named things by name, anything else as JSON. */
function itemText(item: unknown): string {
  if (item && typeof item === "object") {
    const record = item as Record<string, unknown>;
    if (typeof record.label === "string") return `${record.label}=${String(record.value)}`;
    if (typeof record.name === "string") return record.name;
  }
  return typeof item === "string" ? item : JSON.stringify(item);
}

function show(value: unknown): string {
  if (value === undefined || value === null || value === "") return "unset";
  return String(value);
}

function plannedAction(drift: Drift): string | undefined {
  const keys = [...drift.keys];
  const because = keys.length > 0 ? ` (${keys.join(", ")})` : "";
  switch (drift.op) {
    case undefined:
      return undefined;
    case "create":
      return drift.changes.includes(DELETED) ? "will be re-created" : "will be created";
    case "update":
      if (drift.type === CONTAINER_TYPE && keys.length === 1 && keys[0] === "mustRun") return "will be started";
      return `will be updated in place${because}`;
    case "replace":
      if (drift.type === COMMAND_TYPE && keys.every((k) => k === "triggers")) return "will re-run (its container changes)";
      return `will be replaced${because}`;
    case "delete":
      return "will be deleted";
    default:
      return `will ${drift.op}`;
  }
}

export function describe(drift: Drift): string {
  const kind = drift.cacheGuard ? "cache guard" : (KIND[drift.type] ?? drift.type);
  const what = [...drift.changes];
  let action = plannedAction(drift);
  if (drift.foreign) {
    const deleted = what.indexOf(DELETED);
    if (deleted >= 0) what.splice(deleted, 1);
    what.unshift(`replaced by hand: exists but was not created by this stack (id ${shortId(drift.foreign.Id)}: ${describeLimits(drift.foreign)})`);
    action = "pulumi up would fail: the name is taken";
  }
  if (drift.type === VOLUME_TYPE && drift.changes.includes(DELETED) && action) action += " (build cache lost)";
  if (drift.needsReplace && !action) action = "pulumi up alone does not fix this: replace it";
  if (drift.paused && !action) action = "pulumi up does not fix this: unpause it";
  // A smoke test re-runs because its container is new: a consequence, not a change of its own.
  if (drift.plannedImage && what.length === 0) {
    // With buildkit:tagRegistry the program names the digest its tag points at now.
    what.push(`the program now names ${drift.plannedImage} (a new image behind a followed tag, or a new buildkit:image)`);
  }
  if (what.length === 0 && drift.type !== COMMAND_TYPE) {
    what.push(
      drift.op === "create"
        ? "not in the stack's state (new in the program, or a previous up failed before creating it)"
        : drift.dependent
          ? "no change of its own; it uses what is replaced"
          : "differs from the program (a pending change, not out-of-band drift)",
    );
  }
  const seen = what.join("; ");
  return `${kind} ${drift.name}: ${seen && action ? `${seen} → ${action}` : seen || action}`;
}

/** The commands that heal what was found, in the order to run them. */
export function fixes(drifts: Drift[], stackName: string, workDir: string, scope: Scope): string[] {
  const lines: string[] = [];
  const foreign = drifts.filter((d) => d.foreign);
  for (const drift of foreign) {
    lines.push(
      `${scope.labelOf(drift.urn)}container ${drift.name} exists but was not created by this stack (id ${shortId(drift.foreign!.Id)}); ` +
        `remove it with \`${scope.dockerLine(drift.urn, ["rm", "-f", drift.name])}\`, then run pulumi up --refresh`,
    );
  }
  for (const drift of drifts.filter((d) => d.paused)) lines.push(scope.dockerLine(drift.urn, ["unpause", drift.name]));
  const plan = healPlan(drifts, scope);
  if (plan.up.some(needsUp)) lines.push(pulumiCommand(stackName, workDir, healUpArgs(plan.up, plan.target, workDir)));
  // A fleet's report words its deferred changes per host (fleetReport).
  if (!scope.partial && plan.deferred.length > 0 && !drifts.some((d) => scope.hostOf(d.urn))) lines.push(pendingChangeLine(stackName));
  return lines;
}

/** What a heal leaves: changes of the program, which the reviewed deploy applies. */
export function pendingChangeLine(stackName: string): string {
  return `pending program changes are not drift and --heal leaves them: deploy them with npm run up -- ${shellQuote(stackName)} (the policy gate, as for any deploy)`;
}

/**
 * The heal's `pulumi up` arguments: refresh (unless only what the provider
 * cannot see is replaced), the replacements our own checks asked for, only
 * the drifted resources targeted, and the policy gate `npm run up` passes.
 */
export function healUpArgs(up: Drift[], target: string[], workDir: string): string[] {
  const replace = up.filter((d) => d.needsReplace).flatMap((d) => ["--replace", shellQuote(d.urn)]);
  const providerVisible = up.some((d) => !d.needsReplace || d.op !== undefined);
  const targets = target.flatMap((urn) => ["--target", shellQuote(urn)]);
  return ["up", ...(providerVisible ? ["--refresh"] : []), ...replace, ...targets, ...policyGateFlags(workDir).map(shellQuote)];
}

/** The first error an operation's engine events reported (what Pulumi printed under Diagnostics), if any. */
export function reportedError(events: EngineEvent[]): string | undefined {
  return events
    .map((e) => e.diagnosticEvent)
    .filter((d) => d?.severity === "error")
    .map((d) => d!.message.trim())[0];
}
