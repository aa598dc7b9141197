/**
 * Where the time of one `pulumi up` goes, from the OpenTelemetry spans the CLI
 * writes with `--otel-traces file://FILE` (one JSON document per line; the
 * CLI, the language host and the providers each report their own spans).
 */
import * as fs from "fs";

interface Span {
  service: string;
  name: string;
  /** Milliseconds since the first span of the trace. */
  start: number;
  end: number;
  attributes: Record<string, string>;
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string; boolValue?: boolean };
}
interface OtlpSpan {
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: OtlpAttribute[];
}
interface OtlpDocument {
  resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

export function readSpans(file: string): Span[] {
  const raw: (Omit<Span, "start" | "end"> & { start: bigint; end: bigint })[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const document = JSON.parse(line) as OtlpDocument;
    for (const resourceSpans of document.resourceSpans) {
      const service = resourceSpans.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "?";
      for (const scope of resourceSpans.scopeSpans) {
        for (const span of scope.spans) {
          const attributes: Record<string, string> = {};
          // Repeated keys (gRPC request and response are both "Msg") are joined.
          for (const a of span.attributes ?? []) {
            const value = a.value.stringValue ?? a.value.intValue ?? String(a.value.boolValue ?? "");
            attributes[a.key] = attributes[a.key] ? `${attributes[a.key]}\n${value}` : value;
          }
          raw.push({ service, name: span.name, start: BigInt(span.startTimeUnixNano), end: BigInt(span.endTimeUnixNano), attributes });
        }
      }
    }
  }
  if (raw.length === 0) throw new Error(`no spans in ${file}`);
  const origin = raw.reduce((min, s) => (s.start < min ? s.start : min), raw[0].start);
  return raw
    .map((s) => ({ ...s, start: Number(s.start - origin) / 1e6, end: Number(s.end - origin) / 1e6 }))
    .sort((a, b) => a.start - b.start);
}

export interface Phase {
  phase: string;
  seconds: number;
}

/** Milestones of a `pulumi up` of the real program, in order, as seconds between them. */
export function upPhases(file: string): Phase[] {
  const spans = readSpans(file);
  const total = spans.find((s) => s.service === "pulumi-cli" && s.name === "pulumi");
  const node = spans.find((s) => s.name === "execNodejs");
  const register = (type: string) =>
    spans.find((s) => s.service === "pulumi-language-host" && s.name.endsWith("ResourceMonitor/RegisterResource") && (s.attributes.Msg ?? "").includes(`type:\\"${type}\\"`));
  const stackRegistered = register("pulumi:pulumi:Stack");
  const providerRegistered = register("pulumi:providers:docker");
  const create = (fragment: string) => spans.find((s) => s.name === "sdkv2.Create" && (s.attributes.urn ?? "").includes(fragment));
  const network = create("docker:index/network:Network");
  const volume = create("docker:index/volume:Volume");
  const image = create("docker:index/remoteImage:RemoteImage");
  const container = create("docker:index/container:Container");
  // Two local commands: the cache guard runs first (before the volume), the smoke test last (after the container).
  const commands = spans.filter((s) => s.service === "command" && s.name.endsWith("ResourceProvider/Create"));
  const smoke = commands.length > 0 ? commands[commands.length - 1] : undefined;
  const guard = commands.length > 1 ? commands[0] : undefined;
  const phases: Phase[] = [];
  const add = (phase: string, from: number | undefined, to: number | undefined) => {
    if (from !== undefined && to !== undefined) phases.push({ phase, seconds: (to - from) / 1000 });
  };
  add("CLI start → node program started (CLI, plan, language host)", total?.start, node?.start);
  add("node started → stack resource registered (SDK load)", node?.start, stackRegistered?.start);
  add("stack registered → first resource registered (program compile + load)", stackRegistered?.end, providerRegistered?.start);
  add("command:local:Command cache guard (before volume and network)", guard?.start, guard?.end);
  add("docker:Network create (critical path)", network?.start, network?.end);
  add("docker:Volume create (parallel)", volume?.start, volume?.end);
  add("docker:RemoteImage create (parallel)", image?.start, image?.end);
  add("docker:Container create + wait healthy", container?.start, container?.end);
  add("command:local:Command smoke test", smoke?.start, smoke?.end);
  add("last step done → CLI exit (outputs, snapshot)", smoke?.end ?? container?.end, total?.end);
  add("total (traced run)", total?.start, total?.end);
  return phases;
}

/** Milestones of a `pulumi up` of the empty program. */
export function emptyUpPhases(file: string): Phase[] {
  const spans = readSpans(file);
  const total = spans.find((s) => s.service === "pulumi-cli" && s.name === "pulumi");
  const node = spans.find((s) => s.name === "execNodejs");
  const phases: Phase[] = [];
  if (total && node) {
    phases.push({ phase: "CLI start → node program started", seconds: node.start / 1000 - total.start / 1000 });
    phases.push({ phase: "node program (SDK load, compile, run)", seconds: (node.end - node.start) / 1000 });
    phases.push({ phase: "total (traced run)", seconds: (total.end - total.start) / 1000 });
  }
  return phases;
}

// ---------------------------------------------------------------------------
// Process timelines: `strace -f -ttt --seccomp-bpf -e trace=execve,exit_group`.

/** One program started during a traced command: when (seconds from the first exec), until its process exited. */
export interface Exec {
  pid: number;
  start: number;
  end: number;
  argv: string[];
}

/** The command line strace prints for STRACE_EXEC: traces only process starts and exits, so it barely slows them. */
export const STRACE_ARGS = ["-f", "-ttt", "--seccomp-bpf", "-e", "trace=execve,exit_group", "-e", "signal=none", "-s", "256"];

/** Every successful execve in a strace log, with its process's exit time. */
export function readExecs(file: string): Exec[] {
  const execs: Exec[] = [];
  const exited = new Map<number, number>();
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    // strace pads the pid to five columns: "5798  1796641307.270910 execve(...)" once pids are below 10000.
    const exec = /^(\d+)\s+(\d+\.\d+) execve\("[^"]*", \[(.*)\], .*\) = 0$/.exec(line);
    if (exec) {
      const argv = [...exec[3].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\(.)/g, "$1"));
      execs.push({ pid: Number(exec[1]), start: Number(exec[2]), end: NaN, argv });
      continue;
    }
    const exit = /^(\d+)\s+(\d+\.\d+) \+\+\+ (?:exited with|killed by)/.exec(line);
    if (exit) exited.set(Number(exit[1]), Number(exit[2]));
  }
  if (execs.length === 0) throw new Error(`no execve in ${file}`);
  const origin = execs[0].start;
  return execs.map((e) => ({ ...e, start: e.start - origin, end: (exited.get(e.pid) ?? NaN) - origin }));
}

