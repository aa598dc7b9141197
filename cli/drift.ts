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
 * On a cluster stack (`buildkit:kubeconfig`) see cluster-drift.ts: the same
 * report and heal for the cluster's objects and each replica's cache volume.
 *
 * On a fleet (`buildkit:hosts`) every host is checked, one line per host and
 * drifted resource, each host's docker calls against its own engine. A host
 * whose engine does not answer gets one line saying so, and the others are
 * still previewed (`--exclude` the unreachable host's resources: a whole-stack
 * preview fails at the first provider that cannot connect); `--heal` heals what
 * drifted on the reachable hosts (`--target`: a pending roll waits for the
 * dead host) and says which host it skipped.
 *
 * Exit codes: 0 no drift (with --heal: clean after healing), 2 drift (or drift
 * left after --heal), 1 error (bad arguments, no such stack, engine
 * unreachable, preview or up failed). A fleet with an unreachable host exits 1
 * even when the others drift (their drift is printed in full): the check is
 * incomplete, and no `--heal` can start a stopped engine.
 */
// First: starts the pulumi calls this CLI makes first while its other modules load.
import "./early-start";

import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";

import { DRIFT_CHECK_ENV } from "../components/docker/engine-preflight";
import { CONTAINER_TYPE } from "../components/resource-types";
import { clusterDriftMain } from "./cluster-drift";
import { isClusterState } from "./cluster-inspect";
import { docker, shortId } from "./docker-inspect";
import {
  Drift,
  EXIT_CLEAN,
  EXIT_DRIFT,
  EXIT_ERROR,
  FleetFound,
  Scope,
  analyse,
  describe,
  fixes,
  healUpArgs,
  fleetExitCode,
  fleetReport,
  fleetScope,
  healPlan,
  needsUp,
  pendingChangeLine,
  reportedError,
  singleHostScope,
} from "./drift-report";
import { clearInterruption, describeInterruption, findInterruption, Interruption, interruptionFix, isInterrupted, recoverable } from "./interrupted-update";
import { UsageError, firstLine, parseCli, repoRoot, runMain } from "./options";
import { policyGate, policyGateFlags } from "./policy-gate";
import { shellQuote } from "./shell";
import { OpenEngine, openEngine, probeEngines, stackEngines, unreachableExcludes } from "./stack-engines";
import { RecordedResource, StackState, openStack, readState, readStackState, withStackCheck } from "./stack-state";

const USAGE = `usage: npm run drift -- --stack NAME [--cwd DIR] [--heal]
  Refreshes in memory (state is not written), previews, and reports what changed out of band.
  --cwd DIR  the Pulumi program's directory (default: this repository)
  --heal     then heal it: unpause, pulumi up --refresh with the replacements named, check again
  A fleet: every host is checked; an unreachable host is named and skipped, the others still checked.
  exit codes: 0 no drift (--heal: clean afterwards), 2 drift (--heal: drift left), 1 error
  (a fleet with an unreachable host: 1, after printing what the other hosts show)`;

async function main(): Promise<number> {
  // The program's previews (which inherit this environment) leave a name another program holds to this check:
  // it names the container that took it and what heals it, where the engine preflight would stop the preview.
  process.env[DRIFT_CHECK_ENV] = "1";
  const options = parseCli(process.argv.slice(2), USAGE, true);
  if (!options.stack) throw new UsageError(`--stack NAME is required\n${USAGE}`);
  const stack = await openStack(options.stack, options.cwd);

  // The whole stack's preview starts together with the read of its state, not after it: it is
  // most of the check's time, and it is the preview the check needs unless the state names a
  // fleet host that does not answer (then it is stopped, and one without that host runs).
  const speculative = startPreview(stack);
  let read: StackState;
  try {
    read = await withStackCheck(stack, readStackState(stack));
  } catch (error) {
    await stopPreview(speculative);
    throw error;
  }
  const state = read.resources;
  if (isClusterState(state)) {
    return clusterDriftMain(stack, state, options.cwd, options.heal, () => previewed(stack, speculative), () => previewed(stack, startPreview(stack)));
  }
  const { fleet, engines } = stackEngines(state);
  const opened = engines.map((engine) => openEngine(engine));
  try {
    // What a killed update left (a stale lock, pending operations, a container never recorded) comes first:
    // it blocks every pulumi up, so no other fix works until it is recovered.
    const scope = fleet ? fleetScope(engines, opened, false, state) : singleHostScope(opened[0].env, state);
    const interruption = await findInterruption(stack, state, read.pendingOperations, scope.envOf);
    if (isInterrupted(interruption)) {
      printInterruption(interruption, stack.name, scope);
      if (options.heal) {
        await stopPreview(speculative);
        return await recover(stack, interruption, scope, opened, fleet);
      }
    }
    const code = fleet
      ? await fleetMain(stack, state, opened, options.cwd, options.heal, speculative)
      : await singleHostMain(stack, state, opened[0], options.cwd, options.heal, speculative);
    // An interrupted update is not a clean stack, whatever the preview shows.
    return isInterrupted(interruption) && code === EXIT_CLEAN ? EXIT_DRIFT : code;
  } catch (error) {
    await stopPreview(speculative);
    throw error;
  } finally {
    for (const engine of opened) engine.close();
  }
}

