/**
 * `npm run doctor [-- --stack NAME] [--cwd DIR]`: the troubleshooting steps,
 * run in order against a deployed stack (the selected one, else dev). One
 * line per check, `ok` or `FAIL`, and after each failure the command that
 * fixes it. Exit 0 when healthy, 1 otherwise.
 *
 * On a cluster stack (`buildkit:kubeconfig`): the API server, the
 * StatefulSet, and each replica's pod, cache volume and workers (cluster-doctor.ts).
 *
 * On a fleet (`buildkit:hosts`) the same checks run for every host against
 * its own engine, each line naming its host; a host whose engine does not
 * answer fails on one line and the others are still checked.
 */
// First: starts the pulumi calls this CLI makes first while its other modules load.
import "./early-start";

import type { Stack } from "@pulumi/pulumi/automation";

import { DockerSettings, parseDockerSettings } from "../components/docker/config";
import { parseFleetSettings } from "../components/docker/fleet-config";
import { CONTAINER_TYPE } from "../components/resource-types";
import { clusterDoctor } from "./cluster-doctor";
import { isClusterState } from "./cluster-inspect";
import { checkDaemonHost, Report } from "./doctor-checks";
import { firstLine, parseCli, runMain } from "./options";
import { pulumiCommand, shellQuote } from "./shell";
import { OpenEngine, endpointOf, openEngine, probeEngines, stackEngines } from "./stack-engines";
import { describeInterruption, findInterruption, interruptionFix, isInterrupted, LeftoverContainer } from "./interrupted-update";
import { PendingOperation, RecordedResource, bareStackName, openStack, readConfig, readOutputs, readStackState, recordedName, withStackCheck } from "./stack-state";

const USAGE = `usage: npm run doctor [-- --stack NAME] [--cwd DIR]
  Checks the engine, the buildkitd container and the daemon behind the stack's BUILDKIT_HOST;
  on a fleet, every host's (an unreachable host fails, the others are still checked).
  --stack NAME  default: the selected stack, else dev
  --cwd DIR     the Pulumi program's directory (default: this repository)
  exit codes: 0 healthy, 1 a check failed (each failure is followed by its fix)`;

/**
 * The validated settings of every daemon of the stack, from its configuration
 * read once (and only when a check needs it): the fleet's hosts by name, or
 * the single host's under "".
 */
function settingsReader(stack: Stack): (host?: string) => Promise<DockerSettings> {
  let all: Promise<Map<string, DockerSettings>> | undefined;
  return async (host) => {
    all ??= readConfig(stack).then((raw) => {
      const context = { stack: bareStackName(stack) };
      const fleet = parseFleetSettings(raw, context);
      return new Map(fleet ? fleet.map((h) => [h.name, h.settings]) : [["", parseDockerSettings(raw, context)]]);
    });
    const settings = (await all).get(host ?? "");
    if (!settings) throw new Error(`host ${host} is no longer in buildkit:hosts (removed since the last up?)`);
    return settings;
  };
}

/** Containers the interrupted update made, if any: the container checks name them for what they are. */
let leftovers: LeftoverContainer[] = [];

async function main(): Promise<number> {
  const options = parseCli(process.argv.slice(2), USAGE);
  const report = new Report();

  let stackName = options.stack ?? "the selected stack";
  let state: RecordedResource[];
  let pending: PendingOperation[];
  let outputs: Record<string, unknown>;
  let stack: Stack;
  try {
    stack = await openStack(options.stack, options.cwd, "dev");
    stackName = stack.name;
    let read;
    [read, outputs] = await withStackCheck(stack, Promise.all([readStackState(stack), readOutputs(stack)]));
    state = read.resources;
    pending = read.pendingOperations;
  } catch (error) {
    report.fail(`stack ${stackName}: ${firstLine(error)}`, `deploy it: ${pulumiCommand(options.stack ?? "dev", options.cwd, ["up"])}`);
    return 1;
  }
  if (isClusterState(state)) return clusterDoctor(stack, state, outputs, options.cwd, report);
  const { fleet, engines } = stackEngines(state);
  const opened = engines.map((engine) => openEngine(engine));
  const settingsOf = settingsReader(stack);
  try {
    // A killed update (stale lock, pending operations, a container it made and never started) first: it
    // explains the container checks below, and blocks every fix but its own.
    const envOf = (urn: string) => (opened.find((engine) => engine.engine.urns.includes(urn)) ?? opened[0]).env;
    const interruption = await findInterruption(stack, state, pending, envOf);
    leftovers = interruption.leftovers;
    if (isInterrupted(interruption)) {
      report.fail(`stack ${stack.name}: an update was interrupted (a pulumi run killed part-way)`, interruptionFix(interruption, stack.name), describeInterruption(interruption));
    } else {
      report.ok(`stack ${stack.name}: no interrupted update (no stale lock, no pending operations)`);
    }
    if (fleet) {
      const code = await fleetDoctor(stack, state, outputs, opened, options.cwd, settingsOf);
      return report.failures > 0 ? 1 : code;
    }
    return await singleHostDoctor(stack, state, outputs, opened[0], options.cwd, settingsOf, report);
  } finally {
    for (const engine of opened) engine.close();
  }
}

