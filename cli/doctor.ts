/**
 * `npm run doctor [-- --stack NAME] [--cwd DIR]`: the troubleshooting steps,
 * run in order against a deployed stack (the selected one, else dev). One
 * line per check, `ok` or `FAIL`, and after each failure the command that
 * fixes it. Exit 0 when healthy, 1 otherwise.
 *
 * On a fleet (`buildkit:hosts`) the same checks run for every host against
 * its own engine, each line naming its host; a host whose engine does not
 * answer fails on one line and the others are still checked.
 */
// First: starts the pulumi calls this CLI makes first while its other modules load.
import "./early-start";

import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import type { Stack } from "@pulumi/pulumi/automation";

import { DockerSettings, parseDockerSettings } from "../components/docker/config";
import { FleetHostSettings, parseFleetSettings } from "../components/docker/fleet-config";
import { CONTAINER_TYPE } from "../components/resource-types";
import { runCommand } from "./command";
import { FleetHost, endpointOf, fleetHostsOf, openHostEngine, probeEngine } from "./fleet-inspect";
import {
  ContainerInfo,
  RecordedResource,
  containerLogs,
  containerOwnership,
  describeLimits,
  engineEnv,
  engineHost,
  engineStatus,
  firstLine,
  formatMib,
  inspectContainer,
  openStack,
  parseCli,
  pulumiCommand,
  readOutputs,
  readState,
  recordedName,
  runMain,
  shellQuote,
  shortId,
  useDockerHostOf,
  withStackCheck,
} from "./stack-inspect";

const USAGE = `usage: npm run doctor [-- --stack NAME] [--cwd DIR]
  Checks the engine, the buildkitd container and the daemon behind the stack's BUILDKIT_HOST;
  on a fleet, every host's (an unreachable host fails, the others are still checked).
  --stack NAME  default: the selected stack, else dev
  --cwd DIR     the Pulumi program's directory (default: this repository)
  exit codes: 0 healthy, 1 a check failed (each failure is followed by its fix)`;

const LOG_LINES = 20;
/** Bound for a container whose healthcheck has not decided yet (start period + 3 probes of 5s, with margin). */
const HEALTH_SETTLE_MS = 45_000;
const BUILDCTL_TIMEOUT_MS = 30_000;

class Report {
  failures = 0;
  /** `prefix` names the fleet host every line is about ("" for a single host). */
  constructor(private readonly prefix = "") {}
  ok(what: string): void {
    console.log(`ok    ${this.prefix}${what}`);
  }
  /** Worth knowing, not broken: does not fail the run. */
  warn(what: string, advice: string, details: string[] = []): void {
    console.log(`warn  ${this.prefix}${what}`);
    for (const line of details) console.log(`        ${line}`);
    console.log(`      advice: ${advice}`);
  }
  fail(what: string, fix: string, details: string[] = []): void {
    this.failures++;
    console.log(`FAIL  ${this.prefix}${what}`);
    for (const line of details) console.log(`        ${line}`);
    console.log(`      fix: ${fix}`);
  }
}

/** One daemon to check: its container on its engine, and how clients reach it. */
interface DaemonTarget {
  stackName: string;
  workDir: string;
  /** The container's name; undefined when the stack recorded none (never deployed). */
  name?: string;
  buildkitHost?: string;
  /** The container as the state recorded it. */
  recorded?: RecordedResource;
  recordedId?: string;
  /** Environment of the docker and buildctl calls: the daemon's engine. */
  env: NodeJS.ProcessEnv;
  /** The daemon's validated settings (for buildctl's client certificate and the GC ceiling); throws on bad config. */
  settings(): Promise<DockerSettings>;
  /** Where the "not deployed" failure points: the stack, or a fleet host of it. */
  owner: string;
}

