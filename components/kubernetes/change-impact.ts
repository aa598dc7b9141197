/**
 * What changing each `buildkit:*` key does to a deployed cluster stack: the
 * operation `pulumi preview` plans for the ConfigMap, the TLS Secret, the
 * StatefulSet and the replicas' proofs, what happens to the pods and to each replica's cache
 * volume, and why. One row per key of {@link CLUSTER_KEYS} (a unit test fails
 * when a key has none). docs/scale-out.md's "What each change does on a
 * cluster" table is rendered from these rows, and
 * tests/integration/cluster-changes.test.ts applies the "applied" ones to a
 * live stack on the local cluster and compares what is planned and done.
 */
import type { ClusterKey } from "./config";

/** The planned operation for one resource kind; "—" when preview leaves it alone. */
export type PlannedOp = "—" | "update" | "replace" | "create" | "delete";

/** The resources a change plans for, as the table's columns name them. */
export const CLUSTER_RESOURCES = ["configMap", "secret", "statefulSet", "proofs"] as const;
export type ClusterResource = (typeof CLUSTER_RESOURCES)[number];

/** What happens to the pods. */
export type PodEffect = "none" | "rolled one at a time" | "all replaced at once" | "one added" | "one removed";

/** What happens to each replica's cache volume. */
export type CacheEffect = "kept" | "kept if protected (at its old size)" | "new, empty";

export interface ClusterChangeImpact {
  /** The change the matrix test makes (or a reviewer imagines), in words. */
  change: string;
  ops: Partial<Record<ClusterResource, PlannedOp>>;
  pods: PodEffect;
  cache: CacheEffect;
  /** applied: preview, up and the effects checked on the local cluster; reasoned: not exercised, `why` says so. */
  proof: "applied" | "reasoned";
  why: string;
}

const toml = (change: string, proof: "applied" | "reasoned"): ClusterChangeImpact => ({
  change,
  ops: { configMap: "replace", statefulSet: "update", proofs: "replace" },
  pods: "rolled one at a time",
  cache: "kept",
  proof,
  why: "a new buildkitd.toml is a new ConfigMap the pod template names: each pod is replaced, drained first, on its own volume",
});
const template = (change: string, proof: "applied" | "reasoned", why: string): ClusterChangeImpact => ({
  change,
  ops: { statefulSet: "update", proofs: "replace" },
  pods: "rolled one at a time",
  cache: "kept",
  proof,
  why,
});
const checkOnly = (change: string): ClusterChangeImpact => ({
  change,
  ops: {},
  pods: "none",
  cache: "kept",
  proof: "reasoned",
  why: "read by the config rules only: nothing declared changes",
});
const volumeTemplate = (change: string, proof: "applied" | "reasoned"): ClusterChangeImpact => ({
  change,
  ops: { statefulSet: "replace", proofs: "replace" },
  pods: "all replaced at once",
  cache: "kept if protected (at its old size)",
  proof,
  why:
    "Kubernetes does not let a StatefulSet's volumeClaimTemplates change: it is deleted and created again (every replica down together); " +
    "a protected cache's PVCs are retained and reused as they are (resize them with your StorageClass's volume expansion), others are deleted and created new",
});

const serverTls = (): ClusterChangeImpact => ({
  change: "new server TLS material (rotation)",
  ops: { secret: "replace", statefulSet: "update", proofs: "replace" },
  pods: "rolled one at a time",
  cache: "kept",
  proof: "reasoned",
  why:
    "buildkitd reads its certificates only at start: a new Secret (auto-named) the pod template names rolls each pod, drained first, on its own volume " +
    "(tests/integration/cluster-tls.test.ts rotates all three and checks preview against this row)",
});
const clientTls = (): ClusterChangeImpact => ({
  change: "a new client certificate for the proofs",
  ops: { proofs: "update" },
  pods: "none",
  cache: "kept",
  proof: "reasoned",
  why: "only the proofs' environment changes: the daemons are untouched and every proof runs again with the new pair",
});

