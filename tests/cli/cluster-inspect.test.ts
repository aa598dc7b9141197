/**
 * What drift and doctor read from a cluster stack's state, and how a
 * preview --refresh and the replicas' volumes become drift lines.
 */
import type { EngineEvent } from "@pulumi/pulumi/automation";

import { clusterOf, healTargets, isClusterState, kubectlLine, refreshedDrift, replicaDrift, ReplicaState } from "../../cli/cluster-inspect";
import type { RecordedResource } from "../../cli/stack-state";

const URN = (type: string, name: string) => `urn:pulumi:s::buildkit::buildkit:index:BuildkitCluster$${type}::${name}`;
const resource = (type: string, name: string, inputs: Record<string, unknown> = {}, outputs: Record<string, unknown> = {}): RecordedResource => ({
  urn: URN(type, name),
  type,
  inputs,
  outputs,
  secretFiles: new Set(),
});
const STATE: RecordedResource[] = [
  { urn: "urn:pulumi:s::buildkit::buildkit:index:BuildkitCluster::buildkit", type: "buildkit:index:BuildkitCluster", inputs: {}, outputs: {}, secretFiles: new Set() },
  resource("pulumi:providers:kubernetes", "buildkit-kubernetes", { kubeconfig: "/k/config", context: "ci" }),
  resource("kubernetes:apps/v1:StatefulSet", "buildkit-daemons", { spec: { replicas: 2 } }, { metadata: { name: "buildkitd", namespace: "bk" } }),
  resource("kubernetes:core/v1:ConfigMap", "buildkit-config", {}, { metadata: { name: "buildkit-config-1234" } }),
  resource("kubernetes:core/v1:Service", "buildkit-service", {}, { metadata: { name: "buildkitd" } }),
  resource("kubernetes:core/v1:Secret", "buildkit-tls", {}, { metadata: { name: "buildkit-tls-5678" } }),
  resource("command:local:Command", "buildkit-buildkitd-0-smoke-test"),
  resource("command:local:Command", "buildkit-buildkitd-1-smoke-test"),
];
const step = (type: string, name: string, op: string, diffs: string[] = []): EngineEvent =>
  ({ sequence: 0, timestamp: 0, resourcePreEvent: { metadata: { op, urn: URN(type, name), type, provider: "", diffs } } }) as unknown as EngineEvent;

describe("clusterOf", () => {
  it("reads the kubeconfig, context, namespace, StatefulSet, replicas and each replica's proof from the state", () => {
    expect(isClusterState(STATE)).toBe(true);
    const cluster = clusterOf(STATE, { kubeconfig: "/k/config" });
    expect(cluster).toEqual({
      kubeconfig: "/k/config",
      context: "ci",
      namespace: "bk",
      statefulSet: "buildkitd",
      replicas: 2,
      pods: ["buildkitd-0", "buildkitd-1"],
      smokeTestUrns: new Map([
        ["buildkitd-0", URN("command:local:Command", "buildkit-buildkitd-0-smoke-test")],
        ["buildkitd-1", URN("command:local:Command", "buildkit-buildkitd-1-smoke-test")],
      ]),
      statefulSetUrn: URN("kubernetes:apps/v1:StatefulSet", "buildkit-daemons"),
      providerUrn: URN("pulumi:providers:kubernetes", "buildkit-kubernetes"),
      rootless: false,
    });
  });

  it("says what is missing for a stack that was never deployed", () => {
    expect(clusterOf(STATE.slice(0, 2), {})).toBe("the stack's state holds no StatefulSet (never deployed, or destroyed)");
    expect(isClusterState(STATE.slice(1))).toBe(false);
  });

  it("writes kubectl lines a person can paste, quoting what needs it", () => {
    const cluster = clusterOf(STATE, {}) as Exclude<ReturnType<typeof clusterOf>, string>;
    expect(kubectlLine({ ...cluster, kubeconfig: "/home/me/my kube" }, ["delete", "pod", "buildkitd-1"])).toBe(
      "KUBECONFIG='/home/me/my kube' kubectl --context ci -n bk delete pod buildkitd-1",
    );
  });
});

