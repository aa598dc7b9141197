/**
 * What the benchmarks need besides the measurements themselves: timed
 * commands, private copies of the program (real or empty) with their own
 * file backends, the docker objects they leave behind, and cgroup readings.
 * Everything created here is named `bench-*` and registered for cleanup, so a
 * failed or interrupted run leaves nothing on the shared engine.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { performance } from "perf_hooks";

import { DEFAULT_IMAGE } from "../components/core/buildkitd";
import { DockerSettings, parseDockerSettings } from "../components/docker/config";
import { copyProgram } from "../runtime/program-files";

export const repoRoot = path.resolve(__dirname, "..");
/** Files that make up the program, as tests/integration/harness.ts copies them. */
/** The stack name inside every private copy; each copy has its own backend, so they never meet. */
export const STACK = "bench";
const PASSPHRASE = "bench";
/**
 * Every docker object the benchmark creates starts with this, and it removes
 * nothing else. BUILDKIT_STACK_BENCH_PREFIX gives a run a private prefix on an
 * engine other people use (it must end in "-").
 */
export const NAME_PREFIX = process.env.BUILDKIT_STACK_BENCH_PREFIX ?? "bench-";

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  seconds: number;
}

export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  /** Kill the command after this long: a hung step must fail the benchmark, not stall it. */
  boundSeconds?: number;
}

/** Runs a command to completion and times it; never throws on a non-zero exit. */
export function exec(command: string, args: string[], options: ExecOptions = {}): Promise<Result> {
  return new Promise((resolve) => {
    const started = performance.now();
    // No input: stdin is /dev/null, so a child that exits at once cannot make us write to a closed pipe (EPIPE).
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const bound = options.boundSeconds ?? 900;
    const timer = setTimeout(() => {
      stderr += `\n[bench] killed after ${bound}s`;
      child.kill("SIGKILL");
    }, bound * 1000);
    child.on("error", (error) => (stderr += String(error)));
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, seconds: (performance.now() - started) / 1000 });
    });
    if (child.stdin) {
      child.stdin.on("error", (error) => (stderr += `\n[bench] stdin: ${String(error)}`));
      child.stdin.end(options.input);
    }
  });
}

