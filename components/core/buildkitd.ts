/**
 * The daemon itself, wherever it runs: its image, where it keeps its state,
 * the socket and flags it serves on, and what proves it answers. A Docker
 * container and a Kubernetes pod run exactly this.
 */
import type { TlsSettings } from "./tls";

/** The BuildKit release this project is built and tested against. */
export const DEFAULT_BUILDKIT_VERSION = "v0.32.2";
export const DEFAULT_IMAGE = `moby/buildkit:${DEFAULT_BUILDKIT_VERSION}`;
export const DEFAULT_ROOTLESS_IMAGE = `moby/buildkit:${DEFAULT_BUILDKIT_VERSION}-rootless`;

/** The two images BuildKit ships: privileged (root, `--privileged`) and rootless (uid 1000 behind rootlesskit). */
export type DaemonMode = "privileged" | "rootless";

export const modeOf = (settings: { rootless: boolean }): DaemonMode => (settings.rootless ? "rootless" : "privileged");

/** Where buildkitd keeps its state (the build cache): privileged and rootless images differ. */
export const STATE_PATH: Record<DaemonMode, string> = { privileged: "/var/lib/buildkit", rootless: "/home/user/.local/share/buildkit" };

/** The daemon's own unix socket, where `buildctl` inside the image looks by default. */
export const SOCKET: Record<DaemonMode, string> = {
  privileged: "unix:///run/buildkit/buildkitd.sock",
  rootless: "unix:///run/user/1000/buildkit/buildkitd.sock",
};

export const CONFIG_FILE = "/etc/buildkit/buildkitd.toml";
export const TLS_DIR = "/etc/buildkit/tls";
/** The files of the listener's TLS material under {@link TLS_DIR}. */
export const TLS_FILES = { ca: "ca.pem", cert: "cert.pem", key: "key.pem" } as const;
/**
 * buildkitd's conventional TCP port inside a Docker container (the host
 * publishes `tcpPort` onto it). A pod listens on `tcpPort` itself: clients
 * dial the pod's address directly through a headless Service.
 */
export const TCP_PORT = 1234;

/** What decides the daemon's command line. */
export interface DaemonCommandSettings {
  rootless: boolean;
  tcpPort?: number;
  tls?: TlsSettings;
}

/**
 * buildkitd's arguments: the rendered config, and with a TCP listener both the
 * unix socket (for the probes and `buildctl` inside the image) and
 * `tcp://0.0.0.0:<listenPort>` with mTLS.
 */
export function daemonCommand(settings: DaemonCommandSettings, listenPort: number = TCP_PORT): string[] {
  const mode = modeOf(settings);
  const tcp = settings.tcpPort !== undefined ? `tcp://0.0.0.0:${listenPort}` : undefined;
  return [
    "--config",
    CONFIG_FILE,
    // With a TCP listener the unix socket stays, for the healthcheck and `docker exec buildctl`.
    ...(tcp ? ["--addr", SOCKET[mode], "--addr", tcp] : []),
    ...(tcp && settings.tls
      ? ["--tlscacert", `${TLS_DIR}/${TLS_FILES.ca}`, "--tlscert", `${TLS_DIR}/${TLS_FILES.cert}`, "--tlskey", `${TLS_DIR}/${TLS_FILES.key}`]
      : []),
    // Rootless has no privileges to build a PID namespace sandbox per step.
    ...(settings.rootless ? ["--oci-worker-no-process-sandbox"] : []),
  ];
}

/**
 * "Up" means buildkitd lists its workers, not that the process exists: the
 * command a healthcheck, readiness or startup probe runs inside the daemon.
 */
export function workersProbe(mode: DaemonMode): string[] {
  return ["buildctl", "--addr", SOCKET[mode], "debug", "workers"];
}
