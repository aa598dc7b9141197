/**
 * What a stack CLI asks the pulumi CLI before anything else, started the
 * moment the process starts (cli/early-start.ts) instead of after the
 * Automation API has loaded (~0.4 s):
 *
 * - `pulumi version`: `LocalWorkspace.create` runs it (~0.25 s) before any
 *   other command can start; {@link pulumiCli} hands the workspace a
 *   PulumiCommand made from the answer instead.
 * - `pulumi stack export --show-secrets` of the stack named on the command
 *   line ({@link earlyExport}). Run alongside the module loading it has a core
 *   to itself; run alongside drift's preview, as it was, it slowed the
 *   preview's own start by ~0.4 s on two cores.
 *
 * Nothing here may import the Automation API at load time.
 */
import { execFile, spawnSync } from "child_process";
import { createRequire } from "module";
import * as path from "path";

import type { PulumiCommand } from "@pulumi/pulumi/automation";

import { parseCli, repoRoot, UsageError } from "./options";

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

function pulumi(args: string[], cwd?: string): Promise<Output> {
  return new Promise((resolve) => {
    execFile(
      "pulumi",
      args,
      { cwd, env: { ...process.env, PULUMI_SKIP_UPDATE_CHECK: "true" }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

let version: Promise<Output> | undefined;
let exported: { stack: string; cwd: string; output: Promise<Output> } | undefined;

/**
 * Starts `pulumi version`, and the export of the stack `argv` names (`--stack
 * NAME [--cwd DIR]`, as {@link parseCli} reads it); a command line it cannot
 * read starts no export, and the CLI's own parse reports it.
 */
export function startPulumiEarly(argv: string[]): void {
  version ??= pulumi(["version"]);
  let options;
  try {
    options = parseCli(argv, "", true);
  } catch {
    return;
  }
  if (options.stack) {
    exported = { stack: options.stack, cwd: options.cwd, output: pulumi(["stack", "export", "--show-secrets", "--stack", options.stack], options.cwd) };
  }
}

/**
 * The deployment of `stack` in `workDir` as `pulumi stack export
 * --show-secrets` printed it at start (what `Stack.exportStack` parses), once;
 * undefined when none was started for that stack, or it was taken.
 */
export function earlyExport(stack: string, workDir: string): Promise<unknown> | undefined {
  if (!exported || exported.stack !== stack || path.resolve(exported.cwd) !== path.resolve(workDir)) return undefined;
  const { output } = exported;
  exported = undefined;
  return output.then((result) => {
    if (result.code !== 0) throw new Error(`pulumi stack export --stack ${stack} exited ${result.code}: ${result.stderr.trim()}`);
    return JSON.parse(result.stdout) as unknown;
  });
}

/** PulumiCommand's constructor: public at runtime, private in its types (`PulumiCommand.get` runs the CLI itself). */
type PulumiCommandConstructor = new (command: string, version: PulumiCommand["version"]) => PulumiCommand;

/**
 * The `pulumi` on PATH with the version it reported at start. When that
 * failed or is not a Pulumi 3 version, the Automation API's own
 * `PulumiCommand.get` asks again and says what is wrong.
 */
export async function pulumiCli(): Promise<PulumiCommand> {
  version ??= pulumi(["version"]);
  const { PulumiCommand } = await import("@pulumi/pulumi/automation");
  // The SDK's own semver, so the version is the kind of object the Automation API compares.
  const semver = createRequire(require.resolve("@pulumi/pulumi/package.json"))("semver") as { parse(v: string): PulumiCommand["version"] };
  const reported = await version;
  const parsed = reported.code === 0 ? semver.parse(reported.stdout.trim()) : null;
  if (parsed === null || parsed.major !== 3) return PulumiCommand.get();
  return new (PulumiCommand as unknown as PulumiCommandConstructor)("pulumi", parsed);
}

/** A stack output as `pulumi stack output NAME --json --show-secrets` prints it; without a name, all of them (an object by name). */
export function readStackOutput(output: string | undefined, stack: string | undefined): string {
  const args = ["stack", "output", ...(output ? [output] : []), "--json", "--show-secrets", ...(stack ? ["--stack", stack] : [])];
  const result = spawnSync("pulumi", args, { cwd: repoRoot, encoding: "utf8" });
  if (result.status !== 0) {
    throw new UsageError(`pulumi ${args.join(" ")} failed: ${(result.stderr || String(result.error)).trim()}`);
  }
  return result.stdout;
}
