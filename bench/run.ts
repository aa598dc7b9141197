/**
 * `npm run bench [-- --runs N] [-- --only P1,X,P2,P3,MEM,P4]`: how much the
 * Pulumi way costs against its floors, on the real engine.
 *
 *   P1   cold deploy: `pulumi up` of the dev stack (private copy) vs the empty
 *        program (floor) and the seed's `docker run` + buildctl poll (raw),
 *        on the default engine (DOCKER_HOST) and on Docker 20.10 side by side.
 *   X    why P1 costs what it does: the same deploy with one change at a time
 *        (type-checking as before, precompiled, healthcheck 1s, wait: false, a docker
 *        provider without its 2s network delay, combinations), the minimal
 *        Pulumi program for a `docker run`, their no-op preview
 *        and drift check, and the idle CPU a faster healthcheck costs.
 *   P2   build cache: reference build cold, warm and after an image upgrade,
 *        through the stack and through a volume-less `docker run` daemon.
 *   P3   no-op `pulumi preview` and `npm run drift` on the deployed stack vs
 *        the empty program.
 *   MEM  buildkitd's memory idle and during the reference build vs its limit.
 *   PEERS  raw docker run, buildx --bootstrap, terraform apply (upstream provider
 *        and the same provider code as ours) and ours: to ready, teardown, no-op
 *        and drift checks, paired ratios, and the empty program's preview as
 *        Pulumi's floor (bench/peers.ts); prints one `ratio NAME VALUE target T`
 *        line per headline ratio.
 *   ROUTING  builds through a 3-host fleet on the fleet test hosts with each
 *        routing strategy (npm run route with bounded loads, plain hashing,
 *        random, round robin, a buildx multi-node builder): cached steps, wall
 *        time, load imbalance (bench/routing.ts); one run, ~10 minutes.
 *   P4   unit and integration suite wall times (one run each).
 *
 * Each figure is the median of --runs runs (default 5) with min and max.
 * Prints a table, writes bench/results/<time>.{json,svg,md} and
 * docs/benchmark.svg. Needs a provisioned machine (`npm run provision`).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { renderBuildkitdToml } from "../components/core/buildkitd-toml";
import { DEFAULT_IMAGE } from "../components/core/buildkitd";
import { MIB } from "../components/core/units";
import {
  NAME_PREFIX,
  ProgramCopy,
  Result,
  Variant,
  cleanupAll,
  containerCgroupDir,
  devSettings,
  dockerExists,
  exec,
  inspect,
  log,
  memoryStat,
  mustExec,
  onCleanup,
  readNumber,
  referenceBuild,
  referenceContext,
  removeDockerObjects,
  repoRoot,
  tail,
  tempDir,
  waitFor,
} from "./lib";
import { Series, Target, markdownTable, ratioChart, summarize, textTable } from "./report";
import { partClusterPeer } from "./cluster";
import { partPeers } from "./peers";
import { partRouting } from "./routing";
import { Phase, emptyUpPhases, upPhases } from "./trace";

const PARTS = ["P1", "X", "P2", "P3", "MEM", "PEERS", "ROUTING", "P4"] as const;
type Part = (typeof PARTS)[number];

const USAGE = `usage: npm run bench [-- --runs N] [--only ${PARTS.join(",")}]
  --runs N   runs per figure (default 5); ROUTING runs its workload once, P4 each suite once
  --only     a comma-separated subset of the parts, in any order`;

interface Options {
  runs: number;
  parts: Part[];
}

function parseOptions(argv: string[]): Options {
  const options: Options = { runs: 5, parts: [...PARTS] };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].includes("=") ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    const value = () => inline ?? argv[++i] ?? "";
    if (flag === "--runs") {
      options.runs = Number(value());
      if (!Number.isInteger(options.runs) || options.runs < 1) throw new Error(`--runs needs a whole number ≥ 1\n${USAGE}`);
    } else if (flag === "--only") {
      const wanted = value().split(",").map((p) => p.trim().toUpperCase()).filter(Boolean);
      const unknown = wanted.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (unknown.length || wanted.length === 0) throw new Error(`--only: unknown part(s) ${unknown.join(", ") || "(none given)"}\n${USAGE}`);
      // Always in the canonical order: P3 and MEM share a deployment, P4 loads the machine last.
      options.parts = PARTS.filter((p) => wanted.includes(p));
    } else if (flag === "-h" || flag === "--help") {
      console.log(USAGE);
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
    }
  }
  return options;
}

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const PREVIOUS_IMAGE = `moby/buildkit:${/BUILDKIT_PREVIOUS_VERSION="([^"]+)"/.exec(versions)![1]}`;
const CURRENT_IMAGE = DEFAULT_IMAGE;
const RAW_DEPLOY = path.join(repoRoot, "bench/raw-deploy.sh");
const RUN_ID = new Date().toISOString().replace(/[:.]/g, "-");

const series: Series[] = [];
/** Everything that is not a series: per-run details, traces, machine. Goes to the JSON file. */
const details: Record<string, unknown> = {};

function add(part: string, label: string, unit: Series["unit"], samples: number[], extra: { target?: Target; note?: string } = {}): void {
  series.push({ part, label, unit, samples, ...extra });
}

/** Per-run ratios of paired samples. */
function ratio(numerators: number[], denominators: number[]): number[] {
  return numerators.map((n, i) => n / denominators[i]);
}

// ---------------------------------------------------------------------------
// The raw way: bench/raw-deploy.sh.

/** The raw daemon's names under this run's prefix (bench/lib.ts NAME_PREFIX). */
const RAW_NAME = `${NAME_PREFIX}raw`;
const RAW_VOLUME = `${NAME_PREFIX}raw-cache`;