const base = (argv: string[]) => (argv[0] ?? "").split("/").pop() ?? "";
const isPulumi = (e: Exec, command: string) => base(e.argv) === "pulumi" && e.argv.includes(command);
/** The node process the language host starts for the program (it runs @pulumi/pulumi's cmd/run). */
const isProgram = (e: Exec) => base(e.argv) === "node" && e.argv.some((a) => /@pulumi\/pulumi\/cmd\/run/.test(a));
const isProvider = (e: Exec, name: string) => base(e.argv) === `pulumi-resource-${name}`;

/**
 * Where a `pulumi preview` (or `up`) spends its time, from its process
 * timeline: the CLI's start, the language host, node with the program, and
 * the providers; `spans` (the same run's --otel-traces file) adds when the SDK
 * had loaded (the stack's registration) and when the program registered its
 * first resource. Phases run between consecutive milestones in the order they
 * happened: a plain preview starts the providers after the program registers
 * resources, a `preview --refresh` starts them first to read every resource
 * back, so no order is assumed.
 */
export function previewPhases(execs: Exec[], spansFile?: string): Phase[] {
  const cli = execs.find((e) => base(e.argv) === "pulumi");
  const host = execs.find((e) => base(e.argv) === "pulumi-language-nodejs");
  const program = execs.find(isProgram);
  const docker = execs.find((e) => isProvider(e, "docker"));
  const command = execs.find((e) => isProvider(e, "command"));
  const milestones: { name: string; at: number | undefined }[] = [
    { name: "CLI started", at: cli?.start },
    { name: "language host started", at: host?.start },
    { name: "program's node started", at: program?.start },
    { name: "docker provider started", at: docker?.start },
    { name: "command provider started", at: command?.start },
  ];
  if (spansFile) {
    const spans = readSpans(spansFile);
    // Span times are ms from the first span, which is the CLI's root span: line them up on its start.
    const root = spans.find((s) => s.service === "pulumi-cli" && s.name === "pulumi");
    const at = (ms: number | undefined) => (ms === undefined || !root || !cli ? undefined : cli.start + (ms - root.start) / 1000);
    const registrations = spans.filter((s) => s.service === "pulumi-language-host" && s.name.endsWith("ResourceMonitor/RegisterResource"));
    const stack = registrations.find((s) => (s.attributes.Msg ?? "").includes('type:\\"pulumi:pulumi:Stack\\"'));
    const first = registrations.find((s) => s !== stack && s.start >= (stack?.start ?? 0));
    milestones.push({ name: "stack registered", at: at(stack?.start) }, { name: "first resource registered", at: at(first?.start) });
  }
  const known = milestones.filter((m): m is { name: string; at: number } => m.at !== undefined && Number.isFinite(m.at)).sort((a, b) => a.at - b.at);
  if (cli && Number.isFinite(cli.end)) known.push({ name: "CLI exited", at: cli.end });
  const phases: Phase[] = known.slice(1).map((m, i) => ({ phase: `${known[i].name} → ${m.name}`, seconds: m.at - known[i].at }));
  if (program && Number.isFinite(program.end)) phases.push({ phase: "program's node: whole life", seconds: program.end - program.start });
  if (cli && Number.isFinite(cli.end)) phases.push({ phase: "total: CLI start → exit", seconds: cli.end - cli.start });
  return phases;
}

