/**
 * A cluster stack (BuildkitCluster) as drift and doctor see it: where its
 * cluster is and what it declared, read from the stack's state and outputs;
 * what the cluster holds now, read with kubectl (the client users debug with);
 * and what the provider's refresh cannot see — a replica's pod or cache volume
 * gone, not Ready, or not answering with its workers.
 */
import type { EngineEvent } from "@pulumi/pulumi/automation";

import { workersProbe } from "../components/core/buildkitd";
import { replicaPods } from "../components/kubernetes/config";
import {
  CLUSTER_CACHE_VOLUME as CACHE_VOLUME,
  CLUSTER_DAEMON_CONTAINER as DAEMON_CONTAINER,
  CLUSTER_TYPE,
  COMMAND_TYPE,
  STATEFUL_SET_TYPE,
} from "../components/resource-types";
import { CommandResult, runCommand } from "./command";
import { firstLine } from "./options";
import { shellQuote } from "./shell";
import type { RecordedResource } from "./stack-state";
import { urnName } from "./stack-state";

const KUBECTL_TIMEOUT_MS = 30_000;

/** Where a cluster stack's daemons are, from its last deployment. */
export interface ClusterTarget {
  kubeconfig: string;
  context?: string;
  namespace: string;
  statefulSet: string;
  /** The replicas the program declared. */
  replicas: number;
  /** Pod names in ordinal order. */
  pods: string[];
  /** Each replica's smoke test, by pod name: what a heal re-runs for a replica it repaired. */
  smokeTestUrns: Map<string, string>;
  /** The StatefulSet's and the stack's Kubernetes provider's URNs: what a targeted heal names besides what drifted. */
  statefulSetUrn: string;
  providerUrn?: string;
  /** The daemons run rootless (their socket is elsewhere). */
  rootless: boolean;
}

/** Whether the stack's state holds a BuildkitCluster. */
export function isClusterState(state: RecordedResource[]): boolean {
  return state.some((r) => r.type === CLUSTER_TYPE);
}

/** The cluster a stack deployed to, or a sentence saying what is missing. */
export function clusterOf(state: RecordedResource[], outputs: Record<string, unknown>): ClusterTarget | string {
  const sts = state.find((r) => r.type === STATEFUL_SET_TYPE);
  const provider = state.find((r) => r.type === "pulumi:providers:kubernetes");
  const kubeconfig = typeof outputs.kubeconfig === "string" ? outputs.kubeconfig : (provider?.inputs.kubeconfig as string | undefined);
  const metadata = (sts?.outputs.metadata ?? {}) as { name?: string; namespace?: string };
  const spec = (sts?.inputs.spec ?? {}) as { replicas?: number; template?: { spec?: { containers?: { securityContext?: { runAsNonRoot?: boolean } }[] } } };
  if (!sts || !kubeconfig || !metadata.name || !metadata.namespace) return "the stack's state holds no StatefulSet (never deployed, or destroyed)";
  const replicas = Number(spec.replicas ?? 1);
  const pods = replicaPods(metadata.name, replicas);
  const smokeTestUrns = new Map<string, string>();
  for (const pod of pods) {
    const test = state.find((r) => r.type === COMMAND_TYPE && urnName(r.urn).endsWith(`-${pod}-smoke-test`));
    if (test) smokeTestUrns.set(pod, test.urn);
  }
  const context = provider?.inputs.context;
  return {
    kubeconfig,
    context: typeof context === "string" && context ? context : undefined,
    namespace: metadata.namespace,
    statefulSet: metadata.name,
    replicas,
    pods,
    smokeTestUrns,
    statefulSetUrn: sts.urn,
    providerUrn: provider?.urn,
    rootless: spec.template?.spec?.containers?.[0]?.securityContext?.runAsNonRoot === true,
  };
}

/** kubectl against the stack's cluster and namespace. */
export function kubectl(cluster: ClusterTarget, args: string[]): CommandResult {
  return runCommand("kubectl", [...contextArgs(cluster), "-n", cluster.namespace, ...args], {
    env: { ...process.env, KUBECONFIG: cluster.kubeconfig },
    timeoutMs: KUBECTL_TIMEOUT_MS,
  });
}