async function rawDeploy(args: string[]): Promise<Result> {
  const names = args.includes("--name") ? [] : ["--name", RAW_NAME, ...(args.includes("--no-volume") ? [] : ["--volume", RAW_VOLUME])];
  return mustExec("bash", [RAW_DEPLOY, ...names, ...args], { boundSeconds: 180 });
}

function registerRaw(name: string, volume?: string): void {
  onCleanup(`raw daemon ${name}`, () => removeDockerObjects({ containers: [name], volumes: volume ? [volume] : [] }));
}

async function removeRaw(name: string, volume?: string): Promise<void> {
  await removeDockerObjects({ containers: [name], volumes: volume ? [volume] : [] });
}

async function ensureImage(image: string): Promise<boolean> {
  if (await dockerExists("image", image)) return true;
  log(`pulling ${image} through the registry mirror (untimed)`);
  await mustExec("docker", ["pull", "-q", image], { boundSeconds: 300 });
  return false;
}

// ---------------------------------------------------------------------------
// P1: cold deploy.

/** Seconds from the container's start to the first healthcheck probe: the healthcheck's interval at work. */
async function firstProbeDelay(container: string): Promise<number> {
  const state = JSON.parse(await inspect(container, "{{json .State}}")) as { StartedAt: string; Health?: { Log?: { Start: string }[] } };
  const first = state.Health?.Log?.[0]?.Start;
  return first ? (Date.parse(first) - Date.parse(state.StartedAt)) / 1000 : NaN;
}

/** Debian's 20.10, the compatibility engine on the default socket: P1 runs there too, beside the default engine. */
const COMPAT_DOCKER_HOST = "unix:///var/run/docker.sock";