/**
 * Where `npm run drift` spends its time: npm, drift's node (and the
 * Automation API) until its `pulumi preview --refresh` starts, the preview
 * itself as {@link previewPhases} splits it, and what drift does after it.
 */
export function driftPhases(execs: Exec[]): Phase[] {
  const npm = execs[0];
  const drift = execs.find((e) => base(e.argv) === "node" && e.argv.some((a) => a.endsWith("cli/drift.ts")));
  const version = execs.find((e) => isPulumi(e, "version"));
  const exported = execs.find((e) => isPulumi(e, "export"));
  const preview = execs.find((e) => isPulumi(e, "preview"));
  const after = preview ? execs.filter((e) => e.start >= preview.end) : [];
  const phases: Phase[] = [];
  const add = (phase: string, from: number | undefined, to: number | undefined) => {
    if (from !== undefined && to !== undefined && Number.isFinite(from) && Number.isFinite(to)) phases.push({ phase, seconds: to - from });
  };
  add("npm started → drift's node started (npm, scripts/run-ts.sh, env.sh)", npm.start, drift?.start);
  add("drift's node started → pulumi preview --refresh started (preload, Automation API, workspace)", drift?.start, preview?.start);
  add("  meanwhile: pulumi version", version?.start, version?.end);
  add("  meanwhile: pulumi stack export", exported?.start, exported?.end);
  if (preview) {
    const inner = previewPhases(execs.filter((e) => e.start >= preview.start && e.start <= preview.end));
    for (const p of inner) if (!p.phase.startsWith("total")) phases.push({ phase: `  preview: ${p.phase}`, seconds: p.seconds });
  }
  add("pulumi preview --refresh: whole", preview?.start, preview?.end);
  add(`preview exited → drift exited (${after.filter((e) => base(e.argv) === "docker").length} docker calls, report)`, preview?.end, npm.end);
  add("total: npm start → exit", npm.start, npm.end);
  return phases;
}
