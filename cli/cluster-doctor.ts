/**
 * `npm run doctor` on a cluster stack (BuildkitCluster): the API server
 * answers, the StatefulSet has its replicas Ready, and for each replica its
 * pod is Ready, its cache volume Bound, and buildkitd lists its workers —
 * each failure followed by the command that fixes it or shows why.
 */
import type { Stack } from "@pulumi/pulumi/automation";

import { apiServerProblem, clusterOf, kubectl, kubectlLine, replicaStates, replicaWorkers } from "./cluster-inspect";
import { Report } from "./doctor-checks";
import { firstLine } from "./options";
import { pulumiCommand, shellQuote } from "./shell";
import type { RecordedResource } from "./stack-state";
import { CLUSTER_DAEMON_CONTAINER } from "../components/resource-types";

/** Runs every check; the doctor's exit code (0 healthy, 1 a check failed). */
export function clusterDoctor(stack: Stack, state: RecordedResource[], outputs: Record<string, unknown>, workDir: string, report: Report): number {
  const cluster = clusterOf(state, outputs);
  if (typeof cluster === "string") {
    report.fail(`stack ${stack.name}: ${cluster}`, `deploy it: ${pulumiCommand(stack.name, workDir, ["up"])}`);
    return 1;
  }
  const heal = `npm run drift -- --stack ${shellQuote(stack.name)} --heal`;
  const unreachable = apiServerProblem(cluster);
  if (unreachable) {
    report.fail(
      `cluster: the API server does not answer (kubeconfig ${cluster.kubeconfig}${cluster.context ? `, context ${cluster.context}` : ""}): ${unreachable}`,
      "start the cluster (the local one: sudo bash scripts/provision/cluster.sh up), or point buildkit:kubeconfig at one that answers",
    );
    return 1;
  }
  report.ok(`cluster: the API server answers (kubeconfig ${cluster.kubeconfig})`);

  const sts = kubectl(cluster, ["get", "statefulset", cluster.statefulSet, "-o", "jsonpath={.spec.replicas} {.status.readyReplicas}"]);
  if (sts.code !== 0) {
    report.fail(`StatefulSet ${cluster.statefulSet} in namespace ${cluster.namespace}: ${firstLine(sts.stderr)}`, `recreate it: ${heal}`);
  } else {
    const [declared, ready] = sts.stdout.trim().split(" ").map((n) => Number(n || 0));
    if (declared !== cluster.replicas) {
      report.fail(`StatefulSet ${cluster.statefulSet}: ${declared} replicas, the program declares ${cluster.replicas} (scaled out of band)`, `put the program's count back: ${heal}`);
    } else if (ready !== declared) {
      report.fail(`StatefulSet ${cluster.statefulSet}: ${ready} of ${declared} replicas Ready`, `see the replicas below; ${kubectlLine(cluster, ["describe", "statefulset", cluster.statefulSet])}`);
    } else {
      report.ok(`StatefulSet ${cluster.statefulSet}: ${ready} of ${declared} replicas Ready`);
    }
  }

  for (const replica of replicaStates(cluster)) {
    const prefix = `replica ${replica.pod}: `;
    if (!replica.podFound) {
      report.fail(`${prefix}no pod`, `a StatefulSet scaled below it out of band does not recreate it: ${heal}; otherwise read why: ${kubectlLine(cluster, ["describe", "statefulset", cluster.statefulSet])}`);
    } else if (!replica.ready) {
      report.fail(`${prefix}pod not Ready (phase ${replica.podPhase ?? "unknown"})`, `read why: ${kubectlLine(cluster, ["describe", "pod", replica.pod])}; ${kubectlLine(cluster, ["logs", replica.pod, "-c", CLUSTER_DAEMON_CONTAINER])}`);
    } else {
      report.ok(`${prefix}pod Ready`);
    }
    if (replica.claimGone) {
      report.fail(`${prefix}cache volume ${replica.claim} deleted${replica.podFound ? " (Terminating while the pod uses it)" : ""}`, `give the replica a new one: ${heal}`);
    } else if (replica.claimPhase !== "Bound") {
      report.fail(
        `${prefix}cache volume ${replica.claim} is ${replica.claimPhase ?? "in no phase"}, not Bound`,
        `read why (is there a StorageClass that provisions it? kubectl get storageclass): ${kubectlLine(cluster, ["describe", "pvc", replica.claim])}`,
      );
    } else {
      report.ok(`${prefix}cache volume ${replica.claim} Bound`);
    }
    if (replica.ready) {
      const workers = replicaWorkers(cluster, replica.pod);
      if ("problem" in workers) {
        report.fail(`${prefix}buildctl debug workers: ${workers.problem}`, `read the daemon's log: ${kubectlLine(cluster, ["logs", replica.pod, "-c", CLUSTER_DAEMON_CONTAINER])}`);
      } else {
        report.ok(`${prefix}buildkitd lists ${workers.workers.length} worker${workers.workers.length === 1 ? "" : "s"} (${workers.workers[0].split(/\s+/).slice(0, 2).join(" ")})`);
      }
    }
  }
  console.log(report.failures === 0 ? `healthy: stack ${stack.name} (${cluster.replicas} replicas)` : `${report.failures} check${report.failures === 1 ? "" : "s"} failed: stack ${stack.name}`);
  return report.failures === 0 ? 0 : 1;
}