/** P1 on the default engine (DOCKER_HOST, scripts/env.sh) and on 20.10, side by side; traced on the default only. */
async function partP1Engines(runs: number): Promise<void> {
  const hosts = [...new Set([process.env.DOCKER_HOST ?? COMPAT_DOCKER_HOST, COMPAT_DOCKER_HOST])];
  const ambient = process.env.DOCKER_HOST;
  for (const [i, host] of hosts.entries()) {
    // Everything P1 starts (pulumi, the provider, docker, buildctl) inherits it.
    process.env.DOCKER_HOST = host;
    try {
      const engine = (await mustExec("docker", ["version", "--format", "Docker {{.Server.Version}} (API {{.Server.APIVersion}})"])).stdout.trim();
      log(`P1 on ${engine} at ${host}`);
      await partP1(runs, engine, i === 0);
    } finally {
      if (ambient === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = ambient;
    }
  }
}

async function partP1(runs: number, engine: string, traced: boolean): Promise<void> {
  const ours = await ProgramCopy.real("p1");
  const floor = await ProgramCopy.empty("p1-empty");
  registerRaw(RAW_NAME, RAW_VOLUME);
  const pulledFirst = !(await ensureImage(CURRENT_IMAGE));

  const runOnce = async () => {
    const raw = await rawDeploy([]);
    await removeRaw(RAW_NAME, RAW_VOLUME);
    const empty = await floor.up();
    await floor.destroy();
    const inStore = await dockerExists("image", CURRENT_IMAGE);
    const up = await ours.up();
    const probe = await firstProbeDelay(ours.names!.container);
    await ours.destroy();
    return { raw: raw.seconds, rawInner: Number(raw.stdout.trim()), floor: empty.seconds, ours: up.seconds, inStore, probe };
  };

  // One discarded warm-up of each: the first run after a while pays for cold page caches (node_modules, plugins).
  log("P1 warm-up run (discarded)");
  await runOnce();
  const samples: Awaited<ReturnType<typeof runOnce>>[] = [];
  for (let i = 0; i < runs; i++) {
    log(`P1 run ${i + 1}/${runs}`);
    samples.push(await runOnce());
  }
  const pick = <K extends keyof (typeof samples)[number]>(key: K) => samples.map((s) => s[key]);
  const oursS = pick("ours") as number[];
  const floorS = pick("floor") as number[];
  const rawS = pick("raw") as number[];
  const inStore = pick("inStore") as boolean[];
  const storeNote = inStore.every(Boolean)
    ? `${CURRENT_IMAGE} was already in the engine's local image store in every run${pulledFirst ? " (pulled through the mirror, untimed, before the first run)" : ""} and in the mirror; the docker provider's RemoteImage keeps it locally after destroy`
    : `${CURRENT_IMAGE} in the local store before each run: ${inStore.join(", ")}`;
  // How node starts both programs: what their Pulumi.yaml nodeargs name (tests/runtime/preload.test.ts keeps them equal).
  const compileMode = "started through runtime/preload.js (Pulumi.yaml nodeargs), program and floor alike";
  add("P1", `${engine}: pulumi up, our program, from nothing`, "s", oursS, { note: `dev stack config (memory 1g, cpus 1, mirror, smoke test on); \`pulumi up --yes --skip-preview\`; ${compileMode}; ${storeNote}; destroyed between runs (untimed)` });
  add("P1", `${engine}: pulumi up, empty program (floor)`, "s", floorS);
  add("P1", `${engine}: raw: docker run + buildctl poll (bench/raw-deploy.sh)`, "s", rawS);
  add("P1", `${engine}: ours − floor`, "s", oursS.map((o, i) => o - floorS[i]));
  add("P1", `${engine}: (ours − floor) / raw`, "x", ratio(oursS.map((o, i) => o - floorS[i]), rawS), { target: { op: "<=", value: 1.2 } });
  add("P1", `${engine}: container start → first healthcheck probe`, "s", pick("probe") as number[], {
    note: "engines with API ≥ 1.44 probe every second during the start period; 20.10 runs the first probe one `interval` (5s) after start; `wait: true` returns only once a probe has passed",
  });
  details.P1 = { ...(details.P1 as object | undefined), [engine]: { samples } };
  if (!traced) return;

  // One traced run of each, outside the statistics: where the time goes.
  const traceDir = tempDir("trace");
  const oursTrace = path.join(traceDir, "ours.json");
  const emptyTrace = path.join(traceDir, "empty.json");
  await ours.up(["--otel-traces", `file://${oursTrace}`]);
  await ours.destroy();
  await floor.up(["--otel-traces", `file://${emptyTrace}`]);
  await floor.destroy();
  details.P1_trace = { ours: upPhases(oursTrace), empty: emptyUpPhases(emptyTrace) };
}

// ---------------------------------------------------------------------------
// X: the same deploy with one change at a time.

interface VariantSpec {
  key: string;
  label: string;
  variant: Variant;
  /** Stack settings on top of the dev config. */
  config?: Record<string, string>;
  /** Measure no-op preview and drift too (they depend on how the program is compiled, not on the healthcheck). */
  previews: boolean;
  /** Use the docker provider built by bench/patched-provider.sh (no fixed 2s network delay). */
  patchedProvider?: boolean;
}

// The baseline is the program as the project runs it: transpile-only since scripts/env.sh
// sets PULUMI_NODEJS_TRANSPILE_ONLY (P1 and P3 measure it). Each change alone, then combined.
const VARIANTS: VariantSpec[] = [
  // The "before" of that env.sh change: ts-node type-checks the program at every run.
  { key: "typecheck", label: "ts-node type-checking (before env.sh's transpile-only)", variant: { typeCheck: true }, previews: true },
  // The "before" of runtime/preload.js: ts-node, transpile-only (what the language host ran until it read Pulumi.yaml's options).
  { key: "tsnode", label: "ts-node transpile-only (how the program ran before runtime/preload.js)", variant: { tsNode: true }, previews: true },
  { key: "precompiled", label: "precompiled by tsc, plain node", variant: { precompiled: true }, previews: true },
  { key: "hc1s", label: "healthcheck interval 1s", variant: { healthcheckInterval: "1s" }, previews: false },
  { key: "nowait", label: "wait: false (smoke test proves readiness)", variant: { noWait: true }, previews: false },
  // The docker provider's fixed 2s delay before reading a network back (create and every refresh)
  // and its 1s health poll (scripts/provision/providers/docker/patch-upstream.sh).
  { key: "provider", label: "docker provider without its 2s network delay, 0.2s health poll", variant: {}, previews: true, patchedProvider: true },
  { key: "all", label: "wait: false + patched provider", variant: { noWait: true }, previews: true, patchedProvider: true },
];

/** Builds the patched docker provider (seconds: a re-link with the provisioned build caches); undefined if it cannot. */
async function patchedProvider(): Promise<string | undefined> {
  const result = await exec("bash", [path.join(repoRoot, "bench/patched-provider.sh"), tempDir("provider")], { boundSeconds: 900 });
  if (result.code !== 0) {
    log(`patched provider variants skipped: ${tail(result.stderr, 3)}`);
    return undefined;
  }
  return result.stdout.trim();
}

/** Health probes recorded since `since` (ms epoch); docker keeps the last 5. */
async function probesSince(container: string, since: number): Promise<number> {
  const health = JSON.parse(await inspect(container, "{{json .State.Health}}")) as { Log?: { Start: string }[] } | null;
  return (health?.Log ?? []).filter((entry) => Date.parse(entry.Start) > since).length;
}

/**
 * Idle CPU of a deployed daemon per second of wall time, over three health
 * probes: inside the container's cgroup (buildkitd, the probe's buildctl) and
 * in its containerd shim with its reaped children (runc exec for each probe).
 * dockerd's own share of an exec is not attributable on a shared engine.
 */
async function idleCpu(container: string): Promise<{ inContainer: number; shim: number; seconds: number }> {
  const id = await inspect(container, "{{.Id}}");
  const usageFile = path.join(await containerCgroupDir(container, "cpuacct"), "cpuacct.usage");
  const shimPid = fs.readdirSync("/proc").find((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return cmdline.includes("containerd-shim") && cmdline.includes(id);
    } catch {
      return false;
    }
  });
  const shimTicks = () => {
    if (!shimPid) return NaN;
    // Fields after the command name: utime, stime, cutime, cstime are 14-17 (1-based) of /proc/PID/stat.
    const fields = fs.readFileSync(`/proc/${shimPid}/stat`, "utf8").split(") ")[1].split(" ");
    return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  };
  const ticksPerSecond = 100;
  const start = Date.now();
  const [cpu0, shim0] = [readNumber(usageFile), shimTicks()];
  // A window of three probes, whatever the interval: polled, bounded by three 5s intervals and slack.
  await waitFor(`three healthcheck probes of ${container}`, 40, async () => ((await probesSince(container, start)) >= 3 ? true : undefined), 250);
  const seconds = (Date.now() - start) / 1000;
  return {
    inContainer: (readNumber(usageFile) - cpu0) / 1e6 / seconds,
    shim: (((shimTicks() - shim0) / ticksPerSecond) * 1000) / seconds,
    seconds,
  };
}

