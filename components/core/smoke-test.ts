/**
 * The deploy-time proof, wherever the daemon runs: the image's own `buildctl`
 * lists the daemon's workers through the daemon's own endpoint, then a real
 * (tiny) build must solve. A target supplies only the runner that starts a
 * shell next to the daemon (`docker exec`, `docker run` on its network,
 * `kubectl exec`); the program, its bounded retries and its summary are here.
 */
import { modeOf, SOCKET, TCP_PORT } from "./buildkitd";

/** How the client reaches the daemon from where the runner starts it. */
export type SmokeTestEndpoint =
  /** The daemon's own unix socket: the runner is a shell inside the daemon's container. */
  | { kind: "socket"; rootless: boolean }
  /**
   * The TCP listener at `host`:`port` with the client certificate, never on a
   * command line: the runner passes it in as BK_CA, BK_CERT, BK_KEY
   * (`material: "environment"`, `docker run -e`), or writes it to the
   * shell's stdin as {@link tlsMaterialLines} (`material: "stdin"`:
   * `kubectl exec` passes no environment).
   */
  | { kind: "tcp"; host: string; port: number; material: "environment" | "stdin" };

/** The endpoint a daemon with these settings is proven through: TCP with mTLS when it listens there. */
export function smokeTestEndpoint(
  settings: { rootless: boolean; tcpPort?: number; tls?: unknown },
  tcpHost: string,
  via: { port: number; material: "environment" | "stdin" } = { port: TCP_PORT, material: "environment" },
): SmokeTestEndpoint {
  return settings.tcpPort !== undefined && settings.tls !== undefined
    ? { kind: "tcp", host: tcpHost, ...via }
    : { kind: "socket", rootless: settings.rootless };
}

/**
 * Shell (run where the runner starts) that prints the client material as three
 * base64 lines, CA, certificate, key, from $BK_CA, $BK_CERT and $BK_KEY: what
 * a `material: "stdin"` client reads. Pipe it into the runner.
 */
export const tlsMaterialLines = 'for pem in "$BK_CA" "$BK_CERT" "$BK_KEY"; do printf "%s" "$pem" | base64 | tr -d "\\n"; echo; done';

/**
 * The program the runner starts with `sh -c '<this>' client workers|build TEXT`,
 * inside the daemon's image (its buildctl). No single quotes: it is passed in them.
 */
export function smokeTestClient(endpoint: SmokeTestEndpoint): string {
  const tcp = endpoint.kind === "tcp";
  const address = tcp
    ? `--addr tcp://${endpoint.host}:${endpoint.port} --tlscacert $d/ca.pem --tlscert $d/cert.pem --tlskey $d/key.pem`
    : `--addr ${SOCKET[modeOf(endpoint)]}`;
  const material =
    endpoint.kind !== "tcp"
      ? []
      : endpoint.material === "environment"
        ? ['printf "%s" "$BK_CA" >$d/ca.pem', 'printf "%s" "$BK_CERT" >$d/cert.pem', 'printf "%s" "$BK_KEY" >$d/key.pem']
        : ["for f in ca cert key; do read -r line; printf \"%s\" \"$line\" | base64 -d >$d/$f.pem; done"];
  return [
    "set -e",
    "d=$(mktemp -d)",
    'trap "rm -rf $d" EXIT',
    ...material,
    'if [ "$1" = workers ]; then exec buildctl ' + address + " debug workers; fi",
    // A Dockerfile with no base image to pull: it exercises the frontend, the solver and the cache.
    'printf "FROM scratch\\nCOPY hello /hello\\n" >$d/Dockerfile',
    'echo "$2" >$d/hello',
    "buildctl " + address + " build --frontend dockerfile.v0 --local context=$d --local dockerfile=$d",
  ].join("; ");
}

/**
 * The whole proof as a POSIX shell script: workers listed within $ATTEMPTS
 * one-second attempts, then a build, then one summary line on stdout (worker,
 * platforms, time: every run changes it, so it says which deploy it proves).
 * `runner` starts a shell next to the daemon and must read the client program
 * from `-c`; $CONTAINER names the daemon in messages.
 */
export function smokeTestScript(runner: string, endpoint: SmokeTestEndpoint): string {
  return [
    "set -eu",
    `client() { ${runner} -c '${smokeTestClient(endpoint)}' client "$@"; }`,
    "attempt=0",
    'until workers=$(client workers 2>&1) && [ "$(printf "%s\\n" "$workers" | wc -l)" -ge 2 ]; do',
    "  attempt=$((attempt + 1))",
    '  if [ "$attempt" -ge "$ATTEMPTS" ]; then',
    '    echo "smoke test: buildkitd in $CONTAINER listed no workers after $ATTEMPTS attempts: $workers" >&2',
    "    exit 1",
    "  fi",
    "  sleep 1",
    "done",
    'if ! out=$(client build "buildkit-stack smoke test $(date +%s)" 2>&1); then',
    '  echo "smoke test: the test build through $CONTAINER failed:" >&2',
    '  echo "$out" >&2',
    "  exit 1",
    "fi",
    // The time says which deploy this proof belongs to: every run changes the summary.
    'printf "%s\\n" "$workers" | awk -v at="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \'NR == 2 { printf "worker %s platforms %s; test build ok at %s\\n", $1, $2, at }\'',
  ].join("\n");
}

/** How many one-second attempts the daemon gets to list its workers. */
export const SMOKE_TEST_ATTEMPTS = 60;
