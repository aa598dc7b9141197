/**
 * `npm run drift -- --stack NAME [--cwd DIR] [--heal]`: has anything changed
 * behind the stack's back? Refreshes in memory and previews (`pulumi preview
 * --refresh`: the stack's state is not written), then adds what the docker
 * provider cannot see: a container replaced by hand under the same name, a
 * paused container, uploaded files edited inside the container, a container
 * detached from its network. One line per drifted resource, then the commands
 * that heal it.
 *
 * `--heal` then runs those commands itself (unpause; `pulumi up --refresh`
 * with the replacements the check named) and checks again. It never removes a
 * container the stack did not create.
 *
 * Exit codes: 0 no drift (with --heal: clean after healing), 2 drift (or drift
 * left after --heal), 1 error (bad arguments, no such stack, engine
 * unreachable, preview or up failed).
 */
import type { EngineEvent, Stack, StepEventMetadata } from "@pulumi/pulumi/automation";

import { COMMAND_TYPE, CONTAINER_TYPE, IMAGE_TYPE, NETWORK_TYPE, VOLUME_TYPE } from "../components/resource-types";
import {
  ContainerInfo,
  RecordedResource,
  UsageError,
  containerOwnership,
  describeLimits,
  docker,
  engineStatus,
  firstLine,
  inspectContainer,
  invisibleDrift,
  openStack,
  parseCli,
  pulumiCommand,
  readState,
  recordedName,
  runMain,
  shellQuote,
  shortId,
  urnName,
  useDockerHostOf,
} from "./stack-inspect";

const USAGE = `usage: npm run drift -- --stack NAME [--cwd DIR] [--heal]
  Refreshes in memory (state is not written), previews, and reports what changed out of band.
  --cwd DIR  the Pulumi program's directory (default: this repository)
  --heal     then heal it: unpause, pulumi up --refresh with the replacements named, check again
  exit codes: 0 no drift (--heal: clean afterwards), 2 drift (--heal: drift left), 1 error`;

const EXIT_CLEAN = 0;
const EXIT_DRIFT = 2;

const KIND: Record<string, string> = {
  [CONTAINER_TYPE]: "container",
  [NETWORK_TYPE]: "network",
  [VOLUME_TYPE]: "volume",
  [IMAGE_TYPE]: "image",
  [COMMAND_TYPE]: "smoke test",
};

/** What one resource looks like after refresh and what `up` will do about it. */
interface Drift {
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
}

const DELETED = "deleted out of band";
const PAUSED = "paused out of band (docker pause: frozen, answers no client; the provider sees it running)";

/** Steps that describe a change; the others repeat them (replacement halves) or are no-ops. */
const PLANNED_OPS = new Set(["create", "update", "replace", "delete", "import"]);
/** A replacement's reasons are on its halves: `replace` carries the diff, `create-replacement` what forced it. */
const KEYED_OPS = new Set(["update", "replace", "create-replacement"]);

async function main(): Promise<number> {
  const options = parseCli(process.argv.slice(2), USAGE, true);
  if (!options.stack) throw new UsageError(`--stack NAME is required\n${USAGE}`);
  const stack = await openStack(options.stack, options.cwd);

  const found = await check(stack);
  if (found.drifts.length === 0) {
    printClean(stack.name, found.state);
    return EXIT_CLEAN;
  }
  printDrift(found.drifts, stack.name, options.cwd);
  if (!options.heal) return EXIT_DRIFT;

  if (!(await heal(stack, found.drifts))) return EXIT_DRIFT;
  const after = await check(stack);
  if (after.drifts.length === 0) {
    console.log(`healed: stack ${stack.name}`);
    printClean(stack.name, after.state);
    return EXIT_CLEAN;
  }
  console.log("still drifting after --heal:");
  printDrift(after.drifts, stack.name, options.cwd);
  return EXIT_DRIFT;
}

/** One drift check: the recorded state, and what differs from it now. */
async function check(stack: Stack): Promise<{ state: RecordedResource[]; drifts: Drift[] }> {
  const state = await readState(stack);
  useDockerHostOf(state);
  const engine = engineStatus();
  if (!engine.ok) throw new UsageError(`the Docker engine does not answer (${engine.reason}); start it: bash scripts/provision.sh`);

  const events: EngineEvent[] = [];
  try {
    await stack.preview({ refresh: true, onEvent: (event) => events.push(event) });
  } catch (error) {
    throw new UsageError(`preview --refresh of stack ${stack.name} failed: ${reportedError(events) ?? firstLine(error)}`);
  }
  return { state, drifts: analyse(events, state) };
}

function reportedError(events: EngineEvent[]): string | undefined {
  return events
    .map((e) => e.diagnosticEvent)
    .filter((d) => d?.severity === "error")
    .map((d) => d!.message.trim())[0];
}

function printClean(stackName: string, state: RecordedResource[]): void {
  const containers = state.filter((r) => r.type === CONTAINER_TYPE).length;
  console.log(
    `no drift: stack ${stackName} matches the engine (refresh + preview show no changes; ` +
      `state, uploaded files and networks of ${containers} container${containers === 1 ? "" : "s"} checked)`,
  );
}

function printDrift(drifts: Drift[], stackName: string, workDir: string): void {
  console.log(`drift in stack ${stackName}:`);
  for (const drift of drifts) console.log(`  ${describe(drift)}`);
  console.log("fix (or run: npm run drift -- --heal):");
  for (const line of fixes(drifts, stackName, workDir)) console.log(`  ${line}`);
}