async function partX(runs: number): Promise<void> {
  const floor = await ProgramCopy.empty("x-empty");
  // The floor under the type-checking variant's compile mode, for a like-for-like ratio.
  const floorTC = await ProgramCopy.empty("x-empty-tc", { typeCheck: true });
  registerRaw(RAW_NAME, RAW_VOLUME);
  await ensureImage(CURRENT_IMAGE);
  const provider = VARIANTS.some((v) => v.patchedProvider) ? await patchedProvider() : undefined;
  const variants = VARIANTS.filter((v) => !v.patchedProvider || provider);
  const copies = new Map<string, ProgramCopy>();
  for (const spec of variants) {
    copies.set(spec.key, await ProgramCopy.real(`x-${spec.key}`, { ...spec.variant, dockerProvider: spec.patchedProvider ? provider : undefined }, spec.config));
  }
  // What Pulumi costs for the raw way's `docker run` alone: image + container, no readiness wait.
  const minimal = await ProgramCopy.minimal("x-minimal");
  const compileSeconds = [...copies.values()].map((c) => c.compileSeconds).filter((s): s is number => s !== undefined);

  const up: Record<string, number[]> = {};
  const preview: Record<string, number[]> = {};
  const drift: Record<string, number[]> = {};
  const push = (table: Record<string, number[]>, key: string, value: number) => (table[key] ??= []).push(value);
  const cpu: Record<string, Awaited<ReturnType<typeof idleCpu>>> = {};

  for (let i = 0; i < runs; i++) {
    log(`X run ${i + 1}/${runs}`);
    push(up, "raw", (await rawDeploy([])).seconds);
    await removeRaw(RAW_NAME, RAW_VOLUME);
    push(up, "floor", (await floor.up()).seconds);
    push(preview, "floor", (await floor.preview()).seconds);
    push(drift, "floor", (await floor.drift()).seconds);
    await floor.destroy();
    push(up, "floorTC", (await floorTC.up()).seconds);
    push(preview, "floorTC", (await floorTC.preview()).seconds);
    push(drift, "floorTC", (await floorTC.drift()).seconds);
    await floorTC.destroy();
    push(up, "minimal", (await minimal.up()).seconds);
    await minimal.destroy();
    for (const spec of variants) {
      const copy = copies.get(spec.key)!;
      push(up, spec.key, (await copy.up()).seconds);
      if (i === 0 && (spec.key === "nowait" || spec.key === "hc1s")) cpu[spec.key] = await idleCpu(copy.names!.container);
      if (spec.previews) {
        push(preview, spec.key, (await copy.preview()).seconds);
        push(drift, spec.key, (await copy.drift()).seconds);
      }
      await copy.destroy();
    }
  }

  for (const spec of variants) {
    add("X", `pulumi up: ${spec.label}`, "s", up[spec.key]);
  }
  add("X", "pulumi up: minimal program (image + container, no wait)", "s", up.minimal, {
    note: "bench/minimal: `docker run -d --privileged -v VOL --memory 1g --cpus 1` as a Pulumi program (RemoteImage + Container), no network, healthcheck, smoke test or readiness poll",
  });
  add("X", "pulumi up: empty program (floor)", "s", up.floor);
  add("X", "pulumi up: empty program, type-checked", "s", up.floorTC);
  add("X", "raw deploy", "s", up.raw);
  add("X", "(up − floor) / raw: minimal program", "x", ratio(up.minimal.map((u, i) => u - up.floor[i]), up.raw), { target: { op: "<=", value: 1.2 } });
  for (const spec of variants) {
    add("X", `(up − floor) / raw: ${spec.label}`, "x", ratio(up[spec.key].map((u, i) => u - up.floor[i]), up.raw), { target: { op: "<=", value: 1.2 } });
  }
  for (const spec of variants.filter((v) => v.previews)) {
    add("X", `preview / floor: ${spec.label}`, "x", ratio(preview[spec.key], preview.floor), { target: { op: "<=", value: 1.5 } });
    add("X", `drift check / floor: ${spec.label}`, "x", ratio(drift[spec.key], drift.floor), { target: { op: "<=", value: 1.5 } });
  }
  // Like for like for the type-checking variant: both programs type-checked (the old P1 and P3).
  add("X", "(up − floor) / raw, both type-checked", "x", ratio(up.typecheck.map((u, i) => u - up.floorTC[i]), up.raw), { target: { op: "<=", value: 1.2 } });
  add("X", "preview / floor, both type-checked", "x", ratio(preview.typecheck, preview.floorTC), { target: { op: "<=", value: 1.5 } });
  add("X", "drift check / floor, both type-checked", "x", ratio(drift.typecheck, drift.floorTC), { target: { op: "<=", value: 1.5 } });
  add("X", "tsc build of the precompiled program (per source change)", "s", compileSeconds, {
    note: "the precompiled variants pay this once per source change (e.g. in scripts/up.sh before `pulumi up`), not per deploy",
  });
  for (const [key, value] of Object.entries(cpu)) {
    add("X", `idle CPU in container, healthcheck ${key === "hc1s" ? "1s" : "5s"}`, "ms/s", [value.inContainer], {
      note: `one window of 3 probes (${value.seconds.toFixed(1)}s); the containerd shim and its runc children added ${value.shim.toFixed(1)} ms/s; dockerd's share is not attributable on a shared engine`,
    });
  }
  details.X = { up, preview, drift, cpu, compileSeconds };
}

// ---------------------------------------------------------------------------
// P2: build cache.

/** The buildkitd.toml the stack renders for the dev config: the raw daemon gets the same mirror settings. */
function devToml(): string {
  const settings = devSettings();
  const dir = tempDir("raw-config");
  fs.chmodSync(dir, 0o755);
  const file = path.join(dir, "buildkitd.toml");
  fs.writeFileSync(file, renderBuildkitdToml(settings), { mode: 0o644 });
  return file;
}

