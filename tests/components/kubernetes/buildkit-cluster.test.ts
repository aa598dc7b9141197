/**
 * BuildkitCluster under Pulumi's mocks: what it declares for a cluster stack,
 * from the core's rules (command line, probes, buildkitd.toml), and the drain
 * its pods run before SIGTERM, run against a fake buildctl.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import * as pulumi from "@pulumi/pulumi";

import { daemonCommand, workersProbe } from "../../../components/core/buildkitd";
import { renderBuildkitdToml } from "../../../components/core/buildkitd-toml";
import type { ClusterSettings } from "../../../components/kubernetes/config";

interface Registered {
  type: string;
  name: string;
  inputs: any;
}
const registered: Registered[] = [];

pulumi.runtime.setMocks(
  {
    newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "command:local:Command") state.stdout = `proof of ${args.name}`;
      if (args.type === "kubernetes:core/v1:Namespace") state.metadata = { ...args.inputs.metadata };
      if (args.type === "kubernetes:core/v1:ConfigMap") state.metadata = { ...args.inputs.metadata, name: `${args.name}-abc123` };
      if (args.type === "kubernetes:core/v1:Secret") state.metadata = { ...args.inputs.metadata, name: `${args.name}-def456` };
      if (args.type === "kubernetes:apps/v1:StatefulSet") state.status = { updateRevision: "buildkitd-rev1" };
      return { id: `${args.name}-id`, state };
    },
    call: () => ({}),
  },
  "buildkit",
  "cluster",
  false,
);

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { BuildkitCluster, drainScript, rollWaitScript } = require("../../../components/kubernetes/buildkit-cluster") as typeof import("../../../components/kubernetes/buildkit-cluster");

const promiseOf = <T>(output: pulumi.Output<T>): Promise<T> => new Promise((resolve) => output.apply(resolve));
const MIB = 1024 ** 2;

const settings: ClusterSettings = {
  kubeconfig: "/home/u/.kube/config",
  kubeContext: "ci",
  namespace: "buildkit-ci",
  name: "buildkitd",
  replicas: 3,
  cacheSizeBytes: 2048 * MIB,
  storageClass: "fast",
  image: "moby/buildkit:v0.32.2",
  rootless: false,
  allowPrivileged: true,
  production: false,
  memoryBytes: 1024 * MIB,
  cpus: 0.5,
  cacheProtected: true,
  cacheMaxUsedSpaceBytes: 1536 * MIB,
  registryMirrors: ["http://10.233.0.1:5000"],
  debug: false,
  platforms: [],
  smokeTest: true,
  requirePinnedImage: false,
  stopGraceSeconds: 600,
  maxParallelism: 2,
};

/** What the "buildkit" cluster registered of a type (another test declares one named "scratch"). */
const of = (type: string, cluster = "buildkit") => registered.filter((r) => r.type === type && r.name.startsWith(`${cluster}-`));