async function singleHostDoctor(
  stack: Stack,
  state: RecordedResource[],
  outputs: Record<string, unknown>,
  engine: OpenEngine,
  workDir: string,
  settingsOf: (host?: string) => Promise<DockerSettings>,
  report: Report,
): Promise<number> {
  const [probe] = await probeEngines([engine]);
  if (!probe.ok) {
    report.fail(`engine: docker version: ${probe.reason}`, "start the engine: bash scripts/provision.sh");
    return 1;
  }
  const host = engine.env.DOCKER_HOST;
  report.ok(`engine: Docker ${probe.version} answers${host ? ` at ${host}` : ""}`);

  const name = typeof outputs.containerName === "string" ? outputs.containerName : undefined;
  const recorded = state.find((r) => r.type === CONTAINER_TYPE);
  const completed = await checkDaemonHost(report, {
    stackName: stack.name,
    workDir,
    name,
    buildkitHost: typeof outputs.buildkitHost === "string" ? outputs.buildkitHost : undefined,
    recorded,
    recordedId: recorded?.id ?? (typeof outputs.containerId === "string" ? outputs.containerId : undefined),
    leftover: leftovers.find((l) => l.name === name),
    env: engine.env,
    settings: () => settingsOf(),
    owner: `stack ${stack.name}`,
  });
  if (!completed) return 1;

  console.log(report.failures === 0 ? `healthy: stack ${stack.name}` : `${report.failures} check${report.failures === 1 ? "" : "s"} failed: stack ${stack.name}`);
  return report.failures === 0 ? 0 : 1;
}

/**
 * Every host of a fleet: all engines probed at once (bounded), then each
 * host's checks against its own engine, every line naming the host. A host
 * whose engine does not answer gets one failing line; the others are checked
 * as usual. Ends with one line per host.
 */
async function fleetDoctor(
  stack: Stack,
  state: RecordedResource[],
  outputs: Record<string, unknown>,
  opened: OpenEngine[],
  workDir: string,
  settingsOf: (host?: string) => Promise<DockerSettings>,
): Promise<number> {
  const probes = await probeEngines(opened);
  const endpoints = Array.isArray(outputs.fleetEndpoints) ? (outputs.fleetEndpoints as { name?: unknown; buildkitHost?: unknown }[]) : [];
  const summary: string[] = [];
  for (const [index, { engine, env }] of opened.entries()) {
    const host = engine.host!;
    const report = new Report(`host ${host}: `);
    const probe = probes[index];
    if (!probe.ok) {
      report.fail(
        `engine: unreachable at ${endpointOf(engine)}: ${probe.reason}`,
        `make the engine answer there (start dockerd on host ${host}, or repair the ssh or TLS connection: docker version must answer)`,
      );
      summary.push(`FAIL  host ${host}: unreachable at ${endpointOf(engine)}`);
      continue;
    }
    report.ok(`engine: Docker ${probe.version} answers at ${endpointOf(engine)}`);
    const recorded = state.find((r) => r.type === CONTAINER_TYPE && engine.urns.includes(r.urn));
    const endpoint = endpoints.find((e) => e.name === host);
    await checkDaemonHost(report, {
      stackName: stack.name,
      workDir,
      name: recorded ? recordedName(recorded) : undefined,
      buildkitHost: typeof endpoint?.buildkitHost === "string" ? endpoint.buildkitHost : undefined,
      recorded,
      recordedId: recorded?.id,
      leftover: leftovers.find((l) => recorded && l.name === recordedName(recorded)),
      env,
      settings: () => settingsOf(host),
      owner: `stack ${stack.name}`,
    });
    summary.push(report.failures === 0 ? `ok    host ${host}: healthy` : `FAIL  host ${host}: ${report.failures} check${report.failures === 1 ? "" : "s"} failed`);
  }

  const failed = summary.filter((line) => line.startsWith("FAIL")).length;
  console.log(`hosts of stack ${stack.name}:`);
  for (const line of summary) console.log(line);
  if (probes.some((probe) => !probe.ok)) {
    console.log(`      while a host is unreachable, pulumi up fails on it: npm run drift -- --stack ${shellQuote(stack.name)} --heal heals the others`);
  }
  console.log(failed === 0 ? `healthy: stack ${stack.name} (${opened.length} host${opened.length === 1 ? "" : "s"})` : `${failed} of ${opened.length} hosts failed: stack ${stack.name}`);
  return failed === 0 ? 0 : 1;
}

if (require.main === module) runMain(main);
