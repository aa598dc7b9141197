/**
 * What a cluster stack's preview plans, in the columns of the cluster's
 * change-impact table (components/kubernetes/change-impact.ts): the tests that
 * compare a change's preview with its row record it here, one way.
 */
import type { EngineEvent } from "@pulumi/pulumi/automation";

import { ClusterChangeImpact, ClusterResource, PlannedOp } from "../../components/kubernetes/change-impact";

/** Which column a resource of the preview is in, by its type (the proofs by their name). */
function columnOf(type: string, urn: string): ClusterResource | undefined {
  if (type === "kubernetes:core/v1:ConfigMap") return "configMap";
  if (type === "kubernetes:core/v1:Secret") return "secret";
  if (type === "kubernetes:apps/v1:StatefulSet") return "statefulSet";
  return /-smoke-test$/.test(urn) ? "proofs" : undefined;
}

/** The operation planned per column (the proofs: the strongest op any of them gets), from a preview's events. */
export function clusterPlanRecorder(): { onEvent: (event: EngineEvent) => void; ops: Record<ClusterResource, PlannedOp> } {
  const ops: Record<ClusterResource, PlannedOp> = { configMap: "—", secret: "—", statefulSet: "—", proofs: "—" };
  const strength: Record<PlannedOp, number> = { "—": 0, update: 1, create: 2, delete: 2, replace: 3 };
  const onEvent = (event: EngineEvent) => {
    const step = event.resourcePreEvent?.metadata;
    if (!step || step.op === "same") return;
    const op: PlannedOp | undefined = /replace/.test(step.op) ? "replace" : step.op === "update" || step.op === "create" || step.op === "delete" ? step.op : undefined;
    const column = columnOf(step.type, step.urn);
    if (op && column && strength[op] > strength[ops[column]]) ops[column] = op;
  };
  return { onEvent, ops };
}

/** A row's operations in every column, "—" where it plans none: what {@link clusterPlanRecorder} records. */
export const plannedOpsOf = (row: ClusterChangeImpact): Record<ClusterResource, PlannedOp> => ({
  configMap: row.ops.configMap ?? "—",
  secret: row.ops.secret ?? "—",
  statefulSet: row.ops.statefulSet ?? "—",
  proofs: row.ops.proofs ?? "—",
});
