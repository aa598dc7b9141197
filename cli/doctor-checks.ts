/**
 * The checks `npm run doctor` runs on one daemon, from the stack's outputs to
 * what buildctl sees through BUILDKIT_HOST, each failure followed by its fix:
 * the container is there and the stack's, running, healthy, not restarting,
 * answering with its workers, and its build cache against its GC ceiling.
 */
import { modeOf, STATE_PATH } from "../components/core/buildkitd";
import { dfAvailable, duTotal, judgeCache } from "./cache-usage";
import { runCommand } from "./command";
import {
  ContainerInfo,
  containerLogs,
  containerOwnership,
  describeLimits,
  inspectContainer,
  shortId,
} from "./docker-inspect";
import { firstLine } from "./options";
import { temporaryPrivateFiles } from "../components/private-files";
import { pulumiCommand, shellQuote } from "./shell";
import type { LeftoverContainer } from "./interrupted-update";
import type { RecordedResource } from "./stack-state";
import type { DockerSettings } from "../components/docker/config";

const LOG_LINES = 20;
/** Bound for a container whose healthcheck has not decided yet (start period + 3 probes of 5s, with margin). */
const HEALTH_SETTLE_MS = 45_000;
const BUILDCTL_TIMEOUT_MS = 30_000;

export class Report {
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
export interface DaemonTarget {
  stackName: string;
  workDir: string;
  /** The container's name; undefined when the stack recorded none (never deployed). */
  name?: string;
  buildkitHost?: string;
  /** The container as the state recorded it. */
  recorded?: RecordedResource;
  recordedId?: string;
  /** The container under the name, when an interrupted update made it (never recorded): not "replaced by hand". */
  leftover?: LeftoverContainer;
  /** Environment of the docker and buildctl calls: the daemon's engine. */
  env: NodeJS.ProcessEnv;
  /** The daemon's validated settings (for buildctl's client certificate and the GC ceiling); throws on bad config. */
  settings(): Promise<DockerSettings>;
  /** Where the "not deployed" failure points: the stack, or a fleet host of it. */
  owner: string;
}

/**
 * The checks of one daemon, from its stack outputs to what buildctl sees;
 * each failure with its fix. False when a failure left nothing to check
 * (no container): the single-host report then ends there.
 */
export async function checkDaemonHost(report: Report, target: DaemonTarget): Promise<boolean> {
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
  if (ownership.kind === "foreign" && target.leftover?.info.Id === ownership.info.Id) {
    report.fail(
      `container ${name}: made by the interrupted update (id ${shortId(ownership.info.Id)}, ${target.leftover.neverStarted ? "created, never started" : ownership.info.State.Status}), not in the state`,
      `npm run drift -- --stack ${shellQuote(stackName)} --heal (recovers the interrupted update)`,
    );
    if (target.leftover.neverStarted) return false;
  } else if (ownership.kind === "foreign") {
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
  const files = temporaryPrivateFiles("buildkit-doctor", { "ca.pem": ca, "client.pem": clientCert, "client.key": clientKey });
  return {
    args: ["--addr", buildkitHost, "--tlscacert", files.path("ca.pem"), "--tlscert", files.path("client.pem"), "--tlskey", files.path("client.key")],
    settings,
    cleanup: () => files.remove(),
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

  const du = runCommand("buildctl", [...client.args, "du", "--format", "{{json .}}"], { timeoutMs: BUILDCTL_TIMEOUT_MS, env });
  const total = du.code === 0 ? duTotal(du.stdout) : undefined;
  if (total === undefined) {
    report.fail(
      `buildctl --addr ${buildkitHost} du: ${firstLine(du.stderr || du.stdout) || `exit ${du.code}, no total`}`,
      `the daemon lists workers but cannot report its cache: see logs above; recreate it: ${recreate}`,
      withLogs(),
    );
    return;
  }
  // The disk the cache lives on, as the daemon sees it (its state directory inside the container).
  const state = client.settings ? STATE_PATH[modeOf(client.settings)] : STATE_PATH.privileged;
  const df = runCommand("docker", ["exec", name, "df", "-Pk", state], { timeoutMs: BUILDCTL_TIMEOUT_MS, env });
  const verdict = judgeCache(
    {
      totalBytes: total,
      ceilingBytes: client.settings?.cacheMaxUsedSpaceBytes,
      freeBytes: df.code === 0 ? dfAvailable(df.stdout) : undefined,
      minFreeBytes: client.settings?.cacheMinFreeSpaceBytes,
    },
    // As a user types it: the stack's client certificate files under the names the README uses, not our temporary copies.
    `buildctl --addr ${shellQuote(buildkitHost)}${tls ? " --tlscacert ca.pem --tlscert client.pem --tlskey client.key" : ""} prune`,
  );
  if (verdict.failures.length === 0) report.ok(`cache filling the disk: ${verdict.summary}`);
  for (const failure of verdict.failures) report.fail(`cache filling the disk: ${failure.what}`, failure.fix);
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