async function partP2(runs: number): Promise<void> {
  const stack = await ProgramCopy.real("p2", {}, { "buildkit:image": PREVIOUS_IMAGE });
  const names = stack.names!;
  const host = `docker-container://${names.container}`;
  const rawName = `${NAME_PREFIX}p2-raw`;
  registerRaw(rawName);
  const toml = devToml();
  const rawArgs = (image: string) => ["--name", rawName, "--no-volume", "--image", image, "--config", toml, "--add-host", "host.docker.internal:host-gateway"];
  await ensureImage(PREVIOUS_IMAGE);
  await ensureImage(CURRENT_IMAGE);

  const s = { cold: [] as number[], warm: [] as number[], upgraded: [] as number[], raw: { cold: [] as number[], warm: [] as number[], replaced: [] as number[] } };
  const runsLog: unknown[] = [];
  for (let i = 0; i < runs; i++) {
    log(`P2 run ${i + 1}/${runs}`);
    // Through the stack: deploy the previous release, build cold and warm, upgrade, rebuild.
    await stack.setConfig({ "buildkit:image": PREVIOUS_IMAGE });
    await stack.up();
    const context = referenceContext(`p2-${i}`);
    const seed = `${RUN_ID}-stack-${i}`;
    const cold = await referenceBuild(host, context, seed);
    const warm = await referenceBuild(host, context, seed);
    // A marker in the cache volume (a volume's CreatedAt is its directory's mtime, useless here):
    // if the volume survives the upgrade, so does the marker.
    const marker = `${RUN_ID}-${i}`;
    await mustExec("docker", ["exec", names.container, "sh", "-c", `echo ${marker} > /var/lib/buildkit/bench-marker`]);
    const before = await inspect(names.container, "{{.Id}}");
    await stack.setConfig({ "buildkit:image": CURRENT_IMAGE });
    const upgrade = await stack.up();
    if ((await inspect(names.container, "{{.Id}}")) === before) throw new Error("P2: the upgrade did not replace the container");
    const kept = await exec("docker", ["exec", names.container, "cat", "/var/lib/buildkit/bench-marker"]);
    if (kept.stdout.trim() !== marker) throw new Error("P2: the upgrade did not keep the cache volume");
    const upgraded = await referenceBuild(host, context, seed);
    await stack.destroy(); // The dev cache is not protected: the volume goes, the next run is cold again.
    if (cold.cached > 0) throw new Error(`P2: the cold build had ${cold.cached} cached steps`);

    // The seed's way: no volume of ours; the replacement starts from an empty cache.
    const rawSeed = `${RUN_ID}-raw-${i}`;
    await rawDeploy(rawArgs(PREVIOUS_IMAGE));
    const rawCold = await referenceBuild(`docker-container://${rawName}`, context, rawSeed);
    const rawWarm = await referenceBuild(`docker-container://${rawName}`, context, rawSeed);
    // `-v` also removes the anonymous volume the image's VOLUME creates; the seed's `docker rm -f` would leave it dangling.
    await removeRaw(rawName);
    await rawDeploy(rawArgs(CURRENT_IMAGE));
    const rawReplaced = await referenceBuild(`docker-container://${rawName}`, context, rawSeed);
    await removeRaw(rawName);

    s.cold.push(cold.seconds);
    s.warm.push(warm.seconds);
    s.upgraded.push(upgraded.seconds);
    s.raw.cold.push(rawCold.seconds);
    s.raw.warm.push(rawWarm.seconds);
    s.raw.replaced.push(rawReplaced.seconds);
    runsLog.push({ cold, warm, upgraded, upgradeUpSeconds: upgrade.seconds, rawCold, rawWarm, rawReplaced });
  }
  const steps = runsLog as { warm: { cached: number }; upgraded: { cached: number }; rawReplaced: { cached: number } }[];
  add("P2", "stack: cold build (new volume)", "s", s.cold, {
    note: `bench/reference/Dockerfile (6 RUN/COPY steps, ~95 MB generated, tar+gzip), SEED build arg new every run; cached steps warm: ${steps.map((r) => r.warm.cached).join(",")}, after upgrade: ${steps.map((r) => r.upgraded.cached).join(",")}, raw after replacement: ${steps.map((r) => r.rawReplaced.cached).join(",")}`,
  });
  add("P2", "stack: warm rebuild", "s", s.warm);
  add("P2", `stack: rebuild after upgrade ${PREVIOUS_IMAGE.split(":")[1]} → ${CURRENT_IMAGE.split(":")[1]} (volume kept)`, "s", s.upgraded);
  add("P2", "stack: warm / cold", "x", ratio(s.warm, s.cold), { target: { op: "<=", value: 0.15 } });
  add("P2", "stack: after upgrade / cold", "x", ratio(s.upgraded, s.cold), { target: { op: "<=", value: 0.15 } });
  add("P2", "raw, no volume: cold build", "s", s.raw.cold);
  add("P2", "raw, no volume: warm rebuild", "s", s.raw.warm);
  add("P2", "raw, no volume: rebuild after docker rm -f + run of the new image", "s", s.raw.replaced);
  add("P2", "raw, no volume: warm / cold", "x", ratio(s.raw.warm, s.raw.cold));
  add("P2", "raw, no volume: after replacement / cold", "x", ratio(s.raw.replaced, s.raw.cold), { target: { op: "~", value: 1.0 } });
  details.P2 = runsLog;
}

// ---------------------------------------------------------------------------
// P3 and MEM: a deployed dev stack and a deployed empty program.

