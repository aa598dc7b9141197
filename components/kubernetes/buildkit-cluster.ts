import { createHash } from "crypto";

import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

import { CONFIG_FILE, daemonCommand, modeOf, SOCKET, STATE_PATH, TLS_DIR, TLS_FILES, workersProbe } from "../core/buildkitd";
import { renderBuildkitdToml } from "../core/buildkitd-toml";
import { full } from "../core/config-keys";
import { SMOKE_TEST_ATTEMPTS, smokeTestEndpoint, smokeTestScript, tlsMaterialLines } from "../core/smoke-test";
import { MIB } from "../core/units";
import { CLUSTER_CACHE_VOLUME, CLUSTER_DAEMON_CONTAINER, CLUSTER_TYPE, clusterChildName } from "../resource-types";
import { ClusterSettings, replicaHost, replicaPods } from "./config";

/** Arguments of {@link BuildkitCluster}: validated settings (see `config.ts`). */
export type BuildkitClusterArgs = ClusterSettings;

/** One replica as clients reach it: the shape `npm run route` reads (`fleetEndpoints`). */
export interface ReplicaEndpoint {
  /** The replica's pod name (`<name>-<ordinal>`): stable across restarts, so its cache stays its own. */
  name: string;
  /** Paste into a shell with the kubeconfig exported: `export BUILDKIT_HOST=<this>`. */
  buildkitHost: string;
  /**
   * With a TCP listener (`buildkit:tcpPort` and mTLS): the replica's address
   * for clients inside the cluster, `tcp://<pod>.<service>.<namespace>.svc:<port>`,
   * dialled with the CA and a client certificate it signed.
   */
  tcpHost?: string;
}


/**
 * The pod's preStop hook: buildkitd drops the builds it is running when it
 * gets SIGTERM (moby/buildkit#4090), so the pod first waits, up to its grace
 * period, until no build record is still open (`buildctl debug histories`
 * lists every record; only finished ones are COMPLETE).
 */
export function drainScript(socket: string): string {
  return [
    `while buildctl --addr ${socket} debug histories 2>/dev/null | awk 'NR > 1 && $1 != "COMPLETE" { found = 1 } END { exit !found }'; do`,
    "  sleep 1",
    "done",
  ].join("\n");
}

/**
 * BuildKit daemons on a Kubernetes cluster: a namespace, buildkitd.toml in a
 * ConfigMap, a StatefulSet of `replicas` pods each with a cache volume of its
 * own (a PVC per replica), a headless Service giving each a stable name, a
 * PodDisruptionBudget, and a smoke test per replica. `pulumi up` returns only
 * once every replica has built through its own endpoint.
 */
export class BuildkitCluster extends pulumi.ComponentResource {
  public readonly provider: k8s.Provider;
  public readonly namespace: k8s.core.v1.Namespace;
  public readonly config: k8s.core.v1.ConfigMap;
  /** The TCP listener's server material (CA, certificate, key); only with `buildkit:tcpPort`. */
  public readonly tlsSecret?: k8s.core.v1.Secret;
  public readonly service: k8s.core.v1.Service;
  public readonly statefulSet: k8s.apps.v1.StatefulSet;
  public readonly disruptionBudget: k8s.policy.v1.PodDisruptionBudget;
  public readonly smokeTests: command.local.Command[];

  /** Each replica, in ordinal order: its pod name and BUILDKIT_HOST. */
  public readonly endpoints: pulumi.Output<ReplicaEndpoint[]>;
  /** Each replica's smoke test result, by pod name. */
  public readonly smokeTestSummaries: pulumi.Output<Record<string, string>>;
  /** Paste into a shell before using an endpoint: `export KUBECONFIG=<this>`. */
  public readonly kubeconfig: string;
  public readonly namespaceName: pulumi.Output<string>;