async function main(): Promise<number> {
  const options = parseCli(process.argv.slice(2), USAGE);
  const report = new Report();

  let stackName = options.stack ?? "the selected stack";
  let state: RecordedResource[];
  let outputs: Record<string, unknown>;
  let stack: Stack;
  try {
    stack = await openStack(options.stack, options.cwd, "dev");
    stackName = stack.name;
    [state, outputs] = await withStackCheck(stack, Promise.all([readState(stack), readOutputs(stack)]));
  } catch (error) {
    report.fail(`stack ${stackName}: ${firstLine(error)}`, `deploy it: ${pulumiCommand(options.stack ?? "dev", options.cwd, ["up"])}`);
    return 1;
  }
  const hosts = fleetHostsOf(state);
  if (hosts) return fleetDoctor(stack, state, outputs, hosts, options.cwd);
  useDockerHostOf(state);

  const engine = engineStatus();
  if (!engine.ok) {
    report.fail(`engine: docker info: ${engine.reason}`, "start the engine: bash scripts/provision.sh");
    return 1;
  }
  report.ok(`engine: Docker ${engine.version} answers${engineHost() ? ` at ${engineHost()}` : ""}`);

  const name = typeof outputs.containerName === "string" ? outputs.containerName : undefined;
  const recorded = state.find((r) => r.type === CONTAINER_TYPE);
  const completed = await checkDaemonHost(report, {
    stackName,
    workDir: options.cwd,
    name,
    buildkitHost: typeof outputs.buildkitHost === "string" ? outputs.buildkitHost : undefined,
    recorded,
    recordedId: recorded?.id ?? (typeof outputs.containerId === "string" ? outputs.containerId : undefined),
    env: engineEnv(),
    settings: async () => {
      const config = await stack.getAllConfig();
      const raw = Object.fromEntries(Object.entries(config).map(([key, entry]) => [key, entry.value]));
      return parseDockerSettings(raw, { stack: stack.name.slice(stack.name.lastIndexOf("/") + 1) });
    },
    owner: `stack ${stackName}`,
  });
  if (!completed) return 1;

  console.log(report.failures === 0 ? `healthy: stack ${stackName}` : `${report.failures} check${report.failures === 1 ? "" : "s"} failed: stack ${stackName}`);
  return report.failures === 0 ? 0 : 1;
}

/**
 * Every host of a fleet: all engines probed at once (bounded), then each
 * host's checks against its own engine, every line naming the host. A host
 * whose engine does not answer gets one failing line; the others are checked
 * as usual. Ends with one line per host.
 */
