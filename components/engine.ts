/**
 * What the target Docker engine supports, asked of the engine itself: the
 * program learns the API version of the host it deploys to, so the user never
 * has to say which Docker they run.
 */
import { execFile } from "child_process";

/** Docker's default socket: where the docker provider goes when neither `host` nor DOCKER_HOST is set. */
const DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock";

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

/**
 * The API version of the engine at `dockerHost` (or, as the docker provider
 * does, DOCKER_HOST, else the default socket), from `docker version`. This is
 * the engine's newest API; the provider's client (Docker 28.5's, API 1.51)
 * negotiates down to it, so both keep the start interval from 1.44 on.
 * Fails, naming the host and the fix, when no engine answers: the deploy would
 * fail anyway, and guessing would flip the healthcheck (a replacement) later.
 */
export function engineApiVersion(dockerHost?: string): Promise<string> {
  const host = dockerHost ?? process.env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST;
  return new Promise((resolve, reject) => {
    execFile(
      "docker",
      ["version", "--format", "{{.Server.APIVersion}}"],
      { env: { ...process.env, DOCKER_HOST: host }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const version = stdout.trim();
        if (error || !/^\d+\.\d+$/.test(version)) {
          reject(
            new Error(
              `Could not ask the Docker engine at ${host} for its API version (docker version: ${(stderr || String(error ?? stdout)).trim()}). ` +
                "Start the engine (bash scripts/provision.sh on a machine of ours), or point buildkit:dockerHost or DOCKER_HOST at one.",
            ),
          );
        } else {
          resolve(version);
        }
      },
    );
  });
}