  constructor(name: string, args: BuildkitClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super(CLUSTER_TYPE, name, {}, opts);
    const mode = modeOf(args);
    const labels = { "app.kubernetes.io/name": "buildkitd", "app.kubernetes.io/instance": args.name, "app.kubernetes.io/managed-by": "buildkit-stack" };

    // The provider reads the file by path: certificates rotated in it do not replace every resource.
    this.provider = new k8s.Provider(clusterChildName(name, "provider"), { kubeconfig: args.kubeconfig, context: args.kubeContext }, { parent: this });
    const children = { parent: this, provider: this.provider };

    // The program is the source of truth: an operator's `kubectl scale` or `kubectl edit` takes ownership of the
    // fields it set (server-side apply), and the next preview or heal would stop on the conflict instead of
    // putting the program's value back. Forcing our apply is what makes drift healable.
    const owned = { labels, annotations: { "pulumi.com/patchForce": "true" } };
    this.namespace = new k8s.core.v1.Namespace(clusterChildName(name, "namespace"), { metadata: { name: args.namespace, ...owned } }, children);
    const ns = this.namespace.metadata.name;

    // Auto-named (name-<suffix>): a new buildkitd.toml is a new ConfigMap, the pod template names it, so the pods roll,
    // one at a time, and preview shows it. Editing the ConfigMap in place would change nothing until a pod restarted.
    this.config = new k8s.core.v1.ConfigMap(
      clusterChildName(name, "config"),
      { metadata: { namespace: ns, ...owned }, data: { "buildkitd.toml": renderBuildkitdToml(args) } },
      children,
    );

    // The listener's material, as a Secret and never in the pod template. Auto-named like the ConfigMap: buildkitd
    // reads its certificates only at start, so new material is a new Secret, and naming it rolls the pods.
    const tcpPort = args.tls ? args.tcpPort : undefined;
    if (tcpPort !== undefined && args.tls) {
      this.tlsSecret = new k8s.core.v1.Secret(
        clusterChildName(name, "tls"),
        {
          metadata: { namespace: ns, ...owned },
          type: "Opaque",
          stringData: pulumi.secret({ [TLS_FILES.ca]: args.tls.ca, [TLS_FILES.cert]: args.tls.cert, [TLS_FILES.key]: args.tls.key }),
        },
        children,
      );
    }

    // Headless: each replica answers at <pod>.<service>.<namespace>.svc, and nothing balances builds away from their cache.
    this.service = new k8s.core.v1.Service(
      clusterChildName(name, "service"),
      {
        metadata: { name: args.name, namespace: ns, ...owned },
        spec: {
          clusterIP: "None",
          selector: labels,
          ports: tcpPort !== undefined ? [{ name: LISTENER_PORT_NAME, port: tcpPort, targetPort: tcpPort }] : undefined,
        },
      },
      children,
    );

    const resources = resourcesOf(args);
    const podTemplate: k8s.types.input.core.v1.PodTemplateSpec = {
      metadata: { labels },
      spec: {
        terminationGracePeriodSeconds: args.stopGraceSeconds,
        // Rootless: buildkitd runs as uid 1000 and must own its cache. Not every provisioner applies fsGroup (a
        // hostPath-backed volume, like the local-path provisioner's, keeps root's ownership), so a root init step
        // with CAP_CHOWN only hands the volume over, once per pod start.
        initContainers: args.rootless
          ? [
              {
                name: "cache-owner",
                image: args.image,
                command: ["sh", "-c", `chown ${ROOTLESS_UID}:${ROOTLESS_UID} ${STATE_PATH[mode]}`],
                securityContext: { runAsUser: 0, runAsNonRoot: false, capabilities: { drop: ["ALL"], add: ["CHOWN"] } },
                volumeMounts: [{ name: CLUSTER_CACHE_VOLUME, mountPath: STATE_PATH[mode] }],
              },
            ]
          : undefined,
        containers: [
          {
            name: CLUSTER_DAEMON_CONTAINER,
            image: args.image,
            // A pod listens on tcpPort itself: a headless Service's clients dial the pod, with no port mapping between.
            args: daemonCommand(args, tcpPort),
            securityContext: daemonSecurity(args.rootless),
            resources,
            ports: tcpPort !== undefined ? [{ name: LISTENER_PORT_NAME, containerPort: tcpPort, protocol: "TCP" }] : undefined,
            volumeMounts: [
              { name: "config", mountPath: CONFIG_FILE, subPath: "buildkitd.toml", readOnly: true },
              { name: CLUSTER_CACHE_VOLUME, mountPath: STATE_PATH[mode] },
              ...(this.tlsSecret ? [{ name: "tls", mountPath: TLS_DIR, readOnly: true }] : []),
            ],
            // Ready means buildkitd lists its workers, not that the process exists.
            startupProbe: { exec: { command: workersProbe(mode) }, periodSeconds: 2, failureThreshold: SMOKE_TEST_ATTEMPTS / 2, timeoutSeconds: 5 },
            readinessProbe: { exec: { command: workersProbe(mode) }, periodSeconds: 5, timeoutSeconds: 5 },
            lifecycle: { preStop: { exec: { command: ["sh", "-c", drainScript(SOCKET[mode])] } } },
          },
        ],
        volumes: [
          { name: "config", configMap: { name: this.config.metadata.name } },
          // Root reads the key at 0400; the rootless daemon (uid 1000) cannot read a root-owned 0400 file, and the
          // container runs nothing but buildkitd, so there the files are 0444.
          ...(this.tlsSecret ? [{ name: "tls", secret: { secretName: this.tlsSecret.metadata.name, defaultMode: args.rootless ? 0o444 : 0o400 } }] : []),
        ],
      },
    };
    this.statefulSet = new k8s.apps.v1.StatefulSet(
      clusterChildName(name, "daemons"),
      {
        metadata: { name: args.name, namespace: ns, labels, annotations: { ...owned.annotations, [AWAIT_ANNOTATION]: AWAIT_ONLY_EXISTENCE } },
        spec: {
          serviceName: this.service.metadata.name,
          replicas: args.replicas,
          // Replicas are peers, not a chain: all start at once; a roll still replaces one at a time.
          podManagementPolicy: "Parallel",
          updateStrategy: { type: "RollingUpdate" },
          // A protected cache outlives the StatefulSet; scaling down always keeps it, for the replica that comes back.
          persistentVolumeClaimRetentionPolicy: { whenDeleted: args.cacheProtected ? "Retain" : "Delete", whenScaled: "Retain" },
          selector: { matchLabels: labels },
          template: podTemplate,
          volumeClaimTemplates: [
            {
              metadata: { name: CLUSTER_CACHE_VOLUME, labels },
              spec: {
                accessModes: ["ReadWriteOnce"],
                storageClassName: args.storageClass,
                resources: { requests: { storage: String(args.cacheSizeBytes) } },
              },
            },
          ],
        },
      },
      // The proofs wait for the pods (rollWaitScript): they name a replica that cannot start and why, where the
      // provider's own wait would only count ready replicas after its timeout.
      children,
    );

    this.disruptionBudget = new k8s.policy.v1.PodDisruptionBudget(
      clusterChildName(name, "disruption-budget"),
      { metadata: { name: args.name, namespace: ns, ...owned }, spec: { maxUnavailable: 1, selector: { matchLabels: labels } } },
      children,
    );

    const pods = replicaPods(args.name, args.replicas);
    const contextQuery = args.kubeContext ? `&context=${encodeURIComponent(args.kubeContext)}` : "";
    this.endpoints = ns.apply((namespace) =>
      pods.map((pod) => ({
        name: pod,
        buildkitHost: `kube-pod://${pod}?namespace=${namespace}&container=${CLUSTER_DAEMON_CONTAINER}${contextQuery}`,
        ...(tcpPort !== undefined ? { tcpHost: `tcp://${replicaHost(pod, args.name, namespace)}:${tcpPort}` } : {}),
      })),
    );
    // With a listener, each proof dials its own replica's name over TCP with mTLS, from inside the pod: the
    // listener, the certificate's names and the Service's DNS record are what it proves. kubectl exec passes no
    // environment, so the client pair travels on the shell's stdin.
    const kubectlExec = `${KUBECTL} exec -i -n "$NAMESPACE" -c "$CONTAINER_NAME" "$POD" -- sh`;
    const runner = tcpPort !== undefined ? `bk_material | ${kubectlExec}` : kubectlExec;
    const endpointOf = (pod: string) => smokeTestEndpoint(args, replicaHost(pod, args.name, args.namespace), { port: tcpPort ?? 0, material: "stdin" });

    // Every change of the pod template rolls the pods and re-runs every proof. Its digest is known at preview
    // (unknown while a new ConfigMap's name is), so preview shows exactly the proofs that up re-runs. (The
    // StatefulSet's update revision would say the same, but it is unknown at preview for any update, a scale too.)
    const templateDigest = pulumi.output(podTemplate).apply((template) => createHash("sha256").update(JSON.stringify(template)).digest("hex"));
    this.smokeTests = (args.smokeTest ? pods : []).map(
      (pod) =>
        new command.local.Command(
          clusterChildName(`${name}-${pod}`, "smokeTest"),
          {
            // The provider can report an updated StatefulSet before its controller has started the roll: the proof
            // first waits, bounded, for kubectl's own view of the roll (every pod at the new revision and ready).
            // The program travels in the environment: a failed proof is reported as `running "eval "$PROOF""`
            // and then its own message, not after the whole script.
            create: 'eval "$PROOF"',
            environment: {
              PROOF: [
                rollWaitScript(KUBECTL),
                ...(tcpPort !== undefined ? [`bk_material() { ${tlsMaterialLines}; }`] : []),
                smokeTestScript(runner, endpointOf(pod)),
              ].join("\n"),
              KUBECONFIG: args.kubeconfig,
              ...(args.kubeContext ? { KUBE_CONTEXT: args.kubeContext } : {}),
              NAMESPACE: ns,
              POD: pod,
              // The name as declared, not the output: a replacement's preview shows a placeholder name there.
              STATEFULSET: args.name,
              // The bound grows with the replicas, read when the proof runs: a scale must not re-run the other proofs.
              GRACE_SECONDS: String(args.stopGraceSeconds),
              SELECTOR: Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(","),
              CONTAINER_NAME: CLUSTER_DAEMON_CONTAINER,
              // What the proof's messages call the daemon.
              CONTAINER: pulumi.interpolate`pod ${pod} in namespace ${ns}`,
              ATTEMPTS: String(SMOKE_TEST_ATTEMPTS),
              ...(tcpPort !== undefined && args.tls
                ? { BK_CA: args.tls.ca, BK_CERT: args.tls.clientCert, BK_KEY: pulumi.secret(args.tls.clientKey) }
                : {}),
            },
            triggers: [templateDigest, this.statefulSet.metadata.uid],
          },
          { parent: this, dependsOn: [this.statefulSet] },
        ),
    );
    this.smokeTestSummaries = args.smokeTest
      ? pulumi.all(this.smokeTests.map((test) => test.stdout)).apply((outs) => Object.fromEntries(pods.map((pod, i) => [pod, outs[i]])))
      : pulumi.output(Object.fromEntries(pods.map((pod) => [pod, "smoke test disabled"])));
    this.kubeconfig = args.kubeconfig;
    this.namespaceName = ns;

    this.registerOutputs({ endpoints: this.endpoints, smokeTestSummaries: this.smokeTestSummaries, namespace: ns });
  }
}