async function fleetDoctor(stack: Stack, state: RecordedResource[], outputs: Record<string, unknown>, hosts: FleetHost[], workDir: string): Promise<number> {
  const engines = hosts.map((host) => openHostEngine(host));
  try {
    const probes = await Promise.all(engines.map((engine) => probeEngine(engine.env)));
    const endpoints = Array.isArray(outputs.fleetEndpoints) ? (outputs.fleetEndpoints as { name?: unknown; buildkitHost?: unknown }[]) : [];
    let fleetSettings: Promise<FleetHostSettings[]> | undefined;
    const settingsOf = (host: FleetHost) => async () => {
      fleetSettings ??= stack.getAllConfig().then((config) => {
        const raw = Object.fromEntries(Object.entries(config).map(([key, entry]) => [key, entry.value]));
        return parseFleetSettings(raw, { stack: stack.name.slice(stack.name.lastIndexOf("/") + 1) }) ?? [];
      });
      const found = (await fleetSettings).find((h) => h.name === host.name);
      if (!found) throw new Error(`host ${host.name} is no longer in buildkit:hosts (removed since the last up?)`);
      return found.settings;
    };

    const summary: string[] = [];
    for (const [index, host] of hosts.entries()) {
      const report = new Report(`host ${host.name}: `);
      const probe = probes[index];
      if (!probe.ok) {
        report.fail(
          `engine: unreachable at ${endpointOf(host)}: ${probe.reason}`,
          `make the engine answer there (start dockerd on host ${host.name}, or repair the ssh or TLS connection: docker version must answer)`,
        );
        summary.push(`FAIL  host ${host.name}: unreachable at ${endpointOf(host)}`);
        continue;
      }
      report.ok(`engine: Docker ${probe.version} answers at ${endpointOf(host)}`);
      const recorded = state.find((r) => r.type === CONTAINER_TYPE && host.urns.includes(r.urn));
      const endpoint = endpoints.find((e) => e.name === host.name);
      await checkDaemonHost(report, {
        stackName: stack.name,
        workDir,
        name: recorded ? recordedName(recorded) : undefined,
        buildkitHost: typeof endpoint?.buildkitHost === "string" ? endpoint.buildkitHost : undefined,
        recorded,
        recordedId: recorded?.id,
        env: engines[index].env,
        settings: settingsOf(host),
        owner: `stack ${stack.name}`,
      });
      summary.push(report.failures === 0 ? `ok    host ${host.name}: healthy` : `FAIL  host ${host.name}: ${report.failures} check${report.failures === 1 ? "" : "s"} failed`);
    }

    const failed = summary.filter((line) => line.startsWith("FAIL")).length;
    console.log(`hosts of stack ${stack.name}:`);
    for (const line of summary) console.log(line);
    if (probes.some((probe) => !probe.ok)) {
      console.log(`      while a host is unreachable, pulumi up fails on it: npm run drift -- --stack ${shellQuote(stack.name)} --heal heals the others`);
    }
    console.log(failed === 0 ? `healthy: stack ${stack.name} (${hosts.length} host${hosts.length === 1 ? "" : "s"})` : `${failed} of ${hosts.length} hosts failed: stack ${stack.name}`);
    return failed === 0 ? 0 : 1;
  } finally {
    for (const engine of engines) engine.cleanup();
  }
}

/**
 * The checks of one daemon, from its stack outputs to what buildctl sees;
 * each failure with its fix. False when a failure left nothing to check
 * (no container): the single-host report then ends there.
 */