function contextArgs(cluster: ClusterTarget): string[] {
  return cluster.context ? ["--context", cluster.context] : [];
}

/** How a user runs the same kubectl by hand: one pasteable line. */
export function kubectlLine(cluster: ClusterTarget, args: string[]): string {
  return ["KUBECONFIG=" + shellQuote(cluster.kubeconfig), "kubectl", ...contextArgs(cluster), "-n", shellQuote(cluster.namespace), ...args.map(shellQuote)].join(" ");
}

/** Whether the API server answers; the reason when it does not. */
export function apiServerProblem(cluster: ClusterTarget): string | undefined {
  const ready = kubectl(cluster, ["get", "--raw", "/readyz"]);
  return ready.code === 0 ? undefined : firstLine(ready.stderr || ready.stdout) || `kubectl exited ${ready.code}`;
}

interface PodStatus {
  metadata: { name: string; deletionTimestamp?: string };
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}
interface ClaimStatus {
  metadata: { name: string; deletionTimestamp?: string };
  status?: { phase?: string };
}

/** What one replica looks like now. */
export interface ReplicaState {
  pod: string;
  claim: string;
  podFound: boolean;
  ready: boolean;
  podPhase?: string;
  /** Absent, or being deleted (a PVC in use stays Terminating until its pod goes). */
  claimGone: boolean;
  claimPhase?: string;
}

/** Every declared replica's pod and cache volume, as the API server reports them now. */
export function replicaStates(cluster: ClusterTarget): ReplicaState[] {
  const pods = listOf<PodStatus>(cluster, "pods");
  const claims = listOf<ClaimStatus>(cluster, "pvc");
  return cluster.pods.map((pod) => {
    const found = pods.find((p) => p.metadata.name === pod);
    const claimName = `${CACHE_VOLUME}-${pod}`;
    const claim = claims.find((c) => c.metadata.name === claimName);
    return {
      pod,
      claim: claimName,
      podFound: found !== undefined && !found.metadata.deletionTimestamp,
      ready: found?.status?.conditions?.find((c) => c.type === "Ready")?.status === "True",
      podPhase: found?.status?.phase,
      claimGone: !claim || claim.metadata.deletionTimestamp !== undefined,
      claimPhase: claim?.status?.phase,
    };
  });
}

function listOf<T>(cluster: ClusterTarget, kind: string): T[] {
  const listed = kubectl(cluster, ["get", kind, "-o", "json"]);
  if (listed.code !== 0) throw new Error(`kubectl get ${kind} -n ${cluster.namespace} failed: ${firstLine(listed.stderr)}`);
  return (JSON.parse(listed.stdout) as { items: T[] }).items;
}

/** `buildctl debug workers` inside the replica, as its readiness probe runs it: the worker lines, or why not. */
export function replicaWorkers(cluster: ClusterTarget, pod: string): { workers: string[] } | { problem: string } {
  const listed = kubectl(cluster, ["exec", pod, "-c", DAEMON_CONTAINER, "--", ...workersProbe(cluster.rootless ? "rootless" : "privileged")]);
  if (listed.code !== 0) return { problem: firstLine(listed.stderr) || `exited ${listed.code}` };
  const workers = listed.stdout.trim().split("\n").slice(1).filter(Boolean);
  return workers.length > 0 ? { workers } : { problem: "buildkitd lists no workers" };
}

/** One thing changed out of band on the cluster. */
export interface ClusterDrift {
  /** What drifted, as a person names it: "StatefulSet buildkitd", "replica buildkitd-1". */
  what: string;
  change: string;
  /** What `--heal` does about it. */
  action: string;
  /** The replica whose pod the heal deletes first (its cache volume is already gone), if any. */
  recreatePod?: string;
  /** The object's URN, for what the preview saw drift in: what a heal targets. */
  urn?: string;
  /** Kubernetes kind, for what the preview saw drift in. */
  kind?: string;
}