/**
 * The provider's readiness wait for the StatefulSet, replaced by "it exists":
 * the proofs wait for the pods instead ({@link rollWaitScript}) and name a
 * replica that cannot start, where the provider would count ready replicas
 * after its timeout. (`pulumi.com/skipAwait` would also skip the wait for a
 * deletion, and a replacement would then collide with the old StatefulSet.)
 */
const AWAIT_ANNOTATION = "pulumi.com/waitFor";
const AWAIT_ONLY_EXISTENCE = "jsonpath={.metadata.name}";

/** Container states no wait mends: the proof stops at once and names the replica. */
const STUCK_REASONS = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "CrashLoopBackOff"];

/**
 * The proof's first step: waits, bounded by ten minutes plus every replica's
 * drain ($GRACE_SECONDS each, one at a time), until every replica
 * runs the StatefulSet's current revision and is Ready (`kubectl rollout
 * status`, polled). A replica stuck where waiting does not help (an image the
 * node cannot pull, a crash loop, a pod no node can take, a cache volume whose
 * StorageClass does not exist) ends the wait at once; either way each replica
 * that is not Ready is named with its reason, its cache volume when that is
 * Pending and why, and the fix.
 */
export function rollWaitScript(kubectl: string): string {
  const pods = `${kubectl} get pods -n "$NAMESPACE" -l "$SELECTOR"`;
  return [
    `replicas=$(${kubectl} get statefulset "$STATEFULSET" -n "$NAMESPACE" -o jsonpath='{.spec.replicas}' 2>/dev/null || echo 1)`,
    `deadline=$(( $(date +%s) + ${ROLL_BASE_SECONDS} + \${replicas:-1} * GRACE_SECONDS ))`,
    // Every StorageClass of the cluster, one a line: its name, and "true" for the default one.
    "storage_classes() {",
    `  ${kubectl} get storageclass -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.metadata.annotations.storageclass\\.kubernetes\\.io/is-default-class}{"\\n"}{end}' 2>/dev/null`,
    "}",
    // One line per replica that is not Ready and whose cache volume is Pending: why no volume is provisioned for it.
    // A StorageClass that does not exist (or none, with no default) is marked: waiting does not mend it. A claim made
    // for a class that does not exist, never bound (it holds nothing) and not the class the StatefulSet asks for now,
    // is a leftover of an earlier template (a protected cache keeps its claims when the StatefulSet is replaced): it
    // is deleted with its pod, so the StatefulSet makes both again from its template, and the wait goes on.
    "pending_volumes() {",
    `  for pod in $(printf "%s\\n" "$report" | awk -F"\\t" '$1 != "" && $2 != "True" { print $1 }'); do`,
    `    claim=${CLUSTER_CACHE_VOLUME}-$pod`,
    `    volume=$(${kubectl} get pvc "$claim" -n "$NAMESPACE" -o jsonpath='{.status.phase}{"\\t"}{.spec.storageClassName}{"\\t"}{.spec.volumeName}{"\\t"}{.metadata.deletionTimestamp}' 2>/dev/null) || continue`,
    `    [ "$(printf "%s" "$volume" | cut -f1)" = Pending ] || continue`,
    `    if [ -n "$(printf "%s" "$volume" | cut -f4)" ]; then echo "(recreated)"; continue; fi`,
    `    class=$(printf "%s" "$volume" | cut -f2)`,
    '    if [ -z "$class" ]; then',
    '      why="it names no StorageClass and the cluster has no default one (missing)"',
    `    elif ${kubectl} get storageclass "$class" 2>&1 >/dev/null | grep -q NotFound; then`,
    `      wanted=$(${kubectl} get statefulset "$STATEFULSET" -n "$NAMESPACE" -o jsonpath='{.spec.volumeClaimTemplates[?(@.metadata.name=="${CLUSTER_CACHE_VOLUME}")].spec.storageClassName}' 2>/dev/null)`,
    `      [ -n "$wanted" ] || wanted=$(storage_classes | awk '$2 == "true" { print $1; exit }')`,
    `      if [ -n "$wanted" ] && [ "$wanted" != "$class" ] && [ -z "$(printf "%s" "$volume" | cut -f3)" ]; then`,
    '        echo "replica $pod: its cache volume $claim was made for StorageClass \\"$class\\", which does not exist, and never bound (it holds nothing): deleted with the pod, the StatefulSet makes both again on StorageClass \\"$wanted\\"" >&2',
    `        ${kubectl} delete pvc "$claim" -n "$NAMESPACE" --wait=false >/dev/null 2>&1`,
    `        ${kubectl} delete pod "$pod" -n "$NAMESPACE" --wait=false >/dev/null 2>&1`,
    '        echo "(recreated)"',
    "        continue",
    "      fi",
    '      why="StorageClass \\"$class\\" does not exist (missing)"',
    "    else",
    `      why="StorageClass \\"$class\\": $(${kubectl} get events -n "$NAMESPACE" --field-selector involvedObject.kind=PersistentVolumeClaim,involvedObject.name="$claim" --sort-by=.lastTimestamp -o jsonpath='{.items[-1:].message}' 2>/dev/null)"`,
    "    fi",
    '    printf "  replica %s: its cache volume %s is Pending: %s\\n" "$pod" "$claim" "$why"',
    "  done",
    "}",
    `until ${kubectl} rollout status statefulset/"$STATEFULSET" -n "$NAMESPACE" --timeout=5s >/dev/null 2>&1; do`,
    // One line per pod: name, Ready, the container's waiting reason and message, why it is not scheduled.
    `  report=$(${pods} -o jsonpath='{range .items[*]}{.metadata.name}{"\\t"}{.status.conditions[?(@.type=="Ready")].status}{"\\t"}{.status.containerStatuses[0].state.waiting.reason}{"\\t"}{.status.containerStatuses[0].state.waiting.message}{"\\t"}{.status.conditions[?(@.reason=="Unschedulable")].message}{"\\n"}{end}')`,
    "  volumes=$(pending_volumes)",
    // A leftover claim was just deleted: its pod's state is the old one's; look again once the StatefulSet made them anew.
    '  case "$volumes" in *"(recreated)"*) [ "$(date +%s)" -ge "$deadline" ] || continue ;; esac',
    `  stuck=$(printf "%s\\n" "$report" | awk -F"\\t" '$3 ~ /^(${STUCK_REASONS.join("|")})$/ || $5 != ""')`,
    '  case "$volumes" in *"(missing)"*) stuck="$stuck$volumes" ;; esac',
    '  if [ -n "$stuck" ] || [ "$(date +%s)" -ge "$deadline" ]; then',
    '    echo "the replicas of StatefulSet $STATEFULSET in namespace $NAMESPACE are not all Ready${stuck:+ (and waiting does not help)}:" >&2',
    `    printf "%s\\n" "$report" | awk -F"\\t" '$2 != "True" { printf "  replica %s: %s%s%s\\n", $1, ($3 != "" ? $3 : "not Ready"), ($4 != "" ? ": " $4 : ""), ($5 != "" ? ": " $5 : "") }' >&2`,
    '    printf "%s\\n" "$volumes" | sed -e "/^(recreated)$/d" -e "/^$/d" -e "s/ (missing)$//" >&2',
    '    case "$volumes" in',
    '    *"(missing)"*)',
    `      classes=$(storage_classes | awk '$1 != "" { printf "%s%s%s", sep, $1, ($2 == "true" ? " (default)" : ""); sep = ", " }')`,
    `      echo "fix: set ${full("storageClass")} to a StorageClass of this cluster (\${classes:-it has none: ask its administrator for one}), or remove it for the cluster's default one; then run up again" >&2`,
    "      ;;",
    "    *)",
    '      echo "fix: see kubectl -n $NAMESPACE describe pod <replica>; correct the stack config (the image, memory, cpus) and run up again" >&2',
    "      ;;",
    "    esac",
    "    exit 1",
    "  fi",
    "done",
  ].join("\n");
}