async function checkDaemonHost(report: Report, target: DaemonTarget): Promise<boolean> {
  const { stackName, workDir, name, buildkitHost, recorded, recordedId, env } = target;
  const upRefresh = pulumiCommand(stackName, workDir, ["up", "--refresh"]);
  if (!name || !buildkitHost) {
    report.fail(`${target.owner}: no containerName/buildkitHost outputs (never deployed, or the last up failed)`, `deploy it: ${pulumiCommand(stackName, workDir, ["up"])}`);
    return false;
  }
  report.ok(`${target.owner}: container ${name}, BUILDKIT_HOST=${buildkitHost}`);

  const ownership = containerOwnership(name, recordedId, env);
  if (ownership.kind === "missing") {
    report.fail(`container ${name}: missing`, `container missing: ${upRefresh}`);
    return false;
  }
  if (ownership.kind === "foreign") {
    report.fail(
      `container ${name}: replaced by hand (id ${shortId(ownership.info.Id)}: ${describeLimits(ownership.info)}; the stack created ${shortId(recordedId)})`,
      `docker rm -f ${shellQuote(name)}, then ${upRefresh}`,
    );
  } else {
    report.ok(`container ${name}: present, created by this stack (id ${shortId(recordedId)})`);
  }

  const info = await settledHealth(name, ownership.info, env);
  const recreate = recorded ? pulumiCommand(stackName, workDir, ["up", "--replace", shellQuote(recorded.urn)]) : upRefresh;
  const showLogs = !info.State.Running || info.State.Restarting || info.State.Health?.Status !== "healthy" || info.RestartCount > 0;
  const logs = showLogs ? logLines(name, env) : [];
  let logsShown = false;
  const withLogs = (): string[] => {
    if (logsShown) return [];
    logsShown = true;
    return logs;
  };

  if (info.State.Paused) {
    // Still "running" to docker and to pulumi; every process is frozen, so no client gets an answer.
    report.fail(`container ${name}: paused (docker pause): buildkitd is frozen and answers no client`, `docker unpause ${shellQuote(name)}`);
  } else if (info.State.Running) {
    report.ok(`container ${name}: running`);
  } else {
    const why = `${info.State.Status}, exit code ${info.State.ExitCode}${info.State.OOMKilled ? ", killed: out of memory" : ""}${info.State.Error ? `, ${info.State.Error}` : ""}`;
    report.fail(`container ${name}: not running (${why})`, `docker start ${shellQuote(name)}, or ${upRefresh}`, withLogs());
  }

  const health = info.State.Health;
  if (!health) {
    report.fail(`container ${name}: has no healthcheck (not the stack's container?)`, `${recreate}`);
  } else if (health.Status === "healthy") {
    report.ok(`container ${name}: healthy`);
  } else if (info.State.Running) {
    const last = health.Log?.[health.Log.length - 1];
    const probe = last ? `; last probe exited ${last.ExitCode}: ${firstLine(last.Output) || "no output"}` : "";
    report.fail(
      `container ${name}: ${health.Status} (failing streak ${health.FailingStreak}${probe})`,
      `unhealthy: see logs above; docker restart ${shellQuote(name)}, or recreate it: ${recreate}`,
      withLogs(),
    );
  }

  const healthyNow = info.State.Running && !info.State.Restarting && info.State.Health?.Status === "healthy";
  if (info.RestartCount > 0 && healthyNow && !info.State.OOMKilled) {
    // The restart policy did its job; a past crash is a lead, not an outage.
    report.warn(
      `container ${name}: restarted ${info.RestartCount} time${info.RestartCount === 1 ? "" : "s"}, healthy now`,
      "if it happens again, read the logs above for the cause",
      withLogs(),
    );
  } else if (info.State.Restarting || info.RestartCount > 0) {
    report.fail(
      `container ${name}: ${info.State.Restarting ? "restarting now, " : ""}restarted ${info.RestartCount} time${info.RestartCount === 1 ? "" : "s"}${info.State.OOMKilled ? " (out of memory)" : ""}`,
      info.State.OOMKilled
        ? `buildkitd ran out of memory: raise buildkit:memory, then ${pulumiCommand(stackName, workDir, ["up"])}`
        : `it keeps crashing: see logs above; fix the cause, then ${recreate}`,
      withLogs(),
    );
  } else {
    report.ok(`container ${name}: restart count 0`);
  }

  // What a client does: dial BUILDKIT_HOST, with the stack's client certificate when it listens on TCP with mTLS.
  // A frozen daemon cannot answer: the paused row above already says so and how to fix it.
  const client = info.State.Paused ? undefined : await buildctlClient(target, buildkitHost, report);
  if (client) {
    try {
      checkDaemon(client, buildkitHost, report, { name, recreate, withLogs, env });
    } finally {
      client.cleanup();
    }
  }
  return true;
}

/** buildctl's connection flags for the stack's BUILDKIT_HOST, the stack's settings, and the temporary files to remove. */
interface BuildctlClient {
  args: string[];
  settings?: DockerSettings;
  cleanup(): void;
}

/**
 * A tcp:// daemon with mTLS answers only clients with a certificate from its
 * CA: the stack's own (tlsCa, tlsClientCert, tlsClientKey from its secret
 * config) is written to a private temporary directory for buildctl.
 */
