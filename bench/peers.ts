/**
 * PEERS: us against what a user would pick instead, on the same engine with
 * the same local image, cold to ready, teardown, no-op check and drift check:
 *
 *   raw        bench/raw-deploy.sh: `docker run` + poll `buildctl debug workers`
 *   buildx     `docker buildx create --driver docker-container --bootstrap`
 *   terraform  `terraform apply` of bench/terraform (the dev stack in HCL, kreuzwerker/docker)
 *   ours       `pulumi up` of the dev stack (private copy, bench/lib.ts)
 *
 * The peers come from scripts/provision/peers.sh (cached under
 * $BUILDKIT_STACK_CACHE/peers); Terraform is the one on PATH. The order of the
 * four alternates from run to run (forwards, backwards), so a tool is not
 * always the one that runs right after another's teardown. Every readiness a
 * tool claims is checked afterwards (untimed) by listing the daemon's workers.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { renderBuildkitdToml } from "../components/core/buildkitd-toml";
import { DEFAULT_IMAGE } from "../components/core/buildkitd";
import { MIB } from "../components/core/units";
import { BUILDX_VERSION, buildxDockerConfig, NAME_PREFIX, ProgramCopy, Result, STACK, devSettings, exec, log, mustExec, onCleanup, removeDockerObjects, repoRoot, tail, tempDir } from "./lib";
import { Series, Target, summarize } from "./report";
import { Exec, Phase, STRACE_ARGS, driftPhases, previewPhases, readExecs, upPhases } from "./trace";

/** Traced previews and drift checks after the runs (outside the statistics): each phase's median is reported. */
const TRACED_RUNS = 3;

/** The four headline ratios: what `npm run bench -- --only peers` prints one line each for. */
export const HEADLINE_TARGETS = {
  "up/terraform": 1.0,
  // buildx starts a bare daemon: no limits, network, volume of ours, mirror config,
  // healthcheck or test build (docs/performance.md). Ours does all of that and
  // waits for docker's healthcheck, whose first probe comes one interval (5 s)
  // after start on engines before Docker 25; 8× buildx's ~0.9 s is that floor
  // plus the test build, not a goal to shave towards 1.
  "up/buildx": 8.0,
  "preview/terraform-plan": 1.0,
  "drift/terraform-refresh-only": 1.5,
  // The same comparisons with Terraform's provider built from the same revision with
  // the same patch as ours (scripts/provision/peers.sh): the program against the
  // program, not our provider patch against upstream's waits. Up keeps its target;
  // preview and drift are held to Pulumi's own floor (below) and printed beside it,
  // with the same targets as their upstream lines, so every "met" is restated on equal terms.
  "up/terraform-same-provider": 1.0,
  "preview/terraform-plan-same-provider": 1.0,
  "drift/terraform-refresh-only-same-provider": 1.5,
  // Pulumi's floor: an empty program's no-op preview on the same run. The CLI, the
  // language host and node cannot go below it; 1.2× leaves 20 % for our program.
  "preview/empty-preview": 1.2,
  "drift/empty-preview": 1.2,
} as const;

type Add = (part: string, label: string, unit: Series["unit"], samples: number[], extra?: { target?: Target; note?: string }) => void;

const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const version = (name: string) => new RegExp(`^${name}="([^"]+)"`, "m").exec(versions)?.[1];
const PEERS_DIR = path.join(cache, "peers");

/** Seconds of each phase for one tool in one run. */
interface ToolRun {
  up: number;
  noop: number;
  drift: number;
  teardown: number;
  /** Extra timings a tool reports (Pulumi's own Duration, preview --refresh). */
  extra?: Record<string, number>;
}

/** Major version of the engine DOCKER_HOST (or the default socket) points at. */
async function engineVersion(): Promise<{ version: string; major: number }> {
  const text = (await mustExec("docker", ["version", "--format", "{{.Server.Version}}"])).stdout.trim();
  return { version: text, major: Number(text.split(".")[0]) };
}

/** Ready for every peer means what the smoke test's first half means: buildkitd lists a worker. */
async function assertWorkers(container: string, who: string): Promise<void> {
  const result = await exec("buildctl", ["--addr", `docker-container://${container}`, "debug", "workers"]);
  if (result.code !== 0 || result.stdout.trim().split("\n").length < 2) {
    throw new Error(`${who} said ready, but buildkitd in ${container} lists no worker: ${tail(result.stderr || result.stdout, 5)}`);
  }
}

