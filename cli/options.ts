/**
 * The command line every stack CLI (drift, doctor) shares. Kept apart from
 * stack-inspect.ts so that cli/early-start.ts can read it before the
 * Automation API loads.
 */
import * as path from "path";

export const repoRoot = path.resolve(__dirname, "..");

/** A failure the user can fix: printed as-is, exit code 1, no stack trace. */
export class UsageError extends Error {}

export interface CliOptions {
  stack?: string;
  cwd: string;
  /** `--heal` (drift only): act on what was found, then check again. */
  heal: boolean;
}

/**
 * Parses `--stack NAME [--cwd DIR]` (also `--stack=NAME`), and `--heal` where
 * `allowHeal`; anything else is a usage error.
 */
export function parseCli(argv: string[], usage: string, allowHeal = false): CliOptions {
  const options: CliOptions = { cwd: repoRoot, heal: false };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].includes("=") ? argv[i].split(/=(.*)/s, 2) : [argv[i], undefined];
    if (flag === "-h" || flag === "--help") throw new UsageError(usage);
    if (flag === "--heal" && allowHeal && inline === undefined) {
      options.heal = true;
      continue;
    }
    if (flag !== "--stack" && flag !== "--cwd") throw new UsageError(`unknown argument ${JSON.stringify(argv[i])}\n${usage}`);
    const value = inline ?? argv[++i];
    if (!value) throw new UsageError(`${flag} needs a value\n${usage}`);
    if (flag === "--stack") options.stack = value;
    else options.cwd = path.resolve(value);
  }
  return options;
}
