/**
 * The command line every CLI shares, and how a CLI ends. Kept apart from
 * stack-state.ts so that cli/early-start.ts can read it before the
 * Automation API loads.
 */
import * as path from "path";
import { parseArgs } from "util";

export const repoRoot = path.resolve(__dirname, "..");

/** A failure the user can fix: printed as-is, no stack trace (drift and doctor exit 1, route and buildx 2). */
export class UsageError extends Error {}

export interface CliOptions {
  stack?: string;
  cwd: string;
  /** `--heal` (drift only): act on what was found, then check again. */
  heal: boolean;
}

/** What each flag of a command line is: a string takes a value (`--name value` or `--name=value`), a boolean none. */
export type FlagTypes = Record<string, "string" | "boolean">;

/** The flags given, by name: a string flag's value, `true` for a boolean one. */
export type FlagValues<T extends FlagTypes> = { [K in keyof T]?: T[K] extends "string" ? string : true };

/**
 * Every CLI's command line, tokenised by node's util.parseArgs and judged by
 * one rule: `-h`/`--help` shows the usage; a flag not in `types`, a value on a
 * boolean flag, a positional argument where `positionals` is false, and a
 * string flag without a value are usage errors naming the argument. The last
 * of a repeated flag wins. (Not `strict`: its own messages name no usage, and
 * it refuses `--stack -dev`-like values the CLIs have always taken.)
 */
export function parseFlags<T extends FlagTypes>(
  argv: string[],
  usage: string,
  types: T,
  positionals = false,
): { flags: FlagValues<T>; positionals: string[] } {
  const options = Object.fromEntries(Object.entries(types).map(([name, type]) => [name, { type }]));
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const flags: Record<string, string | true> = {};
  const given: string[] = [];
  for (const token of tokens) {
    if (token.kind === "option-terminator") continue;
    if (token.kind === "positional") {
      if (!positionals) throw new UsageError(`unknown argument ${JSON.stringify(token.value)}\n${usage}`);
      given.push(token.value);
      continue;
    }
    if (token.name === "h" || token.name === "help") throw new UsageError(usage);
    const type = types[token.name];
    if (!type || (type === "boolean" && token.value !== undefined)) {
      throw new UsageError(`unknown argument ${JSON.stringify(argv[token.index])}\n${usage}`);
    }
    if (type === "string" && !token.value) throw new UsageError(`${token.rawName} needs a value\n${usage}`);
    flags[token.name] = token.value ?? true;
  }
  return { flags: flags as FlagValues<T>, positionals: given };
}

/** The stack CLIs' flags: drift adds `--heal`. */
const STACK_FLAGS = { stack: "string", cwd: "string" } as const;
const STACK_FLAGS_WITH_HEAL = { ...STACK_FLAGS, heal: "boolean" } as const;

/**
 * Parses `--stack NAME [--cwd DIR]` (also `--stack=NAME`), and `--heal` where
 * `allowHeal`; anything else is a usage error.
 */
export function parseCli(argv: string[], usage: string, allowHeal = false): CliOptions {
  const { flags } = parseFlags(argv, usage, allowHeal ? STACK_FLAGS_WITH_HEAL : STACK_FLAGS);
  return {
    stack: flags.stack,
    cwd: flags.cwd === undefined ? repoRoot : path.resolve(flags.cwd),
    heal: "heal" in flags,
  };
}

/** The line of an error worth showing: pulumi's `error:` line, else the first, at most 400 characters. */
export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const meaningful = lines.find((l) => /^error:/i.test(l)) ?? lines[0] ?? "";
  return meaningful.length > 400 ? `${meaningful.slice(0, 400)}…` : meaningful;
}


/** Runs a script's main; a {@link UsageError} or any failure becomes one line and exit 1. */
export function runMain(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof UsageError ? error.message : `error: ${firstLine(error)}`}\n`);
      process.exit(1);
    },
  );
}
