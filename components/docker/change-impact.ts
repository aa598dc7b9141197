/**
 * What changing each `buildkit:*` key does to a deployed stack: the operation
 * `pulumi preview` plans for every resource, whether the build cache survives,
 * and why. One row per key of {@link DOCKER_KEYS} (a unit test fails when a key
 * has none). The README's "What each change does" table is rendered from these
 * rows, and tests/integration/changes.test.ts applies them to a live stack and
 * compares what the engine plans and does with them.
 */
import type { DockerKey } from "./config";

/** The planned operation for one resource; "—" when preview leaves it alone. */
export type PlannedOp = "—" | "update" | "replace" | "create" | "delete";

/** The resources of a stack, as the table's columns name them. */
export const RESOURCES = ["cacheVolume", "network", "image", "daemonContainer", "smokeTest", "cacheGuard"] as const;
export type StackResource = (typeof RESOURCES)[number];

/** How the row was established on the real engine. */
export type Proof =
  /** Applied on a live stack: preview, up, marker, smoke test, clean re-preview. */
  | "applied"
  /** Previewed on a live stack only (compared with this row), not applied; `why` says why. */
  | "previewed"
  /** Not exercised on the engine: read from the provider's schema; `why` says why. */
  | "reasoned";

export interface ChangeImpact {
  /** The change the matrix test makes, in words. */
  change: string;
  /** Planned operation per resource; resources not named are left alone. */
  ops: Partial<Record<StackResource, PlannedOp>>;
  /**
   * The container properties whose difference the provider reports for this
   * key (for grouped changes: proof that this key, not a neighbour, causes the op).
   */
  containerProperties?: string[];
  /** Does a marker file in the cache volume survive the change? */
  cacheKept: boolean;
  proof: Proof;
  /** Why, in a sentence a reviewer reads. */
  why: string;
}

const replaceDaemon = { daemonContainer: "replace", smokeTest: "replace" } as const;
const updateDaemon = { daemonContainer: "update", smokeTest: "replace" } as const;
const CONFIG_FILE = "the rendered buildkitd.toml changes, and buildkitd reads it only at start";

