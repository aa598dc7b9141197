/**
 * Running a command to completion, for the CLIs and for the tests that drive
 * them: one definition, so both see failures the same way.
 */
import { spawnSync } from "child_process";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  /** The whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Killed after this long; the result then has code -1 and the reason in stderr. */
  timeoutMs?: number;
}

/** Runs a command to completion; never throws, so callers can act on (and tests assert) failures. */
export function runCommand(command: string, args: string[], options: RunOptions = {}): CommandResult {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    input: options.input,
    env: options.env ?? process.env,
    cwd: options.cwd,
    timeout: options.timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    code: result.status ?? -1,
    stdout: result.stdout ?? "",
    stderr: (result.stderr ?? "") + (result.error ? String(result.error.message) : ""),
  };
}

/** Like {@link runCommand}, but a non-zero exit is an error that shows what the command said. */
export function mustRun(command: string, args: string[], options: RunOptions = {}): string {
  const result = runCommand(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${result.code}\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}