function printInterruption(found: Interruption, stackName: string, scope: Scope): void {
  console.log(`interrupted update in stack ${stackName} (a pulumi run was killed part-way):`);
  for (const line of describeInterruption(found, scope.labelOf)) console.log(`  ${line}`);
  if (found.lockUnchecked) console.log(`  (${found.lockUnchecked})`);
  console.log("fix:");
  console.log(`  ${interruptionFix(found, stackName)}`);
}

/**
 * `--heal` of an interrupted update: the leftovers cleared (see
 * clearInterruption), then the update the kill stopped run again in full —
 * the state already holds part of it, so a targeted up could not finish it —
 * under the policy gate, then a fresh check.
 */
async function recover(stack: Stack, found: Interruption, scope: Scope, opened: OpenEngine[], fleet: boolean): Promise<number> {
  if (!recoverable(found)) {
    console.log(`heal: not recovering: ${interruptionFix(found, stack.name)}`);
    return EXIT_ERROR;
  }
  await clearInterruption(stack, found, scope.envOf, (line) => console.log(line));
  console.log(`heal: pulumi up --refresh ${policyGateFlags(repoRoot).map(shellQuote).join(" ")} --stack ${shellQuote(stack.name)} (re-runs the interrupted update)`);
  const events: EngineEvent[] = [];
  try {
    await stack.up({ refresh: true, ...policyGate(), onOutput: (out) => process.stdout.write(out), onEvent: (event) => events.push(event) });
  } catch (error) {
    throw new UsageError(`pulumi up of stack ${stack.name} failed: ${reportedError(events) ?? firstLine(error)}`);
  }
  const after = await readStackState(stack);
  const left = await findInterruption(stack, after.resources, after.pendingOperations, scope.envOf);
  if (isInterrupted(left)) {
    printInterruption(left, stack.name, scope);
    return EXIT_DRIFT;
  }
  console.log(`recovered: stack ${stack.name} (the interrupted update is finished)`);
  if (fleet) {
    const found2 = await checkFleet(stack, after.resources, opened);
    printLines(fleetReport(found2, stack.name, stack.workspace.workDir));
    return fleetExitCode(found2);
  }
  const checked = await check(stack, opened[0], scope, after.resources);
  if (checked.drifts.length > 0) {
    printDrift(checked.drifts, stack.name, stack.workspace.workDir, scope);
    return EXIT_DRIFT;
  }
  printClean(stack.name, checked.state);
  return EXIT_CLEAN;
}

async function singleHostMain(stack: Stack, state: RecordedResource[], engine: OpenEngine, workDir: string, healing: boolean, running: RunningPreview): Promise<number> {
  const scope = singleHostScope(engine.env, state);
  const found = await check(stack, engine, scope, state, running);
  if (found.drifts.length === 0) {
    printClean(stack.name, found.state);
    return EXIT_CLEAN;
  }
  printDrift(found.drifts, stack.name, workDir, scope);
  if (!healing) return EXIT_DRIFT;

  if (!(await heal(stack, found.drifts, scope))) return EXIT_DRIFT;
  const after = await check(stack, engine, scope);
  if (after.drifts.length === 0) {
    console.log(`healed: stack ${stack.name}`);
    printClean(stack.name, after.state);
    return EXIT_CLEAN;
  }
  // What is left may be the program's own pending change, which --heal leaves to npm run up.
  const pending = healPlan(after.drifts, scope).deferred;
  if (after.drifts.every((d) => pending.includes(d))) {
    console.log(`healed: stack ${stack.name} (nothing out of band is left; the program's pending changes wait for npm run up)`);
    printDrift(after.drifts, stack.name, workDir, scope);
    return EXIT_CLEAN;
  }
  console.log("still drifting after --heal:");
  printDrift(after.drifts, stack.name, workDir, scope);
  return EXIT_DRIFT;
}