describe("BuildkitCluster", () => {
  let cluster: InstanceType<typeof BuildkitCluster>;
  beforeAll(async () => {
    cluster = new BuildkitCluster("buildkit", settings);
    await promiseOf(cluster.smokeTestSummaries);
  });

  it("talks to the cluster the kubeconfig path and context name, through a provider of its own", () => {
    expect(of("pulumi:providers:kubernetes").map((r) => r.inputs)).toEqual([expect.objectContaining({ kubeconfig: settings.kubeconfig, context: "ci" })]);
  });

  it("renders buildkitd.toml with the core's renderer into an auto-named ConfigMap (a change is a new one, so the pods roll)", () => {
    const [config] = of("kubernetes:core/v1:ConfigMap");
    expect(config.inputs.metadata.name).toBeUndefined();
    expect(config.inputs.data["buildkitd.toml"]).toBe(renderBuildkitdToml(settings));
  });

  it("runs the replicas as a StatefulSet: parallel, a cache volume each, the core's command and probes, a drain before SIGTERM", () => {
    const [sts] = of("kubernetes:apps/v1:StatefulSet");
    const spec = sts.inputs.spec;
    expect(spec).toMatchObject({ replicas: 3, podManagementPolicy: "Parallel", serviceName: "buildkitd", updateStrategy: { type: "RollingUpdate" } });
    // A protected cache outlives the StatefulSet; a scale-down keeps it for the replica that comes back.
    expect(spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: "Retain", whenScaled: "Retain" });
    const [claim] = spec.volumeClaimTemplates;
    expect(claim.spec).toEqual({ accessModes: ["ReadWriteOnce"], storageClassName: "fast", resources: { requests: { storage: String(2048 * MIB) } } });
    const pod = spec.template.spec;
    expect(pod.terminationGracePeriodSeconds).toBe(600);
    expect(pod.volumes).toEqual([{ name: "config", configMap: { name: "buildkit-config-abc123" } }]);
    const [container] = pod.containers;
    expect(container.args).toEqual(daemonCommand(settings));
    expect(container.securityContext).toEqual({ privileged: true });
    expect(pod.initContainers).toBeUndefined();
    expect(container.resources).toEqual({ requests: { memory: "1024Mi", cpu: "500m" }, limits: { memory: "1024Mi", cpu: "500m" } });
    expect(container.startupProbe.exec.command).toEqual(workersProbe("privileged"));
    expect(container.readinessProbe.exec.command).toEqual(workersProbe("privileged"));
    expect(container.lifecycle.preStop.exec.command).toEqual(["sh", "-c", drainScript("unix:///run/buildkit/buildkitd.sock")]);
    expect(container.volumeMounts).toEqual([
      { name: "config", mountPath: "/etc/buildkit/buildkitd.toml", subPath: "buildkitd.toml", readOnly: true },
      { name: "cache", mountPath: "/var/lib/buildkit" },
    ]);
  });

  it("deletes the caches with the StatefulSet only when the cache is not protected", async () => {
    const unprotected = new BuildkitCluster("scratch", { ...settings, cacheProtected: false, memoryBytes: undefined, cpus: undefined });
    await promiseOf(unprotected.smokeTestSummaries);
    const [sts] = of("kubernetes:apps/v1:StatefulSet", "scratch");
    expect(sts.inputs.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: "Delete", whenScaled: "Retain" });
    expect(sts.inputs.spec.template.spec.containers[0].resources).toBeUndefined();
  });

  it("runs rootless as uid 1000 with seccomp and AppArmor unconfined, after a root step that only chowns the cache", async () => {
    const rootless = new BuildkitCluster("rootless", { ...settings, rootless: true, image: "moby/buildkit:v0.32.2-rootless" });
    await promiseOf(rootless.smokeTestSummaries);
    const [sts] = of("kubernetes:apps/v1:StatefulSet", "rootless");
    const pod = sts.inputs.spec.template.spec;
    expect(pod.containers[0].securityContext).toEqual({
      runAsUser: 1000,
      runAsGroup: 1000,
      runAsNonRoot: true,
      seccompProfile: { type: "Unconfined" },
      appArmorProfile: { type: "Unconfined" },
    });
    expect(pod.containers[0].args).toEqual(daemonCommand({ rootless: true }));
    expect(pod.containers[0].volumeMounts[1]).toEqual({ name: "cache", mountPath: "/home/user/.local/share/buildkit" });
    expect(pod.initContainers).toEqual([
      {
        name: "cache-owner",
        image: "moby/buildkit:v0.32.2-rootless",
        command: ["sh", "-c", "chown 1000:1000 /home/user/.local/share/buildkit"],
        securityContext: { runAsUser: 0, runAsNonRoot: false, capabilities: { drop: ["ALL"], add: ["CHOWN"] } },
        volumeMounts: [{ name: "cache", mountPath: "/home/user/.local/share/buildkit" }],
      },
    ]);
    expect(pod.containers[0].readinessProbe.exec.command).toEqual(workersProbe("rootless"));
  });

  it("declares no proof when buildkit:smokeTest is false, and says so in the summaries", async () => {
    const unproven = new BuildkitCluster("unproven", { ...settings, replicas: 2, smokeTest: false });
    expect(await promiseOf(unproven.smokeTestSummaries)).toEqual({ "buildkitd-0": "smoke test disabled", "buildkitd-1": "smoke test disabled" });
    expect(of("command:local:Command", "unproven")).toEqual([]);
  });

  it("names each replica for clients: kube-pod:// with namespace, container and context", async () => {
    expect(await promiseOf(cluster.endpoints)).toEqual(
      [0, 1, 2].map((i) => ({ name: `buildkitd-${i}`, buildkitHost: `kube-pod://buildkitd-${i}?namespace=buildkit-ci&container=buildkitd&context=ci` })),
    );
    expect(cluster.kubeconfig).toBe(settings.kubeconfig);
  });

  it("owns its fields: every object it declares forces its apply over an operator's kubectl edits (so drift is healable)", () => {
    const declared = registered.filter((r) => r.type.startsWith("kubernetes:") && r.name.startsWith("buildkit-"));
    expect(declared.map((r) => r.type).sort()).toEqual([
      "kubernetes:apps/v1:StatefulSet",
      "kubernetes:core/v1:ConfigMap",
      "kubernetes:core/v1:Namespace",
      "kubernetes:core/v1:Service",
      "kubernetes:policy/v1:PodDisruptionBudget",
    ]);
    for (const r of declared) expect(r.inputs.metadata.annotations["pulumi.com/patchForce"]).toBe("true");
    // The StatefulSet alone is not awaited by the provider: the proofs wait for it, and name a replica that cannot start.
    expect(declared.filter((r) => r.inputs.metadata.annotations["pulumi.com/waitFor"] === "jsonpath={.metadata.name}").map((r) => r.type)).toEqual([
      "kubernetes:apps/v1:StatefulSet",
    ]);
  });

  it("waits for the roll before each proof, bounded by every replica's grace period, through the stack's kubeconfig and context", () => {
    const tests = of("command:local:Command");
    expect(tests.map((t) => t.name)).toEqual(["buildkit-buildkitd-0-smoke-test", "buildkit-buildkitd-1-smoke-test", "buildkit-buildkitd-2-smoke-test"]);
    for (const [i, test] of tests.entries()) {
      expect(test.inputs.create).toBe('eval "$PROOF"');
      expect(test.inputs.environment.PROOF.startsWith(rollWaitScript('kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"}') + "\n")).toBe(true);
      expect(test.inputs.environment).toMatchObject({
        KUBECONFIG: settings.kubeconfig,
        KUBE_CONTEXT: "ci",
        POD: `buildkitd-${i}`,
        STATEFULSET: "buildkitd",
        GRACE_SECONDS: "600",
        SELECTOR: "app.kubernetes.io/name=buildkitd,app.kubernetes.io/instance=buildkitd,app.kubernetes.io/managed-by=buildkit-stack",
      });
    }
  });

  it("proves every replica through its own pod, again whenever the StatefulSet's revision changes", async () => {
    expect(await promiseOf(cluster.smokeTestSummaries)).toEqual({
      "buildkitd-0": "proof of buildkit-buildkitd-0-smoke-test",
      "buildkitd-1": "proof of buildkit-buildkitd-1-smoke-test",
      "buildkitd-2": "proof of buildkit-buildkitd-2-smoke-test",
    });
  });
});

