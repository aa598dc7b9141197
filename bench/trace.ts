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