let deployed: { stack: ProgramCopy; empty: ProgramCopy } | undefined;

async function deployedFixture(): Promise<{ stack: ProgramCopy; empty: ProgramCopy }> {
  if (!deployed) {
    await ensureImage(CURRENT_IMAGE);
    const stack = await ProgramCopy.real("p3");
    const empty = await ProgramCopy.empty("p3-empty");
    await stack.up();
    await empty.up();
    deployed = { stack, empty };
  }
  return deployed;
}

async function partP3(runs: number): Promise<void> {
  const { stack, empty } = await deployedFixture();
  const t = { preview: [] as number[], emptyPreview: [] as number[], drift: [] as number[], emptyDrift: [] as number[] };
  for (let i = 0; i < runs; i++) {
    log(`P3 run ${i + 1}/${runs}`);
    t.preview.push((await stack.preview()).seconds);
    t.emptyPreview.push((await empty.preview()).seconds);
    t.drift.push((await stack.drift()).seconds);
    t.emptyDrift.push((await empty.drift()).seconds);
  }
  add("P3", "no-op pulumi preview, our stack", "s", t.preview, { note: "`pulumi preview --expect-no-changes` (fails the run on any planned change)" });
  add("P3", "no-op pulumi preview, empty program", "s", t.emptyPreview);
  add("P3", "preview: ours / empty", "x", ratio(t.preview, t.emptyPreview), { target: { op: "<=", value: 1.5 } });
  add("P3", "drift check, our stack", "s", t.drift, { note: "`npm run drift -- --stack bench --cwd DIR` (cli/drift.ts: refresh in memory + preview + container checks), exit 0 required" });
  add("P3", "drift check, empty program", "s", t.emptyDrift);
  add("P3", "drift check: ours / empty", "x", ratio(t.drift, t.emptyDrift), { target: { op: "<=", value: 1.5 } });
  details.P3 = t;
}