/** How the mocks see a Pulumi secret: a value under Pulumi's secret signature (stored encrypted in the state). */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

describe("BuildkitCluster with a TCP listener (buildkit:tcpPort and mTLS)", () => {
  const tls = { ca: "CA PEM", cert: "SERVER CERT PEM", key: "SERVER KEY PEM", clientCert: "CLIENT CERT PEM", clientKey: "CLIENT KEY PEM" };
  let listening: InstanceType<typeof BuildkitCluster>;
  beforeAll(async () => {
    listening = new BuildkitCluster("listening", { ...settings, replicas: 2, tcpPort: 1235, tls });
    await promiseOf(listening.smokeTestSummaries);
  });

  it("keeps the server material in an auto-named Secret (new material rolls the pods), mounted read-only, never in the pod template", () => {
    const [secret] = of("kubernetes:core/v1:Secret", "listening");
    expect(secret.name).toBe("listening-tls");
    expect(secret.inputs.metadata.name).toBeUndefined();
    expect(secret.inputs.stringData).toEqual({ [SECRET_SIG]: SECRET_VALUE, value: { "ca.pem": "CA PEM", "cert.pem": "SERVER CERT PEM", "key.pem": "SERVER KEY PEM" } });
    const [sts] = of("kubernetes:apps/v1:StatefulSet", "listening");
    const pod = sts.inputs.spec.template.spec;
    expect(pod.volumes).toContainEqual({ name: "tls", secret: { secretName: "listening-tls-def456", defaultMode: 0o400 } });
    expect(pod.containers[0].volumeMounts).toContainEqual({ name: "tls", mountPath: "/etc/buildkit/tls", readOnly: true });
    expect(JSON.stringify(sts.inputs)).not.toMatch(/PEM/);
  });

  it("listens on tcpPort in each pod with the core's mTLS flags, and the headless Service lists the port", () => {
    const [sts] = of("kubernetes:apps/v1:StatefulSet", "listening");
    const [container] = sts.inputs.spec.template.spec.containers;
    expect(container.args).toEqual(daemonCommand({ rootless: false, tcpPort: 1235, tls }, 1235));
    expect(container.args).toContain("tcp://0.0.0.0:1235");
    expect(container.ports).toEqual([{ name: "buildkitd", containerPort: 1235, protocol: "TCP" }]);
    const [service] = of("kubernetes:core/v1:Service", "listening");
    expect(service.inputs.spec).toMatchObject({ clusterIP: "None", ports: [{ name: "buildkitd", port: 1235, targetPort: 1235 }] });
  });

  it("proves each replica over TCP by its own name, the client pair on the exec's stdin and never on a command line", () => {
    const tests = of("command:local:Command", "listening");
    expect(tests).toHaveLength(2);
    for (const [i, test] of tests.entries()) {
      // With the client key in it, the whole environment is a secret (stored encrypted); the program is not.
      const proof: string = test.inputs.environment.value.PROOF;
      expect(proof).toContain('bk_material | kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} exec -i -n "$NAMESPACE"');
      expect(proof).toContain(`--addr tcp://buildkitd-${i}.buildkitd.buildkit-ci.svc:1235 --tlscacert`);
      expect(proof).not.toMatch(/PEM/);
      // The client key makes the whole environment a secret (stored encrypted).
      expect(test.inputs.environment).toMatchObject({
        [SECRET_SIG]: SECRET_VALUE,
        value: expect.objectContaining({ BK_CA: "CA PEM", BK_CERT: "CLIENT CERT PEM", BK_KEY: "CLIENT KEY PEM" }),
      });
    }
  });

  it("gives each replica's in-cluster TCP address beside its kube-pod:// endpoint", async () => {
    expect((await promiseOf(listening.endpoints)).map((e) => e.tcpHost)).toEqual([
      "tcp://buildkitd-0.buildkitd.buildkit-ci.svc:1235",
      "tcp://buildkitd-1.buildkitd.buildkit-ci.svc:1235",
    ]);
  });

  it("lets the rootless daemon (uid 1000) read its material", async () => {
    const rootless = new BuildkitCluster("rootless-tls", { ...settings, rootless: true, tcpPort: 1234, tls });
    await promiseOf(rootless.smokeTestSummaries);
    const [sts] = of("kubernetes:apps/v1:StatefulSet", "rootless-tls");
    expect(sts.inputs.spec.template.spec.volumes).toContainEqual({ name: "tls", secret: { secretName: "rootless-tls-tls-def456", defaultMode: 0o444 } });
  });
});