/** Kubernetes kinds by type token, for the report. */
const KIND: Record<string, string> = {
  "kubernetes:core/v1:Namespace": "Namespace",
  "kubernetes:core/v1:ConfigMap": "ConfigMap",
  "kubernetes:core/v1:Secret": "Secret",
  "kubernetes:core/v1:Service": "Service",
  [STATEFUL_SET_TYPE]: "StatefulSet",
  "kubernetes:policy/v1:PodDisruptionBudget": "PodDisruptionBudget",
};

/** Auto-named objects the pod template names: replacing one rolls the pods (buildkitd reads them only at start). */
const ROLLS_PODS = ["ConfigMap", "Secret"];

/**
 * What a `preview --refresh` found changed on the cluster's objects: a deleted
 * object is planned as a create, a changed one as an update or a replacement.
 * The proofs' own steps follow from those and are not drift of their own.
 */
export function refreshedDrift(events: EngineEvent[], state: RecordedResource[]): ClusterDrift[] {
  const drifts = new Map<string, ClusterDrift>();
  for (const event of events) {
    const step = event.resourcePreEvent?.metadata;
    const kind = step && KIND[step.type];
    if (!step || !kind || step.op === "same" || step.op === "refresh" || step.op === "read") continue;
    const recorded = state.find((r) => r.urn === step.urn);
    const objectName = ((recorded?.outputs.metadata ?? {}) as { name?: string }).name ?? urnName(step.urn);
    const what = `${kind} ${objectName}`;
    const keys = [...new Set([...(step.diffs ?? []), ...(step.keys ?? []), ...Object.keys(step.detailedDiff ?? {}).map((p) => p.split(/[.[]/)[0])])].sort();
    if (step.op === "create") {
      drifts.set(what, { what, change: "deleted out of band", action: "up creates it again", urn: step.urn, kind });
    } else if (/replace/.test(step.op)) {
      drifts.set(what, {
        what,
        change: `changed out of band${keys.length ? ` (${keys.join(", ")})` : ""}`,
        action: "up replaces it with the program's" + (ROLLS_PODS.includes(kind) ? "; the pods roll" : ""),
        urn: step.urn,
        kind,
      });
    } else if (step.op === "update" && !drifts.has(what)) {
      drifts.set(what, { what, change: `changed out of band${keys.length ? ` (${keys.join(", ")})` : ""}`, action: "up puts the program's values back", urn: step.urn, kind });
    }
  }
  return [...drifts.values()];
}

/**
 * What a heal's `pulumi up` may touch, as `--target`: what drifted, and what
 * must follow it — the StatefulSet when what it names (the namespace, an
 * auto-named ConfigMap or Secret) comes back under a new name, and every
 * replica's proof (one whose daemon did not change stays as it is). Named one
 * by one, not with `--target-dependents` (see the Docker heal, drift-report.ts).
 * A program change not yet deployed elsewhere is left to `npm run up`.
 */
export function healTargets(cluster: ClusterTarget, drifts: ClusterDrift[]): string[] {
  const objects = drifts.flatMap((d) => (d.urn ? [d.urn] : []));
  const renamesWhatThePodsUse = drifts.some((d) => d.kind !== undefined && ["Namespace", ...ROLLS_PODS].includes(d.kind));
  const recreatesPods = drifts.some((d) => d.recreatePod);
  return [
    ...new Set([
      ...(cluster.providerUrn ? [cluster.providerUrn] : []),
      ...objects,
      ...(renamesWhatThePodsUse ? [cluster.statefulSetUrn] : []),
      ...(objects.length > 0 || recreatesPods ? cluster.smokeTestUrns.values() : []),
    ]),
  ];
}

/** What the provider cannot see: a replica whose cache volume was deleted out of band. */
export function replicaDrift(replicas: ReplicaState[]): ClusterDrift[] {
  return replicas
    .filter((r) => r.claimGone)
    .map((r) => ({
      what: `replica ${r.pod}`,
      change: `its cache volume ${r.claim} was deleted out of band${r.podFound ? " (Terminating while the pod still uses it)" : ""}`,
      action: "the pod is deleted so the StatefulSet recreates it with a new, empty cache volume, and the replica is proven again",
      recreatePod: r.pod,
    }));
}