/**
 * One drift check of a single host: the recorded state (read now unless
 * given), and what differs from it now, from `running` (a preview of the
 * whole stack already started) or a preview started here.
 */
async function check(
  stack: Stack,
  engine: OpenEngine,
  scope: Scope,
  known?: RecordedResource[],
  running?: RunningPreview,
): Promise<{ state: RecordedResource[]; drifts: Drift[] }> {
  const state = known ?? (await readState(stack));
  const [probe] = await probeEngines([engine]);
  if (!probe.ok) {
    await stopPreview(running);
    throw new UsageError(`the Docker engine does not answer (${probe.reason}); start it: bash scripts/provision.sh`);
  }
  const events = await previewed(stack, running ?? startPreview(stack));
  return { state, drifts: analyse(events, state, scope) };
}

/** A `pulumi preview --refresh` under way, with the events it has sent so far. */
interface RunningPreview {
  done: Promise<{ events: EngineEvent[]; error?: unknown }>;
  controller: AbortController;
}

function startPreview(stack: Stack, exclude?: string[]): RunningPreview {
  const controller = new AbortController();
  const events: EngineEvent[] = [];
  const done = stack
    .preview({ refresh: true, ...(exclude ? { exclude } : {}), signal: controller.signal, onEvent: (event) => events.push(event) })
    .then(
      () => ({ events }),
      (error: unknown) => ({ events, error }),
    );
  return { done, controller };
}

/** Stops a preview whose answer is no longer wanted (the CLI is cancelled, as by ^C), and waits for it to end. */
async function stopPreview(running?: RunningPreview): Promise<void> {
  if (!running) return;
  running.controller.abort();
  await running.done;
}

/** The events of a preview that must succeed. */
async function previewed(stack: Stack, running: RunningPreview): Promise<EngineEvent[]> {
  const { events, error } = await running.done;
  if (error !== undefined) throw new UsageError(`preview --refresh of stack ${stack.name} failed: ${reportedError(events) ?? firstLine(error)}`);
  return events;
}


function printClean(stackName: string, state: RecordedResource[]): void {
  const containers = state.filter((r) => r.type === CONTAINER_TYPE).length;
  console.log(
    `no drift: stack ${stackName} matches the engine (refresh + preview show no changes; ` +
      `state, uploaded files and networks of ${containers} container${containers === 1 ? "" : "s"} checked)`,
  );
}

function printDrift(drifts: Drift[], stackName: string, workDir: string, scope: Scope): void {
  console.log(`drift in stack ${stackName}:`);
  for (const drift of drifts) console.log(`  ${describe(drift)}`);
  console.log("fix (or run: npm run drift -- --heal):");
  for (const line of fixes(drifts, stackName, workDir, scope)) console.log(`  ${line}`);
}

function printLines(lines: string[]): void {
  for (const line of lines) console.log(line);
}

/**
 * Every host of a fleet: each engine probed first (bounded, all at once),
 * then one preview of what the reachable hosts hold, then our own container
 * checks per host against that host's engine.
 */
async function fleetMain(stack: Stack, state: RecordedResource[], opened: OpenEngine[], workDir: string, healing: boolean, running?: RunningPreview): Promise<number> {
  const found = await checkFleet(stack, state, opened, running);
  printLines(fleetReport(found, stack.name, workDir));
  if (healing) {
    for (const [name, reason] of found.unreachable) console.log(`heal: host ${name} skipped: unreachable (${reason})`);
  }
  if (!healing || found.drifts.length === 0) return fleetExitCode(found);

  if (!(await heal(stack, found.drifts, found.scope))) return found.unreachable.size > 0 ? EXIT_ERROR : EXIT_DRIFT;
  const after = await checkFleet(stack, await readState(stack), opened);
  // A roll that waits for the dead host is not drift that --heal failed to heal.
  const leftToHeal = after.drifts.filter((d) => !healPlan(after.drifts, after.scope).deferred.includes(d));
  if (leftToHeal.length === 0) {
    const skipped = [...after.unreachable.keys()];
    console.log(`healed: stack ${stack.name}${skipped.length > 0 ? ` on the hosts that answer (skipped: ${skipped.join(", ")})` : ""}`);
  } else {
    console.log("still drifting after --heal:");
  }
  printLines(fleetReport(after, stack.name, workDir));
  return fleetExitCode(after);
}