/** Like {@link exec}, but a non-zero exit is an error showing what the command said. */
export async function mustExec(command: string, args: string[], options: ExecOptions = {}): Promise<Result> {
  const result = await exec(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code} after ${result.seconds.toFixed(1)}s\n${tail(result.stdout)}\n${tail(result.stderr)}`);
  }
  return result;
}

export function tail(text: string, lines = 30): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Polls `check` until it returns a value, or fails naming what never happened. */
export async function waitFor<T>(what: string, boundSeconds: number, check: () => Promise<T | undefined>, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + boundSeconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${boundSeconds}s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

// ---------------------------------------------------------------------------
// Cleanup: every temp dir, stack and docker object we create is registered.

const cleanups: { what: string; run: () => Promise<void> }[] = [];

/** Registers an undo step; {@link cleanupAll} runs them newest first. */
export function onCleanup(what: string, run: () => Promise<void>): () => void {
  const entry = { what, run };
  cleanups.push(entry);
  return () => {
    const index = cleanups.indexOf(entry);
    if (index >= 0) cleanups.splice(index, 1);
  };
}

export async function cleanupAll(): Promise<void> {
  while (cleanups.length > 0) {
    const entry = cleanups.pop()!;
    try {
      await entry.run();
    } catch (error) {
      log(`cleanup of ${entry.what} failed: ${String(error)}`);
    }
  }
}

export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${prefix}-`));
  onCleanup(`temp dir ${dir}`, async () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Removes docker objects by name (ours only: every caller passes bench-* names). */
export async function removeDockerObjects(names: { containers?: string[]; networks?: string[]; volumes?: string[] }): Promise<void> {
  for (const name of names.containers ?? []) {
    assertOurs(name);
    await exec("docker", ["rm", "-f", "-v", name]);
  }
  for (const name of names.networks ?? []) {
    assertOurs(name);
    await exec("docker", ["network", "rm", name]);
  }
  for (const name of names.volumes ?? []) {
    assertOurs(name);
    await exec("docker", ["volume", "rm", "-f", name]);
  }
}

function assertOurs(name: string): void {
  // The engine is shared: never remove anything that is not ours by name.
  if (!name.startsWith(NAME_PREFIX)) throw new Error(`refusing to remove docker object ${name}: not a ${NAME_PREFIX}* name`);
}

export async function dockerExists(kind: "container" | "network" | "volume" | "image", name: string): Promise<boolean> {
  return (await exec("docker", [kind, "inspect", name])).code === 0;
}

export async function inspect(name: string, format: string): Promise<string> {
  return (await mustExec("docker", ["inspect", "-f", format, name])).stdout.trim();
}

/**
 * The dev stack's daemon settings as the bench deploys them (limits, GC, the
 * registry mirror as containers see it), parsed by the program's own rules:
 * what the raw daemon and the Terraform peer are given so they match ours.
 */
export function devSettings(extra: Record<string, unknown> = {}): DockerSettings {
  const mirror = process.env.BUILDKIT_STACK_CONTAINER_MIRROR ?? "host.docker.internal:5000";
  return parseDockerSettings(
    {
      "buildkit:memory": "1g",
      "buildkit:cpus": "1",
      "buildkit:cacheMaxUsedSpace": "5g",
      "buildkit:cacheReservedSpace": "512m",
      "buildkit:maxParallelism": "2",
      "buildkit:registryMirrors": [`http://${mirror}`],
      ...extra,
    },
    { stack: "bench" },
  );
}

// ---------------------------------------------------------------------------
// Private copies of the program.

/**
 * How a copy of the real program differs from the repository's, to measure a
 * proposed change without touching components/, index.ts or Pulumi.yaml.
 */
export interface Variant {
  /**
   * Run the program on ts-node (Pulumi.yaml `typescript: true`), as before it
   * ran through sucrase with V8's code cache: transpile-only, or, with
   * `typeCheck`, type-checked at every run (PULUMI_NODEJS_TRANSPILE_ONLY=false,
   * as before scripts/env.sh made every run transpile-only).
   */
  tsNode?: boolean;
  /** With ts-node (implies `tsNode`): type-check at every run. */
  typeCheck?: boolean;
  /** Compiled by tsc ahead of time; Pulumi.yaml runs bin/index.js with plain node. */
  precompiled?: boolean;
  /** The container healthcheck's interval instead of components/docker/buildkit-stack.ts's 5s. */
  healthcheckInterval?: string;
  /** `wait: false` on the container instead of `wait: true`: the smoke test alone proves readiness. */
  noWait?: boolean;
  /**
   * A docker provider plugin binary to use instead of the provisioned one
   * (bench/patched-provider.sh), installed in a private PULUMI_HOME.
   */
  dockerProvider?: string;
}

/** One host of a fleet copy: `settings` are buildkit:hosts[i] fields (dockerHost, containerName, …). */
export interface FleetHostSpec {
  name: string;
  settings: Record<string, string>;
  /** Fields set as secrets (dockerTlsCa, dockerTlsCert, dockerTlsKey). */
  secrets?: Record<string, string>;
}

export interface DockerNames {
  container: string;
  network: string;
  volume: string;
}

export class ProgramCopy {
  /** Seconds tsc took to build a precompiled copy (a one-off per source change). */
  public compileSeconds?: number;
  /** The volume comes from `docker run -v` semantics (bench/minimal), not from a Pulumi resource. */
  private engineCreatedVolume = false;

  private constructor(
    public readonly label: string,
    public readonly dir: string,
    public readonly env: NodeJS.ProcessEnv,
    public readonly names?: DockerNames,
  ) {}

  /**
   * A copy of the real program with the dev stack's configuration (the repo's
   * Pulumi.dev.yaml, as tests/integration/harness.ts's fromStackFile copies
   * it), docker objects renamed `bench-<id>`, the registry mirror as the
   * harness sets it, and `config` on top.
   */
  static async real(id: string, variant: Variant = {}, config: Record<string, string> = {}): Promise<ProgramCopy> {
    const dir = tempDir(id);
    copyProgram(dir);
    const stackFile = fs.readFileSync(path.join(repoRoot, "Pulumi.dev.yaml"), "utf8").replace(/^encryptionsalt:.*\n/m, "");
    fs.writeFileSync(path.join(dir, `Pulumi.${STACK}.yaml`), stackFile);

    if (variant.healthcheckInterval) {
      const file = path.join(dir, "components/docker/buildkit-stack.ts");
      const source = fs.readFileSync(file, "utf8");
      const patched = source.replace(/interval: "5s",/, `interval: "${variant.healthcheckInterval}",`);
      if (patched === source) throw new Error("variant: healthcheck interval 5s not found in components/docker/buildkit-stack.ts");
      fs.writeFileSync(file, patched);
    }
    if (variant.noWait) {
      const file = path.join(dir, "components/docker/buildkit-stack.ts");
      const source = fs.readFileSync(file, "utf8");
      const patched = source.replace(/wait: true,/, "wait: false,");
      if (patched === source) throw new Error("variant: `wait: true` not found in components/docker/buildkit-stack.ts");
      fs.writeFileSync(file, patched);
    }
    let compileSeconds: number | undefined;
    if (variant.precompiled) compileSeconds = await precompile(dir);

    const names = { container: `${NAME_PREFIX}${id}`, network: `${NAME_PREFIX}${id}`, volume: `${NAME_PREFIX}${id}-cache` };
    const mirror = process.env.BUILDKIT_STACK_CONTAINER_MIRROR ?? "host.docker.internal:5000";
    const copy = await ProgramCopy.init(id, dir, variant, names);
    copy.compileSeconds = compileSeconds;
    await copy.setConfig({
      "buildkit:containerName": names.container,
      "buildkit:networkName": names.network,
      "buildkit:cacheVolumeName": names.volume,
      "buildkit:memory": "1g",
      "buildkit:cpus": "1",
      "buildkit:registryMirrors": JSON.stringify([`http://${mirror}`]),
      "buildkit:extraHosts": JSON.stringify(["host.docker.internal:host-gateway"]),
      "buildkit:smokeTest": "true",
      ...config,
    });
    return copy;
  }

  /**
   * A copy of the real program as a fleet (buildkit:hosts), the way
   * tests/integration/fleet.test.ts writes its host list: the dev stack's
   * base settings, each host's names, its engine and overrides as plain
   * `--path` config, its Docker TLS files as secrets. `base` goes on top of
   * the dev settings. The caller removes what a failed destroy leaves on each
   * engine (only it knows how to reach them).
   */
  static async fleet(id: string, hosts: FleetHostSpec[], base: Record<string, string> = {}): Promise<ProgramCopy> {
    const dir = tempDir(id);
    copyProgram(dir);
    const stackFile = fs.readFileSync(path.join(repoRoot, "Pulumi.dev.yaml"), "utf8").replace(/^encryptionsalt:.*\n/m, "");
    fs.writeFileSync(path.join(dir, `Pulumi.${STACK}.yaml`), stackFile);
    const copy = await ProgramCopy.init(id, dir, {});
    const mirror = process.env.BUILDKIT_STACK_CONTAINER_MIRROR ?? "host.docker.internal:5000";
    await copy.setConfig({
      "buildkit:registryMirrors": JSON.stringify([`http://${mirror}`]),
      "buildkit:extraHosts": JSON.stringify(["host.docker.internal:host-gateway"]),
      "buildkit:smokeTest": "true",
      ...base,
    });
    const plain: string[] = [];
    const secret: string[] = [];
    hosts.forEach((host, index) => {
      for (const [field, value] of Object.entries({ name: host.name, ...host.settings })) plain.push("--plaintext", `buildkit:hosts[${index}].${field}=${value}`);
      for (const [field, value] of Object.entries(host.secrets ?? {})) secret.push("--secret", `buildkit:hosts[${index}].${field}=${value}`);
    });
    await copy.mustPulumi(["config", "set-all", "--path", ...plain, ...secret]);
    return copy;
  }

  /**
   * bench/minimal: the raw way's `docker run` as a Pulumi program (image and
   * container, nothing else). Its volume is created by the engine, not by
   * Pulumi, so {@link destroy} removes it like the raw way's cleanup does.
   */
  static async minimal(id: string): Promise<ProgramCopy> {
    const dir = tempDir(id);
    copyProgram(dir, ["runtime", "package.json", "tsconfig.json"]);
    for (const file of ["Pulumi.yaml", "index.ts"]) fs.copyFileSync(path.join(repoRoot, "bench/minimal", file), path.join(dir, file));
    const names = { container: `${NAME_PREFIX}${id}`, network: `${NAME_PREFIX}${id}-none`, volume: `${NAME_PREFIX}${id}-cache` };
    const copy = await ProgramCopy.init(id, dir, {}, names);
    copy.engineCreatedVolume = true;
    await copy.setConfig({
      "bench-minimal:image": DEFAULT_IMAGE,
      "bench-minimal:containerName": names.container,
      "bench-minimal:volumeName": names.volume,
    });
    return copy;
  }

  /** bench/empty: no resources, same runtime options, tsconfig, backend kind and node_modules. */
  static async empty(id: string, variant: Variant = {}): Promise<ProgramCopy> {
    const dir = tempDir(id);
    copyProgram(dir, ["runtime", "package.json", "tsconfig.json"]);
    for (const file of ["Pulumi.yaml", "index.ts"]) fs.copyFileSync(path.join(repoRoot, "bench/empty", file), path.join(dir, file));
    return ProgramCopy.init(id, dir, variant);
  }

  private static async init(id: string, dir: string, variant: Variant, names?: DockerNames): Promise<ProgramCopy> {
    const backend = path.join(dir, ".state");
    fs.mkdirSync(backend);
    const env: NodeJS.ProcessEnv = { ...process.env, PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
    if (variant.tsNode || variant.typeCheck !== undefined) {
      runOnTsNode(dir);
      env.PULUMI_NODEJS_TRANSPILE_ONLY = String(!variant.typeCheck);
    }
    if (variant.dockerProvider) env.PULUMI_HOME = await privatePulumiHome(dir, variant.dockerProvider);
    const copy = new ProgramCopy(id, dir, env, names);
    await mustExec("pulumi", ["stack", "init", STACK, "--non-interactive"], { cwd: dir, env });
    // Registered after the temp dir, so it runs first: destroy while the program is still there.
    onCleanup(`stack ${id}`, async () => {
      await copy.pulumi(["destroy", "--yes", "--skip-preview"]);
      if (names) await removeDockerObjects({ containers: [names.container], networks: [names.network], volumes: [names.volume] });
    });
    return copy;
  }

  /** Any pulumi CLI command against this copy's stack and backend. */
  pulumi(args: string[], boundSeconds = 600): Promise<Result> {
    return exec("pulumi", [...args, "--stack", STACK, "--non-interactive"], { cwd: this.dir, env: this.env, boundSeconds });
  }

  async mustPulumi(args: string[]): Promise<Result> {
    const result = await this.pulumi(args);
    if (result.code !== 0) throw new Error(`pulumi ${args.join(" ")} (${this.label}) exited ${result.code}\n${tail(result.stdout)}\n${tail(result.stderr)}`);
    return result;
  }

  async setConfig(values: Record<string, string>): Promise<void> {
    const pairs = Object.entries(values).flatMap(([key, value]) => ["--plaintext", `${key}=${value}`]);
    await this.mustPulumi(["config", "set-all", ...pairs]);
  }

  /** `pulumi up` as the Automation API and scripts/up.sh run it: no separate preview. */
  up(extra: string[] = []): Promise<Result> {
    return this.mustPulumi(["up", "--yes", "--skip-preview", ...extra]);
  }

  /** Destroys the stack's resources and checks that the engine agrees. */
  async destroy(): Promise<void> {
    await this.mustPulumi(["destroy", "--yes", "--skip-preview"]);
    if (!this.names) return;
    if (this.engineCreatedVolume) await removeDockerObjects({ volumes: [this.names.volume] });
    for (const [kind, name] of [["container", this.names.container], ["network", this.names.network], ["volume", this.names.volume]] as const) {
      if (await dockerExists(kind, name)) throw new Error(`${kind} ${name} is still there after pulumi destroy`);
    }
  }

  /** A no-op preview: fails if the preview plans any change. */
  preview(): Promise<Result> {
    return this.mustPulumi(["preview", "--expect-no-changes"]);
  }

  /** `npm run drift -- --stack NAME --cwd DIR`, as a user types it. */
  async drift(): Promise<Result> {
    const result = await exec("npm", ["run", "drift", "--", "--stack", STACK, "--cwd", this.dir], { cwd: repoRoot, env: this.env, boundSeconds: 600 });
    if (result.code !== 0) throw new Error(`npm run drift (${this.label}) exited ${result.code} (0 = no drift expected)\n${tail(result.stdout)}\n${tail(result.stderr)}`);
    return result;
  }
}

/**
 * A PULUMI_HOME of this copy's own whose docker plugin is `binary`; the
 * command plugin is the provisioned one. The shared plugin cache is not touched.
 */
async function privatePulumiHome(dir: string, binary: string): Promise<string> {
  const home = path.join(dir, ".pulumi-home");
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
  const env = { ...process.env, PULUMI_HOME: home };
  const plugins: [string, string][] = [["docker", binary], ["command", path.join(cache, "pulumi/providers/pulumi-resource-command")]];
  for (const [name, file] of plugins) {
    await mustExec("pulumi", ["plugin", "install", "resource", name, pkg.dependencies[`@pulumi/${name}`], "--file", file], { env });
  }
  return home;
}

/**
 * Compiles the program copy with tsc (the same compiler options as the
 * project's tsconfig) and points Pulumi.yaml at the output, run by plain
 * node: no ts-node, no type check at deploy time.
 */
async function precompile(dir: string): Promise<number> {
  fs.writeFileSync(
    path.join(dir, "tsconfig.build.json"),
    JSON.stringify({ extends: "./tsconfig.json", compilerOptions: { outDir: "bin", types: ["node"] }, include: ["index.ts", "components/**/*.ts"] }, null, 2),
  );
  const tsc = await mustExec(path.join(repoRoot, "node_modules/.bin/tsc"), ["-p", "tsconfig.build.json"], { cwd: dir });
  const projectFile = path.join(dir, "Pulumi.yaml");
  const project = fs.readFileSync(projectFile, "utf8");
  const patched = project.replace(/^\s+nodeargs:.*\n/m, "").replace(/^runtime:/m, "main: bin/index.js\nruntime:");
  if (!patched.includes("typescript: false") || !patched.includes("main: bin/index.js") || patched.includes("nodeargs")) {
    throw new Error("variant: could not rewrite Pulumi.yaml for the precompiled program");
  }
  fs.writeFileSync(projectFile, patched);
  return tsc.seconds;
}

/** Rewrites a copy's Pulumi.yaml to run the program on ts-node, as Pulumi does by default for TypeScript. */
function runOnTsNode(dir: string): void {
  const projectFile = path.join(dir, "Pulumi.yaml");
  const project = fs.readFileSync(projectFile, "utf8");
  const patched = project.replace(/^(\s+typescript:) false$/m, "$1 true").replace(/^\s+nodeargs:.*\n/m, "");
  if (!patched.includes("typescript: true") || patched.includes("nodeargs")) throw new Error("variant: could not rewrite Pulumi.yaml for ts-node");
  fs.writeFileSync(projectFile, patched);
}

// ---------------------------------------------------------------------------
// Builds and cgroup readings.

/** A build context for bench/reference/Dockerfile; note.txt is the COPY step's input. */
export function referenceContext(id: string): string {
  const dir = tempDir(`ctx-${id}`);
  fs.copyFileSync(path.join(repoRoot, "bench/reference/Dockerfile"), path.join(dir, "Dockerfile"));
  fs.writeFileSync(path.join(dir, "note.txt"), "buildkit-stack reference build\n");
  return dir;
}

export interface Build {
  seconds: number;
  /** Steps BuildKit reported as CACHED. */
  cached: number;
  /** Steps that ran (DONE, not CACHED). */
  executed: number;
}

/** `buildctl build` of the reference context through `addr`, as a user does; SEED keys the first RUN step. */
export async function referenceBuild(addr: string, context: string, seed: string): Promise<Build> {
  const result = await exec(
    "buildctl",
    [
      "--addr", addr, "build", "--progress=plain", "--frontend", "dockerfile.v0",
      "--local", `context=${context}`, "--local", `dockerfile=${context}`, "--opt", `build-arg:SEED=${seed}`,
    ],
    { boundSeconds: 600 },
  );
  if (result.code !== 0) throw new Error(`reference build through ${addr} failed\n${tail(result.stderr)}`);
  return { seconds: result.seconds, ...countSteps(result.stderr) };
}

/**
 * The Dockerfile's own steps (`[n/N] RUN|COPY`, not context transfers and
 * metadata loads) in a `--progress=plain` log, as buildctl and buildx print
 * it: how many BuildKit reported CACHED and how many ran (DONE).
 */
export function countSteps(progress: string): { cached: number; executed: number } {
  const lines = progress.split("\n").map((line) => line.trim());
  const steps = new Map<string, string>();
  for (const line of lines) {
    const header = /^(#\d+) \[[^\]]*?\d+\/\d+\] (RUN|COPY)/.exec(line);
    if (header) steps.set(header[1], "pending");
  }
  for (const line of lines) {
    const done = /^(#\d+) (CACHED|DONE)/.exec(line);
    if (done && steps.has(done[1])) steps.set(done[1], done[2]);
  }
  const states = [...steps.values()];
  return { cached: states.filter((s) => s === "CACHED").length, executed: states.filter((s) => s === "DONE").length };
}

/**
 * A container's cgroup v1 directory for `controller` (memory, cpuacct), read
 * from its init process: engines differ in cgroup parent (20.10's /docker,
 * the Docker 28/29 engines' own buildkit-stack-dockerNN).
 */
export async function containerCgroupDir(container: string, controller: "memory" | "cpuacct"): Promise<string> {
  const pid = await inspect(container, "{{.State.Pid}}");
  const line = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((l) => (l.split(":")[1] ?? "").split(",").includes(controller));
  if (!line) throw new Error(`container ${container} (pid ${pid}) has no ${controller} cgroup (cgroup v1 expected)`);
  return path.join("/sys/fs/cgroup", controller, line.split(":")[2]);
}

export function readNumber(file: string): number {
  return Number(fs.readFileSync(file, "utf8").trim());
}

/** One key of a cgroup v1 memory.stat file (total_rss, total_cache, ...). */
export function memoryStat(dir: string, key: string): number {
  const match = new RegExp(`^${key} (\\d+)$`, "m").exec(fs.readFileSync(path.join(dir, "memory.stat"), "utf8"));
  return match ? Number(match[1]) : NaN;
}

/** The provisioned buildx version (scripts/versions.sh). */
export const BUILDX_VERSION = /^BUILDX_VERSION="([^"]+)"/m.exec(fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8"))![1];

/**
 * A DOCKER_CONFIG of the bench's own holding the provisioned buildx plugin:
 * buildx keeps its builders and contexts there, so a user's ~/.docker stays untouched.
 */
export function buildxDockerConfig(prefix: string): string {
  const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
  const plugin = path.join(cache, "tools", `buildx-${BUILDX_VERSION}`, "docker-buildx");
  if (!fs.existsSync(plugin)) throw new Error(`docker buildx ${BUILDX_VERSION} is not built (${plugin}); run \`bash scripts/provision/buildx.sh\``);
  const dockerConfig = tempDir(prefix);
  fs.mkdirSync(path.join(dockerConfig, "cli-plugins"));
  fs.symlinkSync(plugin, path.join(dockerConfig, "cli-plugins", "docker-buildx"));
  return dockerConfig;
}