async function buildctlClient(target: DaemonTarget, buildkitHost: string, report: Report): Promise<BuildctlClient | undefined> {
  const none = { args: ["--addr", buildkitHost], cleanup: () => undefined };
  let settings: DockerSettings;
  try {
    settings = await target.settings();
  } catch (error) {
    report.fail(`stack ${target.stackName}: configuration: ${firstLine(error)}`, "fix the stack configuration (pulumi config), then pulumi up");
    return undefined;
  }
  if (!buildkitHost.startsWith("tcp://") || !settings.tls) return { ...none, settings };
  const { ca, clientCert, clientKey } = settings.tls;
  if (!clientCert || !clientKey) {
    report.fail(
      `buildctl --addr ${buildkitHost}: the daemon requires a client certificate and the stack has none`,
      "set buildkit:tlsClientCert and buildkit:tlsClientKey (as secrets): pulumi config set --secret buildkit:tlsClientCert < client.pem",
    );
    return undefined;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildkit-doctor-"));
  const write = (file: string, content: string) => {
    fs.writeFileSync(path.join(dir, file), content, { mode: 0o600 });
    return path.join(dir, file);
  };
  return {
    args: ["--addr", buildkitHost, "--tlscacert", write("ca.pem", ca), "--tlscert", write("client.pem", clientCert), "--tlskey", write("client.key", clientKey)],
    settings,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** The daemon through BUILDKIT_HOST: workers listed, and what the build cache holds against its GC ceiling. */
function checkDaemon(
  client: BuildctlClient,
  buildkitHost: string,
  report: Report,
  context: { name: string; recreate: string; withLogs: () => string[]; env: NodeJS.ProcessEnv },
): void {
  const { name, recreate, withLogs, env } = context;
  const tls = client.args.includes("--tlscert") ? " (client certificate from the stack's config)" : "";
  const workers = runCommand("buildctl", [...client.args, "debug", "workers"], { timeoutMs: BUILDCTL_TIMEOUT_MS, env });
  const rows = workers.stdout.trim().split("\n").slice(1).filter((l) => l.trim() !== "");
  if (workers.code === 0 && rows.length > 0) {
    report.ok(`buildctl --addr ${buildkitHost} debug workers${tls}: ${rows.length} worker${rows.length === 1 ? "" : "s"} (${rows[0].split(/\s+/)[1] ?? "?"})`);
  } else if (/ENOENT/.test(workers.stderr)) {
    report.fail("buildctl: not on PATH", "install the toolchain: bash scripts/provision.sh, then source scripts/env.sh");
    return;
  } else {
    report.fail(
      `buildctl --addr ${buildkitHost} debug workers${tls}: ${firstLine(workers.stderr || workers.stdout) || `exit ${workers.code}, no workers listed`}`,
      `buildkitd does not answer through BUILDKIT_HOST: see logs above; docker restart ${shellQuote(name)}, or recreate it: ${recreate}`,
      withLogs(),
    );
    return;
  }

  const du = runCommand("buildctl", [...client.args, "du"], { timeoutMs: BUILDCTL_TIMEOUT_MS, env });
  const total = /^Total:\s+(\S+)/m.exec(du.stdout)?.[1];
  const ceiling = client.settings?.cacheMaxUsedSpaceBytes;
  const limit = ceiling !== undefined ? `GC ceiling ${formatMib(ceiling)} (buildkit:cacheMaxUsedSpace)` : "no GC ceiling set: BuildKit's default applies";
  if (du.code === 0 && total) {
    report.ok(`buildctl du: build cache ${total}; ${limit}`);
  } else {
    report.fail(
      `buildctl --addr ${buildkitHost} du: ${firstLine(du.stderr || du.stdout) || `exit ${du.code}, no total`}`,
      `the daemon lists workers but cannot report its cache: see logs above; recreate it: ${recreate}`,
      withLogs(),
    );
  }
}

/**
 * A container just (re)started reports "starting" until its healthcheck has
 * run; wait, bounded, for it to decide rather than report a false failure.
 */
async function settledHealth(name: string, first: ContainerInfo, env: NodeJS.ProcessEnv): Promise<ContainerInfo> {
  const deadline = Date.now() + HEALTH_SETTLE_MS;
  let info = first;
  while (info.State.Running && info.State.Health?.Status === "starting" && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    info = inspectContainer(name, env) ?? info;
  }
  return info;
}

function logLines(name: string, env: NodeJS.ProcessEnv): string[] {
  const logs = containerLogs(name, LOG_LINES, env);
  return [`last ${LOG_LINES} log lines of ${name}:`, ...(logs ? logs.split("\n").map((l) => `  ${l}`) : ["  (empty)"])];
}

if (require.main === module) runMain(main);
