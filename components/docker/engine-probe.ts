/**
 * Asking a Docker engine what it is, the one way the program and the CLIs do
 * it: a bounded `docker version` against an endpoint, so the user never has
 * to say which Docker they run, and an engine that does not answer costs at
 * most the bound and says why.
 */
import { execFile } from "child_process";

/** Docker's default socket: where the docker provider goes when neither `host` nor DOCKER_HOST is set. */
export const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

/** Bound on one probe: an engine that does not answer in this time is unreachable. */
export const ENGINE_PROBE_TIMEOUT_MS = 20_000;

/**
 * The first API version whose engines keep a healthcheck's start interval
 * (Docker 25). Older engines silently drop the field, so the provider would
 * read back "0s" and show a perpetual replacement.
 */
export const START_INTERVAL_MIN_API = "1.44";

/** Whether Docker API version `version` ("1.41", "1.51") is at least `minimum`. */
export function apiAtLeast(version: string, minimum: string): boolean {
  const parse = (v: string) => {
    const match = /^(\d+)\.(\d+)$/.exec(v.trim());
    if (!match) throw new Error(`"${v}" is not a Docker API version (expected MAJOR.MINOR, like 1.44)`);
    return [Number(match[1]), Number(match[2])];
  };
  const [major, minor] = parse(version);
  const [minMajor, minMinor] = parse(minimum);
  return major > minMajor || (major === minMajor && minor >= minMinor);
}

/** What an engine that answered said about itself. */
export interface EngineAnswer {
  ok: true;
  /** The engine's release, `29.8.0`. */
  version: string;
  /** Its newest API version, `1.52`. */
  apiVersion: string;
}

export type EngineProbe = EngineAnswer | { ok: false; reason: string };

/** The first meaningful line of a command's error text. */
function firstLine(text: string): string {
  return text.split("\n").map((line) => line.trim()).find((line) => line !== "") ?? "";
}

/**
 * `docker version` with `env` (its DOCKER_HOST, TLS files), bounded: the
 * engine's release and API version, or why it did not answer.
 */
export function probeEngine(env: NodeJS.ProcessEnv = process.env, timeoutMs = ENGINE_PROBE_TIMEOUT_MS): Promise<EngineProbe> {
  return new Promise((resolve) => {
    execFile(
      "docker",
      ["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"],
      { env, timeout: timeoutMs, encoding: "utf8" },
      (error, stdout, stderr) => {
        const [version, apiVersion] = stdout.trim().split(" ");
        if (!error && version && /^\d+\.\d+$/.test(apiVersion ?? "")) return resolve({ ok: true, version, apiVersion });
        if (error?.killed) return resolve({ ok: false, reason: `docker version did not answer within ${timeoutMs / 1000}s` });
        // `docker version` prints the client's half even when the server does not answer: the error is what matters.
        resolve({ ok: false, reason: firstLine(stderr) || firstLine(String(error ?? "")) || "docker version printed no server version" });
      },
    );
  });
}

/** The environment a docker CLI needs to reach `dockerHost` (unset: DOCKER_HOST, else the default socket). */
export function dockerHostEnv(dockerHost?: string): NodeJS.ProcessEnv {
  return { ...process.env, DOCKER_HOST: dockerHost ?? process.env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST };
}

/**
 * The API version of the engine at `dockerHost` (or, as the docker provider
 * does, DOCKER_HOST, else the default socket). This is the engine's newest
 * API; the provider's client negotiates down to it, so both keep the start
 * interval from 1.44 on. Fails, naming the host and the fix, when no engine
 * answers: the deploy would fail anyway, and guessing would flip the
 * healthcheck (a replacement) later.
 */
export async function engineApiVersion(dockerHost?: string): Promise<string> {
  const env = dockerHostEnv(dockerHost);
  const probe = await probeEngine(env, 60_000);
  if (probe.ok) return probe.apiVersion;
  throw new Error(
    `Could not ask the Docker engine at ${env.DOCKER_HOST} for its API version (docker version: ${probe.reason}). ` +
      "Start the engine (bash scripts/provision.sh on a machine of ours), or point buildkit:dockerHost or DOCKER_HOST at one.",
  );
}
