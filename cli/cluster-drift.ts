/**
 * `npm run drift` on a cluster stack (BuildkitCluster): the preview --refresh
 * names each object an operator changed or deleted out of band (a scaled
 * StatefulSet, an edited ConfigMap, a deleted Service…), kubectl adds what
 * the provider cannot see (a replica's cache volume deleted), and `--heal`
 * puts the program back: the pod of a replica whose volume is gone is
 * deleted so the StatefulSet recreates both, then one `pulumi up --refresh`
 * under the policy gate, targeted at what drifted and what follows it (which
 * re-proves the replicas) — and the check runs again.
 */
import type { EngineEvent, Stack } from "@pulumi/pulumi/automation";

import { apiServerProblem, ClusterDrift, ClusterTarget, clusterOf, healTargets, kubectl, kubectlLine, refreshedDrift, replicaDrift, replicaStates } from "./cluster-inspect";
import { EXIT_CLEAN, EXIT_DRIFT, reportedError } from "./drift-report";
import { firstLine, repoRoot, UsageError } from "./options";
import { policyGate, policyGateFlags } from "./policy-gate";
import { pulumiCommand, shellQuote } from "./shell";
import { readOutputs, readState, RecordedResource } from "./stack-state";

/** A preview --refresh of the whole stack, already started or started on demand. */
export type Previewer = () => Promise<EngineEvent[]>;

/** Checks (and with `healing`, heals) a cluster stack; the exit code drift documents. */
export async function clusterDriftMain(stack: Stack, state: RecordedResource[], workDir: string, healing: boolean, preview: Previewer, previewAgain: Previewer): Promise<number> {
  const cluster = clusterOf(state, await readOutputs(stack));
  if (typeof cluster === "string") throw new UsageError(`stack ${stack.name}: ${cluster}`);
  const found = await check(cluster, state, preview);
  if (found.length === 0) {
    printClean(stack.name, cluster);
    return EXIT_CLEAN;
  }
  printDrift(stack.name, cluster, found, workDir);
  if (!healing) return EXIT_DRIFT;

  await heal(stack, cluster, found);
  const after = await check(cluster, await readState(stack), previewAgain);
  if (after.length === 0) {
    console.log(`healed: stack ${stack.name}`);
    printClean(stack.name, cluster);
    return EXIT_CLEAN;
  }
  console.log("still drifting after --heal:");
  printDrift(stack.name, cluster, after, workDir);
  return EXIT_DRIFT;
}

async function check(cluster: ClusterTarget, state: RecordedResource[], preview: Previewer): Promise<ClusterDrift[]> {
  const unreachable = apiServerProblem(cluster);
  if (unreachable) {
    throw new UsageError(`the cluster's API server does not answer (${unreachable}); start it (the local one: sudo bash scripts/provision/cluster.sh up) or check buildkit:kubeconfig`);
  }
  const [events, replicas] = await Promise.all([preview(), Promise.resolve().then(() => replicaStates(cluster))]);
  return [...refreshedDrift(events, state), ...replicaDrift(replicas)];
}

function where(cluster: ClusterTarget): string {
  return `namespace ${cluster.namespace}, StatefulSet ${cluster.statefulSet} of ${cluster.replicas}`;
}

function printClean(stackName: string, cluster: ClusterTarget): void {
  console.log(`no drift: stack ${stackName} matches the cluster (${where(cluster)}; refresh + preview show no changes, every replica's cache volume present)`);
}

function printDrift(stackName: string, cluster: ClusterTarget, drifts: ClusterDrift[], workDir: string): void {
  console.log(`drift in stack ${stackName} (${where(cluster)}):`);
  for (const drift of drifts) console.log(`  ${drift.what}: ${drift.change}; ${drift.action}`);
  console.log("fix (or run: npm run drift -- --heal):");
  for (const drift of drifts.filter((d) => d.recreatePod)) console.log(`  ${kubectlLine(cluster, ["delete", "pod", drift.recreatePod!])}`);
  console.log(`  ${pulumiCommand(stackName, workDir, healUpArgs(cluster, drifts, workDir))}`);
}

/** The heal's `pulumi up` arguments: refreshed, targeted, the recreated replicas' proofs replaced, under the policy gate. */
function healUpArgs(cluster: ClusterTarget, drifts: ClusterDrift[], workDir: string): string[] {
  return [
    "up",
    "--refresh",
    ...replacements(cluster, drifts).flatMap((urn) => ["--replace", shellQuote(urn)]),
    ...healTargets(cluster, drifts).flatMap((urn) => ["--target", shellQuote(urn)]),
    ...policyGateFlags(workDir).map(shellQuote),
  ];
}

/** The proofs of the replicas a heal recreates: they must run again. */
function replacements(cluster: ClusterTarget, drifts: ClusterDrift[]): string[] {
  return drifts.flatMap((d) => (d.recreatePod && cluster.smokeTestUrns.has(d.recreatePod) ? [cluster.smokeTestUrns.get(d.recreatePod)!] : []));
}

async function heal(stack: Stack, cluster: ClusterTarget, drifts: ClusterDrift[]): Promise<void> {
  for (const drift of drifts.filter((d) => d.recreatePod)) {
    console.log(`heal: ${kubectlLine(cluster, ["delete", "pod", drift.recreatePod!])}`);
    // --wait=false: the StatefulSet recreates the pod; the replica's proof waits for it, bounded.
    const deleted = kubectl(cluster, ["delete", "pod", drift.recreatePod!, "--wait=false"]);
    if (deleted.code !== 0) throw new UsageError(`kubectl delete pod ${drift.recreatePod} failed: ${firstLine(deleted.stderr)}`);
  }
  const replace = replacements(cluster, drifts);
  const target = healTargets(cluster, drifts);
  console.log(`heal: pulumi ${healUpArgs(cluster, drifts, repoRoot).join(" ")} --stack ${shellQuote(stack.name)}`);
  const events: EngineEvent[] = [];
  try {
    // Under the policy gate `npm run up` deploys through (policy-gate.ts): a heal cannot deploy what up would refuse.
    await stack.up({ refresh: true, replace, target, ...policyGate(), onOutput: (out) => process.stdout.write(out), onEvent: (event) => events.push(event) });
  } catch (error) {
    throw new UsageError(`pulumi up of stack ${stack.name} failed: ${reportedError(events) ?? firstLine(error)}`);
  }
}