// ---------------------------------------------------------------------------
// raw

/**
 * raw and buildx put their container on docker's default bridge, which is not
 * usable on every engine (this machine's default engine has no docker0
 * interface; `docker run` fails to attach). Both get a network of the bench's
 * own instead, created once before the runs (untimed); ours and Terraform
 * create their own network as part of what they deploy.
 */
async function peerNetwork(): Promise<string> {
  const name = `${NAME_PREFIX}peer-net`;
  await removeDockerObjects({ networks: [name] });
  await mustExec("docker", ["network", "create", name]);
  onCleanup(`network ${name}`, () => removeDockerObjects({ networks: [name] }));
  return name;
}

function rawPeer(network: string): { run: () => Promise<ToolRun> } {
  const name = `${NAME_PREFIX}peer-raw`;
  const volume = `${name}-cache`;
  const remove = () => removeDockerObjects({ containers: [name], volumes: [volume] });
  onCleanup(`raw daemon ${name}`, remove);
  return {
    run: async () => {
      const up = await mustExec("bash", [path.join(repoRoot, "bench/raw-deploy.sh"), "--name", name, "--volume", volume, "--network", network], { boundSeconds: 180 });
      await assertWorkers(name, "raw-deploy.sh");
      // The raw way has no state: its "no-op check" and "drift check" are a `docker inspect`.
      const check = await mustExec("docker", ["inspect", "-f", "{{.State.Running}}", name]);
      const started = performance.now();
      await remove();
      return { up: up.seconds, noop: check.seconds, drift: check.seconds, teardown: (performance.now() - started) / 1000 };
    },
  };
}

// ---------------------------------------------------------------------------
// buildx

async function buildxPeer(network: string): Promise<{ run: () => Promise<ToolRun>; version: string }> {
  const env = { ...process.env, DOCKER_CONFIG: buildxDockerConfig("docker-config") };
  const builder = `${NAME_PREFIX}peer-buildx`;
  // buildx names its container buildx_buildkit_<node>: the node name carries our prefix.
  const node = `${builder}0`;
  const container = `buildx_buildkit_${node}`;
  const stateVolume = `${container}_state`;
  const remove = async () => {
    await exec("docker", ["buildx", "rm", "--force", builder], { env });
    // Only the two objects buildx created for our node name; nothing else is touched.
    await exec("docker", ["rm", "-f", "-v", container]);
    await exec("docker", ["volume", "rm", "-f", stateVolume]);
  };
  onCleanup(`buildx builder ${builder}`, remove);
  const buildxVersion = (await mustExec("docker", ["buildx", "version"], { env })).stdout.trim();
  return {
    version: buildxVersion,
    run: async () => {
      // The image must be given: buildx's default (moby/buildkit:buildx-stable-1) is not local here.
      const up = await mustExec(
        "docker",
        ["buildx", "create", "--name", builder, "--node", node, "--driver", "docker-container", "--driver-opt", `image=${DEFAULT_IMAGE}`, "--driver-opt", `network=${network}`, "--bootstrap"],
        { env, boundSeconds: 180 },
      );
      await assertWorkers(container, "buildx create --bootstrap");
      // buildx has no desired state to compare: `buildx inspect` is its closest "check".
      const check = await mustExec("docker", ["buildx", "inspect", builder], { env });
      const down = await mustExec("docker", ["buildx", "rm", builder], { env });
      return { up: up.seconds, noop: check.seconds, drift: check.seconds, teardown: down.seconds };
    },
  };
}

// ---------------------------------------------------------------------------
// terraform

/** Terraform variables for the dev stack's settings (the repo's Pulumi.dev.yaml as the bench's ProgramCopy sets it). */
function terraformVariables(name: string, startInterval: string): Record<string, unknown> {
  const settings = devSettings({ "buildkit:extraHosts": ["host.docker.internal:host-gateway"], "buildkit:containerName": name });
  return {
    name,
    image: settings.image,
    memory_mb: Math.floor(settings.memoryBytes! / MIB),
    cpus: Number(settings.cpus).toFixed(1),
    buildkitd_toml: renderBuildkitdToml(settings),
    extra_hosts: settings.extraHosts.map((entry) => ({ host: entry.slice(0, entry.indexOf(":")), ip: entry.slice(entry.indexOf(":") + 1) })),
    labels: { "org.buildkit-stack.managed-by": "terraform", "org.buildkit-stack.container": name },
    log_max_size: settings.logMaxSize,
    log_max_files: String(settings.logMaxFiles),
    healthcheck_start_interval: startInterval,
  };
}