/**
 * Runs the fix: `docker unpause` for paused containers, then one `pulumi up
 * --refresh` with every replacement the check asked for. A container under the
 * stack's name that the stack did not create may be someone's: it is left
 * alone and the heal stops (false).
 */
async function heal(stack: Stack, drifts: Drift[]): Promise<boolean> {
  const foreign = drifts.filter((d) => d.foreign);
  if (foreign.length > 0) {
    for (const drift of foreign) {
      console.log(
        `heal: not removing container ${drift.name} (id ${shortId(drift.foreign!.Id)}): this stack did not create it; ` +
          `remove it yourself (docker rm -f ${shellQuote(drift.name)}) and run --heal again`,
      );
    }
    return false;
  }
  for (const drift of drifts.filter((d) => d.paused)) {
    console.log(`heal: docker unpause ${shellQuote(drift.name)}`);
    const unpaused = docker(["unpause", drift.name]);
    if (unpaused.code !== 0) throw new UsageError(`docker unpause ${drift.name} failed: ${firstLine(unpaused.stderr)}`);
  }
  if (!drifts.some(needsUp)) return true;

  const replace = drifts.filter((d) => d.needsReplace).map((d) => d.urn);
  console.log(`heal: pulumi up --refresh${replace.map((urn) => ` --replace ${shellQuote(urn)}`).join("")} --stack ${shellQuote(stack.name)}`);
  const events: EngineEvent[] = [];
  try {
    await stack.up({ refresh: true, replace, onOutput: (out) => process.stdout.write(out), onEvent: (event) => events.push(event) });
  } catch (error) {
    throw new UsageError(`pulumi up of stack ${stack.name} failed: ${reportedError(events) ?? firstLine(error)}`);
  }
  return true;
}

/** Whether pulumi has to act: anything but a pause, which unpausing alone heals. */
function needsUp(drift: Drift): boolean {
  return !(drift.paused && drift.op === undefined && !drift.needsReplace && drift.changes.length === 1);
}

/** Joins refresh steps, planned steps and our own container checks into one entry per resource. */
function analyse(events: EngineEvent[], state: RecordedResource[]): Drift[] {
  const byUrn = new Map<string, Drift>();
  const recorded = new Map(state.map((r) => [r.urn, r]));
  const entry = (meta: StepEventMetadata): Drift => {
    let drift = byUrn.get(meta.urn);
    if (!drift) {
      const source = meta.old ?? meta.new;
      drift = { urn: meta.urn, type: meta.type, name: source ? recordedName(source) : urnName(meta.urn), changes: [], keys: new Set() };
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
        const changed = refreshChanges(refreshed);
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
        const ownership = containerOwnership(name, recorded.get(planned.urn)?.id);
        // Refresh saw the stack's container gone; one under the same name is a hand-made replacement.
        if (ownership.kind !== "missing") drift.foreign = ownership.info;
      }
    }
  }

  for (const container of state.filter((r) => r.type === CONTAINER_TYPE)) {
    // Only a container that survives the update can keep a hand-edited file or a lost network.
    const op = byUrn.get(container.urn)?.op;
    if (op !== undefined && op !== "update") continue;
    const ownership = containerOwnership(recordedName(container), container.id);
    if (ownership.kind !== "ours") continue;
    const findings = invisibleDrift(container, ownership.info);
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
function refreshChanges(meta: StepEventMetadata): string[] {
  const keys = [...new Set(Object.keys(meta.detailedDiff ?? {}).map((k) => k.split(/[.[]/)[0]))];
  const before = meta.old?.outputs ?? {};
  const after = meta.new?.outputs ?? {};
  if (meta.type === CONTAINER_TYPE && keys.includes("mustRun") && after.mustRun === false) {
    const rest = keys.filter((k) => k !== "mustRun").map((k) => describeValueChange(k, before[k], after[k]));
    const live = inspectContainer(String(after.name ?? ""));
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

function describe(drift: Drift): string {
  // Two commands: the smoke test and the cache guard (components/buildkit-stack.ts).
  const kind = drift.type === COMMAND_TYPE && drift.urn.endsWith("-cache-owner") ? "cache guard" : (KIND[drift.type] ?? drift.type);
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
function fixes(drifts: Drift[], stackName: string, workDir: string): string[] {
  const lines: string[] = [];
  const foreign = drifts.filter((d) => d.foreign);
  for (const drift of foreign) {
    lines.push(
      `container ${drift.name} exists but was not created by this stack (id ${shortId(drift.foreign!.Id)}); ` +
        `remove it with \`docker rm -f ${shellQuote(drift.name)}\`, then run pulumi up --refresh`,
    );
  }
  for (const drift of drifts.filter((d) => d.paused)) lines.push(`docker unpause ${shellQuote(drift.name)}`);
  if (!drifts.some(needsUp)) return lines;
  const replace = drifts.filter((d) => d.needsReplace).flatMap((d) => ["--replace", shellQuote(d.urn)]);
  const providerVisible = drifts.some((d) => !d.needsReplace || d.op !== undefined);
  const upArgs = ["up", ...(providerVisible ? ["--refresh"] : []), ...replace];
  lines.push(pulumiCommand(stackName, workDir, upArgs));
  return lines;
}

if (require.main === module) runMain(main);