export const CHANGE_IMPACT: Record<DockerKey, ChangeImpact> = {
  containerName: {
    change: "rename the container",
    ops: replaceDaemon,
    containerProperties: ["name"],
    cacheKept: true,
    proof: "applied",
    why: "docker cannot rename in place; the volume and network carry no container name, so they stay",
  },
  networkName: {
    change: "rename the network",
    ops: { network: "replace", ...replaceDaemon },
    containerProperties: ["networkMode", "networksAdvanced"],
    cacheKept: true,
    proof: "applied",
    why: "a network is identified by its name; the container is re-attached to the new one",
  },
  cacheVolumeName: {
    change: "rename the cache volume",
    ops: { cacheVolume: "replace", ...replaceDaemon, cacheGuard: "update" },
    containerProperties: ["volumes"],
    cacheKept: false,
    proof: "applied",
    why: "the name is the cache's identity: the new name starts empty and the old volume is deleted (refused while protected)",
  },
  image: {
    change: "another tag (v0.32.2 → v0.32.1)",
    ops: { image: "replace", ...replaceDaemon },
    containerProperties: ["image"],
    cacheKept: true,
    proof: "applied",
    why: "a new image means a new container on the same volume; buildkitd drains for stopGracePeriod first",
  },
  rootless: {
    change: "switch to rootless (with allowPrivileged false)",
    ops: { cacheVolume: "replace", image: "replace", ...replaceDaemon, cacheGuard: "update" },
    containerProperties: ["image", "privileged", "securityOpts", "volumes", "command"],
    cacheKept: false,
    proof: "applied",
    why: "a root daemon's cache is unusable by the rootless one (uid 1000, own user namespace), and the other way round: the cache is replaced by a fresh one. Where the last deploy protected the cache (Pulumi then keeps it on delete, and docker would hand the same volume back), up refuses before anything is touched, also together with cacheProtected false, saying how: unprotect and up first, then switch. The first up with this version records who owns the cache: switch in a later one",
  },
  allowPrivileged: {
    change: "false, together with rootless",
    ops: replaceDaemon,
    containerProperties: ["labels"],
    cacheKept: true,
    proof: "applied",
    why: "only the container's policy label changes (false without rootless is refused by config validation)",
  },
  production: {
    change: "true, with allowPrivileged true and a cache ceiling",
    ops: replaceDaemon,
    containerProperties: ["labels"],
    cacheKept: true,
    proof: "applied",
    why: "the container's production label changes; its defaults (restart policy, protected cache, pinned image) apply unless set (a protected cache by default also updates the cache guard, as cacheProtected does; set explicitly here)",
  },
  memory: {
    change: "1g → 2g",
    ops: updateDaemon,
    containerProperties: ["memory", "memorySwap"],
    cacheKept: true,
    proof: "applied",
    why: "docker updates the limit of the running container; the smoke test re-runs",
  },
  cpus: {
    change: "1 → 2",
    ops: replaceDaemon,
    containerProperties: ["cpus"],
    cacheKept: true,
    proof: "applied",
    why: "the provider cannot update CPUs in place",
  },
  shmSize: {
    change: "unset → 128m",
    ops: replaceDaemon,
    containerProperties: ["shmSize"],
    cacheKept: true,
    proof: "applied",
    why: "shm size is fixed at container creation",
  },
  restartPolicy: {
    change: "no → on-failure",
    ops: updateDaemon,
    containerProperties: ["restart"],
    cacheKept: true,
    proof: "applied",
    why: "docker updates the restart policy in place",
  },
  restartMaxRetries: {
    change: "unset → 3 (with on-failure)",
    ops: updateDaemon,
    containerProperties: ["maxRetryCount"],
    cacheKept: true,
    proof: "applied",
    why: "docker updates it in place",
  },
  logMaxSize: {
    change: "10m → 20m",
    ops: replaceDaemon,
    containerProperties: ["logOpts"],
    cacheKept: true,
    proof: "applied",
    why: "log options are fixed at container creation",
  },
  logMaxFiles: {
    change: "3 → 4",
    ops: replaceDaemon,
    containerProperties: ["logOpts"],
    cacheKept: true,
    proof: "applied",
    why: "log options are fixed at container creation",
  },
  labels: {
    change: "add a label",
    ops: replaceDaemon,
    containerProperties: ["labels"],
    cacheKept: true,
    proof: "applied",
    why: "user labels go on the container only; the volume and network labels never change (and label changes on them are ignored)",
  },
  cacheProtected: {
    change: "false → true",
    ops: { cacheGuard: "update" },
    cacheKept: true,
    proof: "applied",
    why: "protection lives in Pulumi's state, not on the volume; the cache guard, a local step, records it (a later mode switch of a kept cache is refused)",
  },
  cacheReservedSpace: {
    change: "unset → 64m",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "applied",
    why: CONFIG_FILE,
  },
  cacheMaxUsedSpace: {
    change: "unset → 2g",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "applied",
    why: CONFIG_FILE,
  },
  cacheMinFreeSpace: {
    change: "unset → 1g",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "applied",
    why: CONFIG_FILE,
  },
  maxParallelism: {
    change: "unset → 3",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "applied",
    why: CONFIG_FILE,
  },
  registryMirrors: {
    change: "add a second mirror",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "applied",
    why: CONFIG_FILE,
  },
  extraHosts: {
    change: "add a HOST:IP entry",
    ops: replaceDaemon,
    containerProperties: ["hosts"],
    cacheKept: true,
    proof: "applied",
    why: "/etc/hosts entries are fixed at container creation",
  },
  debug: {
    change: "false → true",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "applied",
    why: CONFIG_FILE,
  },
  platforms: {
    change: "unset → [linux/amd64, linux/arm64]",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "applied",
    why: CONFIG_FILE,
  },
  tcpPort: {
    change: "publish a TLS listener (with tlsCa, tlsCert, tlsKey)",
    ops: replaceDaemon,
    containerProperties: ["ports", "command", "uploads"],
    cacheKept: true,
    proof: "previewed",
    why: "ports, daemon flags and certificates are fixed at creation; previewed with throwaway certificates (the TLS deploy itself is proven in lifecycle.test.ts)",
  },
  tcpAddress: {
    change: "another host address for the listener",
    ops: replaceDaemon,
    containerProperties: ["ports"],
    cacheKept: true,
    proof: "previewed",
    why: "published ports are fixed at creation",
  },
  tlsCa: {
    change: "new TLS material (all three)",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "previewed",
    why: "certificates are uploaded at creation and read by buildkitd only at start",
  },
  tlsCert: {
    change: "new TLS material (all three)",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "previewed",
    why: "certificates are uploaded at creation and read by buildkitd only at start",
  },
  tlsKey: {
    change: "new TLS material (all three)",
    ops: replaceDaemon,
    containerProperties: ["uploads"],
    cacheKept: true,
    proof: "previewed",
    why: "certificates are uploaded at creation and read by buildkitd only at start",
  },
  tlsClientCert: {
    change: "a client certificate for the smoke test",
    ops: { smokeTest: "update" },
    cacheKept: true,
    proof: "reasoned",
    why: "only the smoke test's environment changes: the daemon is untouched and the smoke test runs again; needs a deployed TLS stack, not exercised by the matrix",
  },
  tlsClientKey: {
    change: "a client certificate for the smoke test",
    ops: { smokeTest: "update" },
    cacheKept: true,
    proof: "reasoned",
    why: "only the smoke test's environment changes: the daemon is untouched and the smoke test runs again; needs a deployed TLS stack, not exercised by the matrix",
  },
  smokeTest: {
    change: "true → false (and back)",
    ops: { smokeTest: "delete" },
    cacheKept: true,
    proof: "applied",
    why: "only the proof is removed (turned back on, it is created and runs)",
  },
  dockerHost: {
    change: "another Docker endpoint",
    ops: { smokeTest: "update", cacheGuard: "update" },
    cacheKept: true,
    proof: "previewed",
    why: "the provider does not treat a new host as a replacement: nothing is planned but the DOCKER_HOST of the smoke test and the cache guard, while the state still describes objects on the old engine. Moving engines is a new stack (destroy here, deploy there), not a key change. Previewed with the same engine under another spelling, never applied",
  },
  requirePinnedImage: {
    change: "false → true",
    ops: {},
    cacheKept: true,
    proof: "applied",
    why: "a rule config validation enforces; nothing deployed changes",
  },
  stopGracePeriod: {
    change: "10m → 30s",
    ops: updateDaemon,
    containerProperties: ["destroyGraceSeconds"],
    cacheKept: true,
    proof: "applied",
    why: "only how long a future stop waits; the provider updates it in state",
  },
  tagRegistry: {
    change: "unset → the engine's mirror (http://127.0.0.1:5000)",
    ops: { image: "replace", ...replaceDaemon },
    containerProperties: ["image"],
    cacheKept: true,
    proof: "applied",
    why: "the image is pulled, and the container run, by the digest the tag points at now (repository@sha256:…) instead of the id the tag gave when first pulled: one replacement when turned on or off. From then on a new image behind the tag is a replacement in preview and drift, and up rolls to it (tests/integration/same-tag.test.ts)",
  },
};

const COLUMN_TITLES: Record<StackResource, string> = {
  cacheVolume: "cache volume",
  network: "network",
  image: "image",
  daemonContainer: "container",
  smokeTest: "smoke test",
  cacheGuard: "cache guard",
};

/** The README's "What each change does" table, rendered from {@link CHANGE_IMPACT}. */
export function renderChangeImpactTable(): string {
  const header = ["key", "change", ...RESOURCES.map((r) => COLUMN_TITLES[r]), "cache kept", "proven", "why"];
  const rows = Object.entries(CHANGE_IMPACT).map(([key, row]) => [
    `\`${key}\``,
    row.change,
    ...RESOURCES.map((r) => row.ops[r] ?? "—"),
    row.cacheKept ? "yes" : "**no**",
    row.proof,
    row.why,
  ]);
  return [header, header.map(() => "---"), ...rows].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}