describe("refreshedDrift", () => {
  it("names a deleted object, a changed one and a replaced one (the TLS Secret too) by kind and name; the proofs' steps are not drift", () => {
    const events = [
      step("kubernetes:core/v1:Service", "buildkit-service", "create"),
      step("kubernetes:apps/v1:StatefulSet", "buildkit-daemons", "update", ["spec"]),
      step("kubernetes:core/v1:ConfigMap", "buildkit-config", "create-replacement", ["data"]),
      step("kubernetes:core/v1:ConfigMap", "buildkit-config", "replace", ["data"]),
      step("kubernetes:core/v1:Secret", "buildkit-tls", "replace", ["data"]),
      step("command:local:Command", "buildkit-buildkitd-0-smoke-test", "replace", ["triggers"]),
      step("kubernetes:core/v1:Namespace", "buildkit-namespace", "same"),
    ];
    const named = refreshedDrift(events, STATE).map(({ what, change, action }) => ({ what, change, action }));
    expect(named).toEqual([
      { what: "Service buildkitd", change: "deleted out of band", action: "up creates it again" },
      { what: "StatefulSet buildkitd", change: "changed out of band (spec)", action: "up puts the program's values back" },
      { what: "ConfigMap buildkit-config-1234", change: "changed out of band (data)", action: "up replaces it with the program's; the pods roll" },
      { what: "Secret buildkit-tls-5678", change: "changed out of band (data)", action: "up replaces it with the program's; the pods roll" },
    ]);
  });

  it("finds nothing in a clean preview", () => {
    expect(refreshedDrift([step("kubernetes:apps/v1:StatefulSet", "buildkit-daemons", "same")], STATE)).toEqual([]);
  });
});

describe("healTargets", () => {
  const cluster = clusterOf(STATE, {}) as Exclude<ReturnType<typeof clusterOf>, string>;
  const proofs = [URN("command:local:Command", "buildkit-buildkitd-0-smoke-test"), URN("command:local:Command", "buildkit-buildkitd-1-smoke-test")];
  const provider = URN("pulumi:providers:kubernetes", "buildkit-kubernetes");

  it("names what drifted and every proof, and the StatefulSet only when it drifted or what it names comes back renamed", () => {
    const scaled = refreshedDrift([step("kubernetes:apps/v1:StatefulSet", "buildkit-daemons", "update", ["spec"])], STATE);
    expect(healTargets(cluster, scaled)).toEqual([provider, URN("kubernetes:apps/v1:StatefulSet", "buildkit-daemons"), ...proofs]);
    const serviceGone = refreshedDrift([step("kubernetes:core/v1:Service", "buildkit-service", "create")], STATE);
    expect(healTargets(cluster, serviceGone)).toEqual([provider, URN("kubernetes:core/v1:Service", "buildkit-service"), ...proofs]);
    const editedSecret = refreshedDrift([step("kubernetes:core/v1:Secret", "buildkit-tls", "replace", ["data"])], STATE);
    expect(healTargets(cluster, editedSecret)).toEqual([provider, URN("kubernetes:core/v1:Secret", "buildkit-tls"), URN("kubernetes:apps/v1:StatefulSet", "buildkit-daemons"), ...proofs]);
  });

  it("targets the proofs alone for a replica whose cache volume is gone (its pod is recreated first)", () => {
    const lost = replicaDrift([{ pod: "buildkitd-1", claim: "cache-buildkitd-1", podFound: true, ready: true, claimGone: true }]);
    expect(healTargets(cluster, lost)).toEqual([provider, ...proofs]);
  });
});

describe("replicaDrift", () => {
  const replica = (pod: string, claimGone: boolean, podFound = true): ReplicaState => ({ pod, claim: `cache-${pod}`, podFound, ready: podFound, claimGone, claimPhase: claimGone ? undefined : "Bound" });
  it("names a replica whose cache volume is gone, and recreates its pod to heal", () => {
    expect(replicaDrift([replica("buildkitd-0", false), replica("buildkitd-1", true)])).toEqual([
      {
        what: "replica buildkitd-1",
        change: "its cache volume cache-buildkitd-1 was deleted out of band (Terminating while the pod still uses it)",
        action: "the pod is deleted so the StatefulSet recreates it with a new, empty cache volume, and the replica is proven again",
        recreatePod: "buildkitd-1",
      },
    ]);
    expect(replicaDrift([replica("buildkitd-0", true, false)])[0].change).toBe("its cache volume cache-buildkitd-0 was deleted out of band");
  });
});