export const CLUSTER_CHANGE_IMPACT: Record<Exclude<ClusterKey, "tagRegistry">, ClusterChangeImpact> = {
  kubeconfig: {
    change: "another kubeconfig file",
    ops: {},
    pods: "none",
    cache: "kept",
    proof: "reasoned",
    why: "the provider reads the file by path: a file for the same cluster changes no object; a file for another cluster moves the stack there — preview shows what the provider plans before anything changes",
  },
  kubeContext: {
    change: "another context",
    ops: {},
    pods: "none",
    cache: "kept",
    proof: "reasoned",
    why: "as kubeconfig: the same cluster under another context changes no object; another cluster moves the stack — read the preview",
  },
  namespace: {
    change: "another namespace",
    ops: { configMap: "replace", statefulSet: "replace", proofs: "replace" },
    pods: "all replaced at once",
    cache: "new, empty",
    proof: "reasoned",
    why: "every object lives in the namespace: all are created in the new one and the old namespace, with its volumes, is deleted",
  },
  name: {
    change: "another StatefulSet name",
    ops: { statefulSet: "replace", proofs: "replace" },
    pods: "all replaced at once",
    cache: "new, empty",
    proof: "reasoned",
    why: "pod and PVC names derive from it: the new StatefulSet's pods get new volumes (the Service and disruption budget are renamed too)",
  },
  replicas: {
    change: "2 → 3 replicas",
    ops: { statefulSet: "update", proofs: "create" },
    pods: "one added",
    cache: "kept",
    proof: "applied",
    why: "the new replica gets its own new volume and its own proof; the others are not touched (scaling down keeps the removed replica's volume for when it comes back)",
  },
  cacheSize: volumeTemplate("2g → 3g per replica", "applied"),
  storageClass: {
    ...volumeTemplate("another StorageClass", "reasoned"),
    why:
      volumeTemplate("another StorageClass", "reasoned").why +
      "; claims a protected cache kept from a class that does not exist never bound and hold nothing: each replica's proof deletes its claim with its pod, " +
      "so the corrected up finishes (tests/integration/cluster-faults.test.ts)",
  },
  image: template("v0.32.1 → v0.32.2", "applied", "a new image in the pod template: each pod is replaced, drained first, on its own volume (tests/integration/cluster-roll.test.ts)"),
  rootless: {
    change: "false → true, with another name (alone: refused)",
    ops: { statefulSet: "replace", proofs: "replace" },
    pods: "all replaced at once",
    cache: "new, empty",
    proof: "reasoned",
    why:
      "alone, the StatefulSet's update would keep each replica's volume, and a root daemon's state is not usable by the rootless one (nor the " +
      "other way round): preview and up refuse it while the StatefulSet of that name runs the other mode (tests/integration/cluster-rootless.test.ts); " +
      "with another name, a new StatefulSet's replicas start on new volumes, as for name",
  },
  allowPrivileged: checkOnly("either way (the daemon runs privileged)"),
  production: {
    change: "false → true",
    ops: { statefulSet: "update" },
    pods: "none",
    cache: "kept",
    proof: "reasoned",
    why: "production rules apply, and cacheProtected defaults to true: the StatefulSet's volume retention policy changes, its pods do not",
  },
  memory: template("1g → 1536m", "applied", "requests and limits are in the pod template"),
  cpus: template("0.5 → 0.4", "applied", "requests and limits are in the pod template"),
  cacheProtected: {
    change: "false → true",
    ops: { statefulSet: "update" },
    pods: "none",
    cache: "kept",
    proof: "applied",
    why: "only the StatefulSet's PVC retention on delete changes (Retain): no pod is replaced",
  },
  cacheReservedSpace: toml("another size", "reasoned"),
  cacheMaxUsedSpace: toml("another size", "reasoned"),
  cacheMinFreeSpace: toml("set it", "applied"),
  maxParallelism: toml("2 → 3", "applied"),
  registryMirrors: toml("another list", "reasoned"),
  debug: toml("false → true", "applied"),
  platforms: toml("another list", "reasoned"),
  smokeTest: {
    change: "true → false",
    ops: { proofs: "delete" },
    pods: "none",
    cache: "kept",
    proof: "reasoned",
    why: "the proofs are removed; the daemons are not touched",
  },
  requirePinnedImage: checkOnly("either way"),
  stopGracePeriod: template("10m → 5m", "applied", "terminationGracePeriodSeconds is in the pod template"),
  tcpPort: template(
    "1234 → 1235",
    "reasoned",
    "each pod listens on the port itself (the headless Service lists it, and clients dial the pod): it is in the pod template; with the TLS keys set first, a Secret is created too",
  ),
  tlsCa: serverTls(),
  tlsCert: serverTls(),
  tlsKey: serverTls(),
  tlsClientCert: clientTls(),
  tlsClientKey: clientTls(),
};

const COLUMN_TITLES: Record<ClusterResource, string> = { configMap: "ConfigMap", secret: "TLS Secret", statefulSet: "StatefulSet", proofs: "proofs" };

/** docs/scale-out.md's "What each change does on a cluster" table, rendered from {@link CLUSTER_CHANGE_IMPACT}. */
export function renderClusterChangeImpactTable(): string {
  const header = ["key", "change", ...CLUSTER_RESOURCES.map((r) => COLUMN_TITLES[r]), "pods", "each cache", "proven", "why"];
  const rows = Object.entries(CLUSTER_CHANGE_IMPACT).map(([key, row]) => [
    `\`${key}\``,
    row.change,
    ...CLUSTER_RESOURCES.map((r) => row.ops[r] ?? "—"),
    row.pods,
    row.cache === "kept" ? "kept" : `**${row.cache}**`,
    row.proof,
    row.why,
  ]);
  return [header, header.map(() => "---"), ...rows].map((cells) => `| ${cells.join(" | ")} |`).join("\n");
}