describe("the wait before each proof", () => {
  /**
   * What the fake cluster holds besides the pods: cache volumes (claim → phase, class, the volume it bound), the class
   * the StatefulSet's template asks for ("" for the default), StorageClasses ("name" or "name default"), a claim's last event.
   */
  interface FakeVolumes {
    claims?: Record<string, { phase: string; storageClass: string; volumeName?: string }>;
    templateClass?: string;
    storageClasses?: string[];
    event?: string;
  }
  /**
   * Runs the wait against a fake kubectl: `rollout status` answers `rolled` (and succeeds once a claim was deleted),
   * `get pods` prints `report` (tab-separated). `grace` × the replicas `get statefulset` reports (2), plus the base:
   * the wait's bound; a negative grace makes it already past. `deleted`: what the wait deleted, in order.
   */
  function wait(rolled: boolean, report: string[], grace = 30, volumes: FakeVolumes = {}): { code: number | null; stderr: string; ms: number; deleted: string[] } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bkc-wait-"));
    try {
      fs.writeFileSync(path.join(dir, "report"), report.join("\n") + "\n");
      for (const [claim, { phase, storageClass, volumeName }] of Object.entries(volumes.claims ?? {})) {
        fs.writeFileSync(path.join(dir, `pvc-${claim}`), `${phase}\t${storageClass}\t${volumeName ?? ""}\t`);
      }
      fs.writeFileSync(path.join(dir, "classes"), (volumes.storageClasses ?? []).map((c) => `${c}\n`).join(""));
      fs.writeFileSync(path.join(dir, "deleted"), "");
      fs.writeFileSync(
        path.join(dir, "kubectl"),
        [
          "#!/bin/sh",
          'case "$*" in',
          `  *rollout*) [ -s ${dir}/deleted ] && exit 0; exit ${rolled ? 0 : 1};;`,
          `  *"get pods"*) cat ${dir}/report;;`,
          `  *"get statefulset"*volumeClaimTemplates*) printf '%s' '${volumes.templateClass ?? ""}';;`,
          "  *\"get statefulset\"*) echo 2;;",
          `  *"get pvc"*) cat ${dir}/pvc-$3 2>/dev/null || { echo "Error from server (NotFound): persistentvolumeclaims \\"$3\\" not found" >&2; exit 1; };;`,
          `  *"get storageclass -o"*) awk '{ printf "%s %s\\n", $1, ($2 == "default" ? "true" : "") }' ${dir}/classes;;`,
          `  *"get storageclass"*) grep -q "^$3\\( \\|$\\)" ${dir}/classes || { echo "Error from server (NotFound): storageclasses.storage.k8s.io \\"$3\\" not found" >&2; exit 1; };;`,
          `  *"get events"*) printf '%s' '${volumes.event ?? ""}';;`,
          `  *delete*) echo "$2 $3" >> ${dir}/deleted;;`,
          "esac",
        ].join("\n") + "\n",
        { mode: 0o755 },
      );
      const started = Date.now();
      const env = { ...process.env, PATH: `${dir}:${process.env.PATH}`, NAMESPACE: "bk", STATEFULSET: "buildkitd", SELECTOR: "app=bk", GRACE_SECONDS: String(grace) };
      const result = spawnSync("sh", ["-c", rollWaitScript("kubectl")], { env, encoding: "utf8", timeout: 60_000 });
      const deleted = fs.readFileSync(path.join(dir, "deleted"), "utf8").split("\n").filter(Boolean);
      return { code: result.status, stderr: result.stderr, ms: Date.now() - started, deleted };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  it("returns at once when the roll is done", () => {
    expect(wait(true, [])).toMatchObject({ code: 0, stderr: "" });
  });

  it("stops at once on a replica whose image cannot be pulled, naming it, the reason and the fix", () => {
    const result = wait(false, ["buildkitd-0\tTrue\t\t\t", "buildkitd-1\tFalse\tImagePullBackOff\tBack-off pulling image \"moby/buildkit:v0.0.0\"\t"], 600);
    expect(result.code).toBe(1);
    expect(result.ms).toBeLessThan(20_000);
    expect(result.stderr).toBe(
      [
        "the replicas of StatefulSet buildkitd in namespace bk are not all Ready (and waiting does not help):",
        '  replica buildkitd-1: ImagePullBackOff: Back-off pulling image "moby/buildkit:v0.0.0"',
        "fix: see kubectl -n bk describe pod <replica>; correct the stack config (the image, memory, cpus) and run up again",
        "",
      ].join("\n"),
    );
  });

  it("stops at once on a replica no node can take, and gives up on a slow one at its bound", () => {
    const unschedulable = wait(false, ["buildkitd-1\tFalse\t\t\t0/1 nodes are available: 1 Insufficient cpu."], 600);
    expect(unschedulable.code).toBe(1);
    expect(unschedulable.stderr).toContain("  replica buildkitd-1: not Ready: 0/1 nodes are available: 1 Insufficient cpu.");
    const slow = wait(false, ["buildkitd-0\tFalse\t\t\t"], -300);
    expect(slow.code).toBe(1);
    expect(slow.stderr).toContain("  replica buildkitd-0: not Ready\n");
    expect(slow.stderr).not.toContain("waiting does not help");
  });

  it("stops at once on a cache volume whose StorageClass does not exist, naming the replica, the volume, the class and the classes there are", () => {
    const unschedulable = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
    const result = wait(false, ["buildkitd-0\tFalse\t\t\t" + unschedulable, "buildkitd-1\tFalse\t\t\t"], 600, {
      claims: { "cache-buildkitd-0": { phase: "Pending", storageClass: "fast" }, "cache-buildkitd-1": { phase: "Pending", storageClass: "fast" } },
      templateClass: "fast",
      storageClasses: ["local-path default", "slow"],
    });
    expect(result.code).toBe(1);
    expect(result.ms).toBeLessThan(20_000);
    expect(result.stderr).toBe(
      [
        "the replicas of StatefulSet buildkitd in namespace bk are not all Ready (and waiting does not help):",
        `  replica buildkitd-0: not Ready: ${unschedulable}`,
        "  replica buildkitd-1: not Ready",
        '  replica buildkitd-0: its cache volume cache-buildkitd-0 is Pending: StorageClass "fast" does not exist',
        '  replica buildkitd-1: its cache volume cache-buildkitd-1 is Pending: StorageClass "fast" does not exist',
        "fix: set buildkit:storageClass to a StorageClass of this cluster (local-path (default), slow), or remove it for the cluster's default one; then run up again",
        "",
      ].join("\n"),
    );
  });

  it("stops at once on a cache volume with no StorageClass on a cluster without a default one", () => {
    const result = wait(false, ["buildkitd-0\tFalse\t\t\t"], 600, { claims: { "cache-buildkitd-0": { phase: "Pending", storageClass: "" } } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("  replica buildkitd-0: its cache volume cache-buildkitd-0 is Pending: it names no StorageClass and the cluster has no default one\n");
    expect(result.stderr).toContain("fix: set buildkit:storageClass to a StorageClass of this cluster (it has none: ask its administrator for one)");
  });

  it("waits on a volume Pending on a class that exists (it binds when its pod is scheduled), and names its last event at the bound", () => {
    const result = wait(false, ["buildkitd-0\tFalse\t\t\t"], -300, {
      claims: { "cache-buildkitd-0": { phase: "Pending", storageClass: "local-path" } },
      storageClasses: ["local-path default"],
      event: "waiting for first consumer to be created before binding",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).not.toContain("waiting does not help");
    expect(result.stderr).toContain('  replica buildkitd-0: its cache volume cache-buildkitd-0 is Pending: StorageClass "local-path": waiting for first consumer to be created before binding\n');
    expect(result.stderr).toContain("fix: see kubectl -n bk describe pod <replica>");
  });

  it("deletes a claim made for a missing class that never bound, with its pod, once the StatefulSet asks for another class, and waits on", () => {
    // A protected cache keeps its claims when the StatefulSet is replaced: the corrected template's replica got the old claim back.
    const leftover = { "cache-buildkitd-0": { phase: "Pending", storageClass: "fast" } };
    const result = wait(false, ["buildkitd-0\tFalse\t\t\t0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."], 600, {
      claims: leftover,
      templateClass: "",
      storageClasses: ["local-path default"],
    });
    expect(result).toMatchObject({ code: 0, deleted: ["pvc cache-buildkitd-0", "pod buildkitd-0"] });
    expect(result.stderr).toBe(
      'replica buildkitd-0: its cache volume cache-buildkitd-0 was made for StorageClass "fast", which does not exist, and never bound (it holds nothing): ' +
        'deleted with the pod, the StatefulSet makes both again on StorageClass "local-path"\n',
    );
    // The class the template asks for is the missing one (the first up): reported, nothing deleted.
    expect(wait(false, ["buildkitd-0\tFalse\t\t\t"], 600, { claims: leftover, templateClass: "fast", storageClasses: ["local-path default"] })).toMatchObject({ code: 1, deleted: [] });
    // A claim that bound once holds a cache: never deleted.
    const bound = { "cache-buildkitd-0": { phase: "Pending", storageClass: "fast", volumeName: "pv-1" } };
    expect(wait(false, ["buildkitd-0\tFalse\t\t\t"], 600, { claims: bound, storageClasses: ["local-path default"] })).toMatchObject({ code: 1, deleted: [] });
  });
});

describe("the preStop drain", () => {
  /** Runs the drain against a fake buildctl that reports `records` one listing per call, then the last one forever. */
  function drain(listings: string[]): { code: number | null; calls: number } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bkc-drain-"));
    try {
      listings.forEach((listing, i) => fs.writeFileSync(path.join(dir, `listing-${i}`), listing));
      const count = path.join(dir, "count");
      fs.writeFileSync(count, "0");
      fs.writeFileSync(
        path.join(dir, "buildctl"),
        `#!/bin/sh\nn=$(cat ${count}); echo $((n + 1)) > ${count}\nlast=${listings.length - 1}\n[ "$n" -gt "$last" ] && n=$last\ncat ${dir}/listing-$n\n`,
        { mode: 0o755 },
      );
      const result = spawnSync("sh", ["-c", drainScript("unix:///run/buildkit/buildkitd.sock")], { env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, timeout: 30_000 });
      return { code: result.status, calls: Number(fs.readFileSync(count, "utf8")) };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const HEADER = "TYPE\t\tREF\t\tCREATED\t\tCOMPLETED\t\tGENERATION\tPINNED\n";

  it("returns at once when every build record is complete", () => {
    expect(drain([HEADER + "COMPLETE\tref1\t2026-12-07T10:08:58Z\t2026-12-07T10:08:58Z\t0\t\n"])).toEqual({ code: 0, calls: 1 });
  });

  it("waits while a build is still running, and returns once it completed", () => {
    const running = HEADER + "COMPLETE\tref1\tt\tt\t0\t\nSTARTED\tref2\tt\t\t0\t\n";
    const done = HEADER + "COMPLETE\tref1\tt\tt\t0\t\nCOMPLETE\tref2\tt\tt\t0\t\n";
    expect(drain([running, running, done])).toEqual({ code: 0, calls: 3 });
  });
});