/** The user the rootless image runs buildkitd as. */
const ROOTLESS_UID = 1000;

/**
 * Privileged, or BuildKit's documented rootless requirements: its own user
 * namespace needs seccomp and AppArmor unconfined (what that gives up:
 * docs/security.md#hardening).
 */
function daemonSecurity(rootless: boolean): k8s.types.input.core.v1.SecurityContext {
  if (!rootless) return { privileged: true };
  return {
    runAsUser: ROOTLESS_UID,
    runAsGroup: ROOTLESS_UID,
    runAsNonRoot: true,
    seccompProfile: { type: "Unconfined" },
    appArmorProfile: { type: "Unconfined" },
  };
}

/** The listener's port name, in the pod and the Service. */
const LISTENER_PORT_NAME = "buildkitd";

/** kubectl as the proofs run it: the stack's kubeconfig (KUBECONFIG) and context. */
const KUBECTL = 'kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"}';

/** How long a roll may take besides the replicas' drains: to schedule, pull and start. */
const ROLL_BASE_SECONDS = 600;

/** Requests equal to limits: a build daemon's memory is its working set, and a guaranteed pod is the last evicted. */
function resourcesOf(args: ClusterSettings): k8s.types.input.core.v1.ResourceRequirements | undefined {
  const amounts: Record<string, string> = {};
  if (args.memoryBytes !== undefined) amounts.memory = `${args.memoryBytes / MIB}Mi`;
  if (args.cpus !== undefined) amounts.cpu = `${Math.round(args.cpus * 1000)}m`;
  return Object.keys(amounts).length > 0 ? { requests: amounts, limits: amounts } : undefined;
}