/**
 * The healthcheck start interval our component sets on this engine, so the
 * Terraform peer waits under the same healthcheck: "0s" (unset) unless the
 * component sets `startInterval` and the engine (Docker 25+) honours it.
 */
function componentStartInterval(engineMajor: number): string {
  const source = fs.readFileSync(path.join(repoRoot, "components/docker/buildkit-stack.ts"), "utf8");
  const match = /startInterval:[^"\n]*"(\d+(?:ms|s))"/.exec(source);
  return match && engineMajor >= 25 ? match[1] : "0s";
}

/**
 * Which build of the kreuzwerker provider a Terraform peer runs (scripts/provision/peers.sh
 * builds both from the revision our docker provider bridges): "upstream" as
 * published, "same-provider" with the patch our provider carries
 * (providers/docker/patch-upstream.sh), so the program is compared on equal provider code.
 */
export type TerraformProvider = "upstream" | "same-provider";

async function terraformPeer(engineMajor: number, provider: TerraformProvider): Promise<{ run: () => Promise<ToolRun>; version: string; startInterval: string }> {
  const tfrc = path.join(PEERS_DIR, provider === "upstream" ? "terraformrc" : "terraformrc-same-provider");
  if (!fs.existsSync(tfrc)) throw new Error(`the Terraform provider (${provider}) is not built (${tfrc} missing); run \`bash scripts/provision/peers.sh\``);
  const tfVersion = await exec("terraform", ["version", "-json"]);
  if (tfVersion.code !== 0) throw new Error(`terraform is not on PATH (${tail(tfVersion.stderr, 2)}); install Terraform 1.x`);
  const dir = tempDir(`terraform-${provider}`);
  fs.copyFileSync(path.join(repoRoot, "bench/terraform/main.tf"), path.join(dir, "main.tf"));
  const name = `${NAME_PREFIX}peer-tf${provider === "upstream" ? "" : "-same"}`;
  const startInterval = componentStartInterval(engineMajor);
  fs.writeFileSync(path.join(dir, "terraform.tfvars.json"), JSON.stringify(terraformVariables(name, startInterval), null, 2));
  const env = { ...process.env, TF_CLI_CONFIG_FILE: tfrc, TF_IN_AUTOMATION: "1", TF_INPUT: "0", CHECKPOINT_DISABLE: "1" };
  const tf = (args: string[]) => exec("terraform", args, { cwd: dir, env, boundSeconds: 300 });
  const mustTf = async (args: string[], okCodes = [0]) => {
    const result = await tf(args);
    if (!okCodes.includes(result.code)) throw new Error(`terraform ${args.join(" ")} (${provider} provider) exited ${result.code}\n${tail(result.stdout, 15)}\n${tail(result.stderr, 15)}`);
    return result;
  };
  onCleanup(`terraform peer ${name}`, async () => {
    await tf(["destroy", "-auto-approve", "-no-color"]);
    await removeDockerObjects({ containers: [name], networks: [name], volumes: [`${name}-cache`] });
  });
  return {
    version: `${(JSON.parse(tfVersion.stdout) as { terraform_version: string }).terraform_version}, kreuzwerker/docker ${version("PULUMI_DOCKER_UPSTREAM_VERSION")}${provider === "upstream" ? "" : " + patch-upstream.sh"}`,
    startInterval,
    run: async () => {
      const up = await mustTf(["apply", "-auto-approve", "-no-color"]);
      await assertWorkers(name, "terraform apply");
      // -detailed-exitcode: 0 = no changes, 2 = changes; a no-op plan must say 0.
      const noop = await mustTf(["plan", "-detailed-exitcode", "-no-color"]);
      // Run as a user runs it. Right after apply it already reports "Objects have changed
      // outside of Terraform" (the provider reads back [] and {} where apply stored null), which
      // is why -detailed-exitcode exits 2 with nothing changed; counted, not failed.
      const drift = await mustTf(["plan", "-refresh-only", "-no-color"]);
      const phantom = /Objects have changed outside of Terraform/.test(drift.stdout) ? 1 : 0;
      const down = await mustTf(["destroy", "-auto-approve", "-no-color"]);
      return { up: up.seconds, noop: noop.seconds, drift: drift.seconds, teardown: down.seconds, extra: { phantomDrift: phantom } };
    },
  };
}

// ---------------------------------------------------------------------------
// ours

/**
 * BUILDKIT_STACK_BENCH_DOCKER_PROVIDER=PATH runs ours with that docker
 * provider binary (private PULUMI_HOME) instead of the provisioned one: how a
 * provider change is measured before it is provisioned (bench/patched-provider.sh).
 */
const OURS_PROVIDER = process.env.BUILDKIT_STACK_BENCH_DOCKER_PROVIDER || undefined;

/** `command args` under strace (process starts and exits only, {@link STRACE_ARGS}): its result and timeline. */
async function straced(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ result: Result; execs: Exec[] }> {
  const file = path.join(tempDir("strace"), "execs.log");
  const result = await exec("strace", [...STRACE_ARGS, "-o", file, command, ...args], { ...options, boundSeconds: 300 });
  if (result.code !== 0) throw new Error(`strace ${command} ${args.join(" ")} exited ${result.code}\n${tail(result.stdout)}\n${tail(result.stderr)}`);
  return { result, execs: readExecs(file) };
}

/** A traced no-op preview of `copy`: its process timeline and OpenTelemetry spans, as phases. */
async function tracedPreview(copy: ProgramCopy): Promise<Phase[]> {
  const spans = path.join(tempDir("preview-trace"), "spans.json");
  const { execs } = await straced("pulumi", ["preview", "--expect-no-changes", "--otel-traces", `file://${spans}`, "--stack", STACK, "--non-interactive"], { cwd: copy.dir, env: copy.env });
  return previewPhases(execs, spans);
}

/** The median of each phase over several traced runs (phases matched by name, in the first run's order). */
function medianPhases(runs: Phase[][]): Phase[] {
  return runs[0].map(({ phase }) => ({ phase, seconds: summarize(runs.map((r) => r.find((p) => p.phase === phase)?.seconds ?? NaN).filter(Number.isFinite)).median }));
}

async function oursPeer(): Promise<{ run: () => Promise<ToolRun>; trace: () => Promise<Phase[]>; traceChecks: (floor: ProgramCopy, runs: number) => Promise<Record<string, Phase[]>> }> {
  const copy = await ProgramCopy.real("peer-ours", { dockerProvider: OURS_PROVIDER });
  return {
    /**
     * Where a no-op preview and a drift check spend their time (part 1 of
     * issue 20), outside the statistics: `runs` traced previews of ours and of
     * the empty program, and traced `npm run drift`s, each phase's median.
     */
    traceChecks: async (floor, runs) => {
      await copy.up();
      const preview: Phase[][] = [];
      const empty: Phase[][] = [];
      const drift: Phase[][] = [];
      for (let i = 0; i < runs; i++) {
        empty.push(await tracedPreview(floor));
        preview.push(await tracedPreview(copy));
        const { result, execs } = await straced("npm", ["run", "drift", "--", "--stack", STACK, "--cwd", copy.dir], { cwd: repoRoot, env: copy.env });
        if (!/no drift/.test(result.stdout)) throw new Error(`traced npm run drift found drift:\n${tail(result.stdout)}`);
        drift.push(driftPhases(execs));
      }
      await copy.destroy();
      return { preview: medianPhases(preview), empty: medianPhases(empty), drift: medianPhases(drift) };
    },
    // One traced cold up outside the statistics: where wall time and Pulumi's "Duration" part.
    trace: async () => {
      const file = path.join(tempDir("peer-trace"), "up.json");
      const up = await copy.up(["--otel-traces", `file://${file}`]);
      await copy.destroy();
      const duration = /Duration: (?:(\d+)m)?(\d+)s/.exec(up.stdout);
      return [
        ...upPhases(file),
        { phase: "wall clock of that traced up (bench)", seconds: up.seconds },
        { phase: "Pulumi's \"Duration\" of that up", seconds: duration ? Number(duration[1] ?? 0) * 60 + Number(duration[2]) : NaN },
      ];
    },
    run: async () => {
      const up = await copy.up();
      await assertWorkers(copy.names!.container, "pulumi up");
      const duration = /Duration: (?:(\d+)m)?(\d+)s/.exec(up.stdout);
      const noop = await copy.preview();
      const drift = await copy.drift();
      const refresh = await copy.mustPulumi(["preview", "--refresh", "--expect-no-changes"]);
      const started = performance.now();
      await copy.destroy();
      return {
        up: up.seconds,
        noop: noop.seconds,
        drift: drift.seconds,
        teardown: (performance.now() - started) / 1000,
        extra: {
          pulumiDuration: duration ? Number(duration[1] ?? 0) * 60 + Number(duration[2]) : NaN,
          previewRefresh: refresh.seconds,
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------

/**
 * Proof that ours and the same-provider Terraform peer run the same provider
 * code: both builds record the hash of the patch-upstream.sh they applied
 * (scripts/provision/pulumi.sh in the docker provider's go.mod, peers.sh in its
 * stamp), and both must be today's file. Returns how to describe ours' provider.
 */
async function provisionedProviderPatch(): Promise<string> {
  const patch = fs.readFileSync(path.join(repoRoot, "scripts/provision/providers/docker/patch-upstream.sh"));
  const sha = crypto.createHash("sha256").update(patch).digest("hex");
  const gomod = path.join(cache, "pulumi/build/pulumi-resource-docker/go.mod");
  const oursRecord = fs.existsSync(gomod) ? fs.readFileSync(gomod, "utf8") : "";
  if (!oursRecord.includes(`patch-upstream.sh ${sha.slice(0, 12)}`)) {
    throw new Error(`the provisioned docker provider was not built with today's patch-upstream.sh (${gomod} does not name ${sha.slice(0, 12)}); run \`npm run provision\``);
  }
  const stamp = path.join(PEERS_DIR, `terraform-provider-docker-${version("PULUMI_DOCKER_UPSTREAM_VERSION")}-same-provider`, ".stamp");
  const peerRecord = fs.existsSync(stamp) ? fs.readFileSync(stamp, "utf8") : "";
  if (!peerRecord.includes(`patched ${sha.slice(0, 16)}`)) {
    throw new Error(`the same-provider Terraform peer was not built with today's patch-upstream.sh (${stamp}); run \`bash scripts/provision/peers.sh\``);
  }
  return `the provisioned one: kreuzwerker/docker ${version("PULUMI_DOCKER_UPSTREAM_VERSION")} + patch-upstream.sh ${sha.slice(0, 12)}, the same code as the same-provider Terraform peer`;
}

// ---------------------------------------------------------------------------
// Pulumi's floor

/**
 * The empty program (bench/empty: same runtime options and node_modules, no
 * resources), deployed once before the runs (untimed): its no-op preview is
 * what the CLI, the language host and node cost before any resource, the
 * floor under ours' preview and drift check.
 */
async function floorPeer(): Promise<{ run: () => Promise<ToolRun>; copy: ProgramCopy }> {
  const copy = await ProgramCopy.empty("peer-floor");
  await copy.up();
  return {
    copy,
    run: async () => {
      const preview = await copy.preview();
      return { up: NaN, noop: preview.seconds, drift: NaN, teardown: NaN };
    },
  };
}

// ---------------------------------------------------------------------------

const TOOLS = ["raw", "buildx", "terraform", "terraform-same", "floor", "ours"] as const;
type Tool = (typeof TOOLS)[number];

export async function partPeers(runs: number, add: Add, details: Record<string, unknown>): Promise<void> {
  const engine = await engineVersion();
  log(`PEERS on Docker ${engine.version} (DOCKER_HOST=${process.env.DOCKER_HOST ?? "unset: the default socket"})`);
  const image = await exec("docker", ["image", "inspect", DEFAULT_IMAGE]);
  if (image.code !== 0) await mustExec("docker", ["pull", "-q", DEFAULT_IMAGE], { boundSeconds: 300 });
  const oursProvider = OURS_PROVIDER ?? (await provisionedProviderPatch());

  const network = await peerNetwork();
  const buildx = await buildxPeer(network);
  const terraform = await terraformPeer(engine.major, "upstream");
  const terraformSame = await terraformPeer(engine.major, "same-provider");
  const floor = await floorPeer();
  const ours = await oursPeer();
  const peers: Record<Tool, { run: () => Promise<ToolRun> }> = { raw: rawPeer(network), buildx, terraform, "terraform-same": terraformSame, floor, ours };

  const samples: Record<Tool, ToolRun[]> = { raw: [], buildx: [], terraform: [], "terraform-same": [], floor: [], ours: [] };
  const runOnce = async (i: number, keep: boolean) => {
    const order = i % 2 === 0 ? TOOLS : [...TOOLS].reverse();
    for (const tool of order) {
      const result = await peers[tool].run();
      if (keep) samples[tool].push(result);
    }
  };
  log("PEERS warm-up run (discarded)");
  await runOnce(1, false);
  for (let i = 0; i < runs; i++) {
    log(`PEERS run ${i + 1}/${runs}; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
    await runOnce(i, true);
  }

  const pick = (tool: Tool, key: "up" | "noop" | "drift" | "teardown") => samples[tool].map((s) => s[key]);
  const extra = (key: string) => samples.ours.map((s) => s.extra?.[key] ?? NaN);
  const per = (a: number[], b: number[]) => a.map((value, i) => value / b[i]);
  const note = {
    engine: `Docker ${engine.version}${process.env.DOCKER_HOST ? ` at ${process.env.DOCKER_HOST}` : ""}; ${DEFAULT_IMAGE} in the local image store for every tool; raw and buildx on a network created before the runs (${network}), ours and terraform create theirs; order ${TOOLS.join(", ")} in even runs and reversed in odd ones; one discarded warm-up`,
  };
  add("PEERS", "to ready: raw docker run + poll buildctl debug workers", "s", pick("raw", "up"), { note: note.engine });
  add("PEERS", `to ready: docker buildx create --driver docker-container --bootstrap (buildx ${BUILDX_VERSION})`, "s", pick("buildx", "up"));
  add("PEERS", `to ready: terraform apply of bench/terraform (Terraform ${terraform.version})`, "s", pick("terraform", "up"), {
    note: `healthcheck start_interval ${terraform.startInterval}, as our component sets it on this engine`,
  });
  add("PEERS", `to ready: terraform apply, same provider code as ours (Terraform ${terraformSame.version})`, "s", pick("terraform-same", "up"), {
    note: "kreuzwerker/docker at the revision our docker provider bridges, built by scripts/provision/peers.sh with scripts/provision/providers/docker/patch-upstream.sh applied (no fixed 2 s network read delay, 0.2 s health poll), as our provider is",
  });
  add("PEERS", "to ready: ours, pulumi up of the dev stack", "s", pick("ours", "up"), { note: `docker provider: ${oursProvider}` });
  add("PEERS", "ours: Pulumi's own \"Duration\" of that up", "s", extra("pulumiDuration"), { note: "whole seconds as the CLI prints them; it includes loading the program and the plugins (the traced up below), so wall − Duration is only the CLI's own start and exit" });
  add("PEERS", "teardown: raw docker rm -f -v + volume rm", "s", pick("raw", "teardown"));
  add("PEERS", "teardown: docker buildx rm", "s", pick("buildx", "teardown"));
  add("PEERS", "teardown: terraform destroy", "s", pick("terraform", "teardown"));
  add("PEERS", "teardown: terraform destroy, same provider code", "s", pick("terraform-same", "teardown"));
  add("PEERS", "teardown: ours, pulumi destroy", "s", pick("ours", "teardown"));
  add("PEERS", "no-op check: terraform plan -detailed-exitcode (refreshes)", "s", pick("terraform", "noop"));
  add("PEERS", "no-op check: terraform plan, same provider code", "s", pick("terraform-same", "noop"));
  add("PEERS", "no-op check: ours, pulumi preview --expect-no-changes", "s", pick("ours", "noop"));
  add("PEERS", "no-op check: empty program, pulumi preview --expect-no-changes (Pulumi's floor)", "s", pick("floor", "noop"), {
    note: "bench/empty (no resources, the same runtime options, preload and node_modules as ours), deployed once before the runs: the CLI, the language host and node, the least any Pulumi TypeScript preview costs",
  });
  const phantom = (tool: Tool) => samples[tool].filter((s) => s.extra?.phantomDrift).length;
  add("PEERS", "drift check: terraform plan -refresh-only", "s", pick("terraform", "drift"), {
    note: `right after apply, with nothing changed, it reported "Objects have changed outside of Terraform" in ${phantom("terraform")} of ${runs} runs with the upstream provider and ${phantom("terraform-same")} of ${runs} with the same provider code (empty lists and maps read back where apply stored null), so its -detailed-exitcode is 2 and useless as a drift signal; npm run drift exited 0 in every run`,
  });
  add("PEERS", "drift check: terraform plan -refresh-only, same provider code", "s", pick("terraform-same", "drift"));
  add("PEERS", "drift check: ours, npm run drift", "s", pick("ours", "drift"));
  add("PEERS", "drift check: pulumi preview --refresh --expect-no-changes", "s", extra("previewRefresh"));
  const ratios: Record<keyof typeof HEADLINE_TARGETS, number[]> = {
    "up/terraform": per(pick("ours", "up"), pick("terraform", "up")),
    "up/buildx": per(pick("ours", "up"), pick("buildx", "up")),
    "preview/terraform-plan": per(pick("ours", "noop"), pick("terraform", "noop")),
    "drift/terraform-refresh-only": per(pick("ours", "drift"), pick("terraform", "drift")),
    "up/terraform-same-provider": per(pick("ours", "up"), pick("terraform-same", "up")),
    "preview/terraform-plan-same-provider": per(pick("ours", "noop"), pick("terraform-same", "noop")),
    "drift/terraform-refresh-only-same-provider": per(pick("ours", "drift"), pick("terraform-same", "drift")),
    "preview/empty-preview": per(pick("ours", "noop"), pick("floor", "noop")),
    "drift/empty-preview": per(pick("ours", "drift"), pick("floor", "noop")),
  };
  for (const [name, values] of Object.entries(ratios) as [keyof typeof HEADLINE_TARGETS, number[]][]) {
    add("PEERS", `ratio ${name}`, "x", values, { target: { op: "<=", value: HEADLINE_TARGETS[name] } });
  }
  add("PEERS", "ratio up/raw", "x", per(pick("ours", "up"), pick("raw", "up")));
  add("PEERS", "ratio teardown/terraform", "x", per(pick("ours", "teardown"), pick("terraform", "teardown")));
  add("PEERS", "ratio teardown/terraform-same-provider", "x", per(pick("ours", "teardown"), pick("terraform-same", "teardown")));
  add("PEERS", "drift check's work beyond its own preview: npm run drift − pulumi preview --refresh", "s", pick("ours", "drift").map((d, i) => d - extra("previewRefresh")[i]));
  details.PEERS = {
    oursProvider,
    engine,
    dockerHost: process.env.DOCKER_HOST ?? null,
    buildx: buildx.version,
    terraform: terraform.version,
    terraformSameProvider: terraformSame.version,
    samples,
    ratios,
  };

  const trace = await ours.trace();
  details.PEERS_trace = trace;
  console.log("\nPEERS, one traced cold `pulumi up` of ours (--otel-traces, outside the statistics):");
  for (const p of trace) console.log(`  ${p.seconds.toFixed(2).padStart(6)}s  ${p.phase}`);
  const checks = await ours.traceChecks(floor.copy, TRACED_RUNS);
  details.PEERS_checks_trace = checks;
  const titles: Record<string, string> = {
    empty: "the empty program's no-op `pulumi preview` (Pulumi's floor)",
    preview: "ours, no-op `pulumi preview --expect-no-changes`",
    drift: "ours, `npm run drift`",
  };
  for (const [which, phases] of Object.entries(checks)) {
    console.log(`\nPEERS, ${titles[which]}: median of ${TRACED_RUNS} traced runs (strace of process starts and exits, --otel-traces), outside the statistics:`);
    for (const p of phases) console.log(`  ${p.seconds.toFixed(2).padStart(6)}s  ${p.phase}`);
  }

  // The headline lines, one per ratio, in a form scripts can grep.
  for (const [name, values] of Object.entries(ratios) as [keyof typeof HEADLINE_TARGETS, number[]][]) {
    console.log(`ratio ${name} ${summarize(values).median.toFixed(2)} target ${HEADLINE_TARGETS[name].toFixed(1)}`);
  }
}