async function partMem(runs: number): Promise<void> {
  const { stack } = await deployedFixture();
  const container = stack.names!.container;
  const dir = await containerCgroupDir(container, "memory");
  const limitMib = readNumber(path.join(dir, "memory.limit_in_bytes")) / MIB;
  const resetPeak = () => fs.writeFileSync(path.join(dir, "memory.max_usage_in_bytes"), "0");
  const peakUsage = () => readNumber(path.join(dir, "memory.max_usage_in_bytes")) / MIB;
  // The page cache of files a build writes is charged to the container and kept until the
  // kernel needs it back: usage_in_bytes only grows across builds, up to the limit. What the
  // daemon needs is the working set (usage − inactive file cache, as `docker stats` and the
  // kubelet count it) and its RSS; cgroup v1 keeps no peak of either, so both are sampled.
  const sample = () => {
    const usage = readNumber(path.join(dir, "memory.usage_in_bytes"));
    return { workingSet: (usage - memoryStat(dir, "total_inactive_file")) / MIB, rss: memoryStat(dir, "total_rss") / MIB };
  };
  const sampleUntil = async (done: () => boolean | Promise<boolean>) => {
    const peak = { workingSet: 0, rss: 0 };
    for (;;) {
      const now = sample();
      peak.workingSet = Math.max(peak.workingSet, now.workingSet);
      peak.rss = Math.max(peak.rss, now.rss);
      if (await done()) return peak;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const m = {
    idleWorkingSet: [] as number[], idleRss: [] as number[], idleUsage: [] as number[],
    buildWorkingSet: [] as number[], buildRss: [] as number[], buildUsage: [] as number[], failcnt: [] as number[],
  };
  const context = referenceContext("mem");
  for (let i = 0; i < runs; i++) {
    log(`MEM run ${i + 1}/${runs}`);
    // Idle: through two healthcheck probes (what an idle daemon does), bounded at 30s.
    resetPeak();
    const since = Date.now();
    let probes = 0;
    const idle = await sampleUntil(async () => {
      probes = await probesSince(container, since);
      if (Date.now() - since > 30_000) throw new Error(`MEM: ${container} ran no two healthcheck probes in 30s`);
      return probes >= 2;
    });
    m.idleWorkingSet.push(idle.workingSet);
    m.idleRss.push(idle.rss);
    m.idleUsage.push(peakUsage());
    // During the reference build, with a SEED no earlier build used: every RUN step executes.
    resetPeak();
    const failcnt = readNumber(path.join(dir, "memory.failcnt"));
    let building = true;
    const build = referenceBuild(`docker-container://${container}`, context, `${RUN_ID}-mem-${i}`).finally(() => (building = false));
    const busy = await sampleUntil(() => !building);
    const result = await build;
    if (result.executed === 0) throw new Error("MEM: the reference build ran no step");
    m.buildWorkingSet.push(busy.workingSet);
    m.buildRss.push(busy.rss);
    m.buildUsage.push(peakUsage());
    m.failcnt.push(readNumber(path.join(dir, "memory.failcnt")) - failcnt);
  }
  add("MEM", "idle: working set peak (docker stats: usage − inactive file)", "MiB", m.idleWorkingSet, {
    note:
      `cgroup v1 ${dir.replace(/[0-9a-f]{64}/, "<id>")}, limit ${limitMib.toFixed(0)} MiB: working set and total_rss sampled every 100ms, ` +
      `usage peak from memory.max_usage_in_bytes (reset before each window; it includes page cache, which builds leave charged to the container until reclaimed, so it climbs run after run towards the limit); ` +
      `idle = two healthcheck probes; limit hits (memory.failcnt) during builds: ${m.failcnt.join(", ")}`,
  });
  add("MEM", "idle: RSS peak", "MiB", m.idleRss);
  add("MEM", "idle: usage peak incl. page cache", "MiB", m.idleUsage);
  add("MEM", "reference build: working set peak", "MiB", m.buildWorkingSet);
  add("MEM", "reference build: RSS peak", "MiB", m.buildRss);
  add("MEM", "reference build: usage peak incl. page cache", "MiB", m.buildUsage);
  add("MEM", "idle working set / limit", "x", m.idleWorkingSet.map((v) => v / limitMib));
  add("MEM", "build working set / limit", "x", m.buildWorkingSet.map((v) => v / limitMib));
  add("MEM", "build usage incl. page cache / limit", "x", m.buildUsage.map((v) => v / limitMib));
  details.MEM = { ...m, limitMib };
}

// ---------------------------------------------------------------------------
// P4: test suites.

/** `Tests: 3 failed, 40 passed, 43 total` from jest's summary, or what it said instead. */
function jestSummary(result: Result): string {
  const output = result.stdout + result.stderr;
  return /^Tests:.*$/m.exec(output)?.[0] ?? /No tests found[^\n]*/.exec(output)?.[0] ?? `exit ${result.code}`;
}

/**
 * The integration suite names its docker objects bk-it-* and publishes port
 * 18234; other agents run it on this engine at the same time. Our run uses a
 * private copy of the repository with those names and that port changed, so
 * neither run can remove the other's containers. The code is otherwise the
 * repository's as it is now (tracked and untracked files).
 */
async function integrationCopy(): Promise<{ dir: string; renamed: Record<string, number> }> {
  const dir = tempDir("it");
  const files = (await mustExec("git", ["ls-files", "-co", "--exclude-standard", "-z"], { cwd: repoRoot })).stdout.split("\0").filter(Boolean);
  for (const file of files) {
    if (!fs.existsSync(path.join(repoRoot, file))) continue;
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.copyFileSync(path.join(repoRoot, file), path.join(dir, file));
  }
  fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"));
  const renames: [RegExp, string][] = [[/bk-it-/g, "bench-it-"], [/bk-engine-/g, "bench-engine-"], [/\b18234\b/g, "18334"]];
  const renamed: Record<string, number> = {};
  const testDir = path.join(dir, "tests/integration");
  for (const file of fs.readdirSync(testDir).filter((f) => f.endsWith(".ts"))) {
    let source = fs.readFileSync(path.join(testDir, file), "utf8");
    for (const [pattern, replacement] of renames) {
      source = source.replace(pattern, (match) => {
        renamed[match] = (renamed[match] ?? 0) + 1;
        return replacement;
      });
    }
    fs.writeFileSync(path.join(testDir, file), source);
  }
  if (!renamed["bk-it-"]) throw new Error("P4: no bk-it- names found to rename in tests/integration; refusing to run the suite on shared names");
  return { dir, renamed };
}

async function removeIntegrationObjects(): Promise<void> {
  const list = async (args: string[]) => (await exec("docker", args)).stdout.split("\n").filter(Boolean);
  for (const prefix of ["bench-it-", "bench-engine-"]) {
    // `--filter name=` matches substrings; the prefix check keeps this to our renamed objects.
    const ours = (names: string[]) => names.filter((n) => n.startsWith(prefix));
    for (const name of ours(await list(["ps", "-a", "--filter", `name=${prefix}`, "--format", "{{.Names}}"]))) await exec("docker", ["rm", "-f", "-v", name]);
    for (const name of ours(await list(["network", "ls", "--filter", `name=${prefix}`, "--format", "{{.Name}}"]))) await exec("docker", ["network", "rm", name]);
    for (const name of ours(await list(["volume", "ls", "--filter", `name=${prefix}`, "--format", "{{.Name}}"]))) await exec("docker", ["volume", "rm", "-f", name]);
  }
}

async function partP4(): Promise<void> {
  log("P4 unit suite");
  const unit = await exec("npx", ["jest", "--selectProjects", "unit"], { cwd: repoRoot, boundSeconds: 900 });
  add("P4", `unit suite: npx jest --selectProjects unit (${jestSummary(unit)})`, "s", [unit.seconds], {
    note: `one run; exit code ${unit.code}`,
  });

  const { dir, renamed } = await integrationCopy();
  onCleanup("integration suite objects", removeIntegrationObjects);
  await removeIntegrationObjects();
  log(`P4 integration suite in ${dir} (renamed: ${JSON.stringify(renamed)}); this takes minutes`);
  const integration = await exec("npx", ["jest", "--selectProjects", "integration", "--runInBand"], { cwd: dir, boundSeconds: 3600 });
  await removeIntegrationObjects();
  add("P4", `integration suite: --selectProjects integration --runInBand (${jestSummary(integration)})`, "s", [integration.seconds], {
    note: `one run (the suite takes minutes); exit code ${integration.code}; from a private copy of the repo with docker names bk-it-* → bench-it-*, bk-engine-* → bench-engine-*, mTLS port 18234 → 18334, so it cannot collide with other runs on the shared engine`,
  });
  details.P4 = {
    unit: { seconds: unit.seconds, code: unit.code, summary: jestSummary(unit) },
    integration: { seconds: integration.seconds, code: integration.code, summary: jestSummary(integration), renamed, failures: integration.code ? tail(integration.stderr, 80) : undefined },
  };
}

// ---------------------------------------------------------------------------

async function machine(): Promise<Record<string, unknown>> {
  const text = async (command: string, args: string[]) => (await exec(command, args)).stdout.trim();
  return {
    nproc: Number(await text("nproc", [])),
    free: await text("free", ["-g"]),
    kernel: os.release(),
    docker: await text("docker", ["version", "--format", "server {{.Server.Version}}, client {{.Client.Version}}"]),
    cgroup: await text("docker", ["info", "--format", "{{.CgroupVersion}} ({{.CgroupDriver}})"]),
    pulumi: await text("pulumi", ["version"]),
    node: process.version,
  };
}

async function checkToolchain(): Promise<void> {
  for (const [command, args] of [["docker", ["info", "--format", "{{.ServerVersion}}"]], ["pulumi", ["version"]], ["buildctl", ["--version"]]] as const) {
    const result = await exec(command, [...args]);
    if (result.code !== 0) throw new Error(`${command} is not usable (${tail(result.stderr, 3)}); run \`npm run provision\` first`);
  }
}

/**
 * One benchmark at a time on this machine: runs share the bench-* docker names
 * (and two of them would time each other's load). The lock is a directory
 * holding the owner's pid; a lock whose owner is gone is taken over.
 */
function takeLock(): void {
  const lockDir = path.join(os.tmpdir(), "buildkit-stack-bench.lock");
  const pidFile = path.join(lockDir, "pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(pidFile, String(process.pid));
      onCleanup("benchmark lock", async () => fs.rmSync(lockDir, { recursive: true, force: true }));
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = Number(fs.existsSync(pidFile) ? fs.readFileSync(pidFile, "utf8") : NaN);
      let alive = false;
      try {
        if (Number.isInteger(owner)) alive = process.kill(owner, 0);
      } catch {
        alive = false;
      }
      if (alive) throw new Error(`another benchmark (pid ${owner}) is running on this machine; it uses the same bench-* names. Wait for it.`);
      fs.rmSync(lockDir, { recursive: true, force: true });
    }
  }
  throw new Error("could not take the benchmark lock");
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  takeLock();
  await checkToolchain();
  details.machine = await machine();
  details.options = options;
  details.startedAt = new Date().toISOString();
  const load: Record<string, number[]> = { start: os.loadavg() };
  log(`engine: ${(details.machine as { docker: string }).docker}; DOCKER_HOST=${process.env.DOCKER_HOST ?? "(unset: the default socket)"}`);
  log(`parts ${options.parts.join(", ")}, ${options.runs} run(s) each; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);

  const steps: Record<Part, () => Promise<void>> = {
    P1: () => partP1Engines(options.runs),
    X: () => partX(options.runs),
    P2: () => partP2(options.runs),
    P3: () => partP3(options.runs),
    MEM: () => partMem(options.runs),
    // The Docker peers, then the cluster peer (bench/cluster.ts) on the local Kubernetes cluster.
    PEERS: async () => {
      await partPeers(options.runs, add, details);
      await partClusterPeer(options.runs, add);
    },
    ROUTING: () => partRouting(add, details),
    P4: () => partP4(),
  };
  const errors: string[] = [];
  for (const part of options.parts) {
    const started = Date.now();
    try {
      await steps[part]();
    } catch (error) {
      errors.push(`${part}: ${error instanceof Error ? error.message : String(error)}`);
      log(`${part} failed: ${String(error)}`);
    }
    load[part] = os.loadavg();
    log(`${part} took ${((Date.now() - started) / 1000).toFixed(0)}s; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  }
  await cleanupAll();
  details.loadAverage = load;
  details.errors = errors;
  details.finishedAt = new Date().toISOString();

  const table = textTable(series);
  console.log(table);
  const resultsDir = path.join(repoRoot, "bench/results");
  fs.mkdirSync(resultsDir, { recursive: true });
  const base = path.join(resultsDir, RUN_ID);
  const summaries = series.map((s) => ({ ...s, ...summarize(s.samples) }));
  const json = JSON.stringify({ series: summaries, ...details }, null, 2) + "\n";
  fs.writeFileSync(`${base}.json`, json);
  fs.writeFileSync(path.join(resultsDir, "latest.json"), json);
  fs.writeFileSync(`${base}.md`, markdownTable(series) + "\n");
  const chart = ratioChart(series, `buildkit-stack benchmarks ${details.startedAt as string} (${options.runs} runs)`);
  fs.writeFileSync(`${base}.svg`, chart);
  // docs/benchmark.svg charts the floors; a peers or routing run alone leaves it alone.
  const chartsFloors = options.parts.some((p) => p !== "PEERS" && p !== "ROUTING");
  if (chartsFloors) {
    fs.mkdirSync(path.join(repoRoot, "docs"), { recursive: true });
    fs.writeFileSync(path.join(repoRoot, "docs/benchmark.svg"), chart);
  }
  const trace = details.P1_trace as { ours: Phase[]; empty: Phase[] } | undefined;
  if (trace) {
    console.log("\nP1, one traced `pulumi up` (--otel-traces), our program:");
    for (const p of trace.ours) console.log(`  ${p.seconds.toFixed(2).padStart(6)}s  ${p.phase}`);
    console.log("empty program:");
    for (const p of trace.empty) console.log(`  ${p.seconds.toFixed(2).padStart(6)}s  ${p.phase}`);
  }
  console.log(`\nresults: bench/results/latest.json (and ${path.relative(repoRoot, base)}.{json,md,svg})${chartsFloors ? ", docs/benchmark.svg" : ""}`);
  if (errors.length) {
    console.error(`\n${errors.length} part(s) failed:\n${errors.join("\n")}`);
    return 1;
  }
  return 0;
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: cleaning up what the benchmark created`);
    void cleanupAll().finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    await cleanupAll();
    process.exit(1);
  },
);
