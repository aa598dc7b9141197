/**
 * Lines the CLIs print for a user to paste or `eval`: every word that comes
 * from config or state (host names, URNs with `$`, paths) quoted once, here.
 */
import * as path from "path";

import { repoRoot } from "./options";

/** `word` as one POSIX shell word: as is when it is plain, else in single quotes. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/**
 * How to run pulumi against a stack by hand: the env file puts the CLI and
 * backend in place; `-C` when the program is not the repo's own.
 */
export function pulumiCommand(stack: string, workDir: string, args: string[]): string {
  const cwd = path.resolve(workDir) === repoRoot ? [] : ["-C", shellQuote(workDir)];
  return `source scripts/env.sh && pulumi ${[...cwd, ...args, "--stack", shellQuote(stack)].join(" ")}`;
}