/** `running`: a preview of the whole stack already started, used when every host answers. */
async function checkFleet(stack: Stack, state: RecordedResource[], opened: OpenEngine[], running?: RunningPreview): Promise<FleetFound> {
  const hosts = opened.map((engine) => engine.engine);
  const probes = await probeEngines(opened);
  const unreachable = new Map<string, string>();
  probes.forEach((probe, index) => {
    if (!probe.ok) unreachable.set(hosts[index].host!, probe.reason);
  });
  const exclude = unreachableExcludes(hosts, new Set(unreachable.keys()));
  const scope = fleetScope(hosts, opened, unreachable.size > 0, state);
  if (exclude || (hosts.length > 0 && unreachable.size === hosts.length)) {
    // A whole-stack preview fails at the first provider that cannot connect.
    await stopPreview(running);
    running = undefined;
  }
  if (hosts.length > 0 && unreachable.size === hosts.length) return { hosts, state, unreachable, drifts: [], scope };

  const events = await previewed(stack, running ?? startPreview(stack, exclude));
  const checked = exclude ? state.filter((r) => !exclude.includes(r.urn)) : state;
  return { hosts, state, unreachable, drifts: analyse(events, checked, scope), scope };
}

/**
 * Runs the fix: `docker unpause` for paused containers, then one `pulumi up
 * --refresh` with every replacement the check asked for. A container under the
 * stack's name that the stack did not create may be someone's: it is left
 * alone and the heal stops (false).
 */
async function heal(stack: Stack, drifts: Drift[], scope: Scope): Promise<boolean> {
  const foreign = drifts.filter((d) => d.foreign);
  if (foreign.length > 0) {
    for (const drift of foreign) {
      console.log(
        `heal: ${scope.labelOf(drift.urn)}not removing container ${drift.name} (id ${shortId(drift.foreign!.Id)}): this stack did not create it; ` +
          `remove it yourself (${scope.dockerLine(drift.urn, ["rm", "-f", drift.name])}) and run --heal again`,
      );
    }
    return false;
  }
  const plan = healPlan(drifts, scope);
  for (const drift of plan.deferred) {
    console.log(
      scope.partial
        ? `heal: ${scope.labelOf(drift.urn)}left until every host answers (the roll resumes then): ${describe(drift)}`
        : `heal: ${scope.labelOf(drift.urn)}left alone, not out of band: ${describe(drift)}`,
    );
  }
  if (!scope.partial && plan.deferred.length > 0) console.log(`heal: ${pendingChangeLine(stack.name)}`);
  for (const drift of drifts.filter((d) => d.paused)) {
    console.log(`heal: ${scope.labelOf(drift.urn)}docker unpause ${shellQuote(drift.name)}`);
    const unpaused = docker(["unpause", drift.name], scope.envOf(drift.urn));
    if (unpaused.code !== 0) throw new UsageError(`docker unpause ${drift.name} failed: ${firstLine(unpaused.stderr)}`);
  }
  if (!plan.up.some(needsUp)) return true;

  // Only what drifted (--target), under the policy gate `npm run up` deploys through.
  const replace = plan.up.filter((d) => d.needsReplace).map((d) => d.urn);
  // The heal always refreshes first (what the printed fix leaves out when only our own checks saw the drift).
  const args = healUpArgs(plan.up, plan.target, repoRoot);
  if (!args.includes("--refresh")) args.splice(1, 0, "--refresh");
  console.log(`heal: pulumi ${args.join(" ")} --stack ${shellQuote(stack.name)}`);
  const events: EngineEvent[] = [];
  try {
    await stack.up({
      refresh: true,
      replace,
      target: plan.target,
      ...policyGate(),
      onOutput: (out) => process.stdout.write(out),
      onEvent: (event) => events.push(event),
    });
  } catch (error) {
    throw new UsageError(`pulumi up of stack ${stack.name} failed: ${reportedError(events) ?? firstLine(error)}`);
  }
  return true;
}

if (require.main === module) runMain(main);
