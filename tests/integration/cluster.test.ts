/**
 * The local Kubernetes cluster (scripts/provision/cluster.sh, docs/local-cluster.md)
 * is a real one, of the kind the Kubernetes target deploys to: its node is
 * Ready at the pinned version on containerd; a PVC on the default StorageClass
 * is provisioned dynamically and a pod's writes land on the node's disk; a
 * privileged moby/buildkit pod, pulled under its Docker Hub name through the
 * local mirror, answers buildctl through `kubectl exec` and through buildctl's
 * own kube-pod:// helper, and builds from a base image it pulls from the
 * mirror at the pod network's gateway; one pod reaches another by its name
 * under a headless Service (cluster DNS); and the real Pulumi Kubernetes
 * provider, at the version the npm SDK asks for, creates, previews clean,
 * and destroys. `cluster.sh up` run again on the running cluster changes
 * nothing. Everything the file creates lives in namespaces of its own,
 * deleted at the end. Without a cluster it fails, with the fix.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import * as k8s from "@pulumi/kubernetes";
import { LocalWorkspace } from "@pulumi/pulumi/automation";

import { CommandResult, mustRun, repoRoot, run, waitFor, writeBuildContext } from "./harness";

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const setting = (name: string) => new RegExp(`^${name}="([^"]+)"`, "m").exec(versions)![1];
const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };

const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const kubeconfig = path.join(cache, "cluster", "kubeconfig");
const gateway = setting("CLUSTER_GATEWAY");
const nodeName = setting("CLUSTER_NODE_NAME");
const registryPort = /^REGISTRY_PORT="\$\{BUILDKIT_STACK_REGISTRY_PORT:-(\d+)\}"/m.exec(versions)![1];
const buildkitImage = `moby/buildkit:${setting("BUILDKIT_VERSION")}`;
const suffix = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const namespace = `bkc-it-${suffix}`;
/** kubectl and buildctl's kube-pod:// helper (which runs kubectl) read the cluster from here. */
const env = { ...process.env, KUBECONFIG: kubeconfig };

function kubectl(args: string[], input?: string): CommandResult {
  return run("kubectl", args, { env, input, timeoutMs: 5 * 60 * 1000 });
}
function mustKubectl(args: string[], input?: string): string {
  return mustRun("kubectl", args, { env, input, timeoutMs: 5 * 60 * 1000 });
}
/** Applies objects (JSON is YAML) in the test's namespace. */
function apply(...items: object[]): void {
  mustKubectl(["apply", "-n", namespace, "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
}
/** A pod's phase once it has finished (Succeeded or Failed), with its logs. */
async function finished(pod: string, boundMs = 3 * 60 * 1000): Promise<{ phase: string; logs: string }> {
  const phase = await waitFor(`pod ${pod} to finish`, boundMs, () => {
    const p = kubectl(["get", "pod", "-n", namespace, pod, "-o", "jsonpath={.status.phase}"]).stdout.trim();
    return p === "Succeeded" || p === "Failed" ? p : undefined;
  });
  return { phase, logs: kubectl(["logs", "-n", namespace, pod]).stdout };
}
/** A pod that runs `script` once in busybox (a Docker Hub name: pulled through the mirror). */
function busyboxPod(name: string, script: string, container: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels: { app: name } },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1,
      containers: [{ name: "main", image: "busybox:latest", command: ["sh", "-c", script], ...container }],
      ...spec,
    },
  };
}

jest.setTimeout(10 * 60 * 1000);

beforeAll(() => {
  const readyz = run("kubectl", ["get", "--raw", "/readyz"], { env, timeoutMs: 30 * 1000 });
  if (readyz.code !== 0 || readyz.stdout.trim() !== "ok") {
    throw new Error(
      `No Kubernetes cluster answers through ${kubeconfig} (kubectl get --raw /readyz: ${(readyz.stdout + readyz.stderr).trim() || `exit ${readyz.code}`}). ` +
        "Run `bash scripts/provision/cluster.sh up` (as root; it builds and starts the local cluster, docs/local-cluster.md), then re-run.",
    );
  }
  mustKubectl(["create", "namespace", namespace]);
});

afterAll(async () => {
  // Pods, the Service and the PVC go with the namespace; the provisioner then
  // deletes the volume (reclaim policy Delete), which is waited for too.
  const volumes = kubectl(["get", "pv", "-o", `jsonpath={.items[?(@.spec.claimRef.namespace=="${namespace}")].metadata.name}`]).stdout.trim();
  kubectl(["delete", "namespace", namespace, "--wait=true", "--timeout=180s"]);
  for (const pv of volumes.split(/\s+/).filter(Boolean)) {
    await waitFor(`volume ${pv} to be deleted`, 120 * 1000, () => kubectl(["get", "pv", pv]).code !== 0 || undefined);
  }
});

describe("the local cluster", () => {
  it(`has its node Ready at Kubernetes ${setting("KUBERNETES_VERSION")} on containerd ${setting("CONTAINERD_VERSION")}`, () => {
    const node = JSON.parse(mustKubectl(["get", "node", nodeName, "-o", "json"])) as {
      status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string; containerRuntimeVersion: string }; addresses: { type: string; address: string }[] };
    };
    expect(node.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(node.status.nodeInfo.kubeletVersion).toBe(setting("KUBERNETES_VERSION"));
    expect(node.status.nodeInfo.containerRuntimeVersion).toBe(`containerd://${setting("CONTAINERD_VERSION").replace(/^v/, "")}`);
    expect(node.status.addresses).toContainEqual({ type: "InternalIP", address: gateway });
    expect(mustKubectl(["version", "-o", "json"])).toContain(`"gitVersion": "${setting("KUBERNETES_VERSION")}"`);
  });

  it("evicts only when the shared disk is really full (2 %), not at the kubelet's default 15 %", () => {
    const configz = JSON.parse(mustKubectl(["get", "--raw", `/api/v1/nodes/${nodeName}/proxy/configz`])) as { kubeletconfig: { evictionHard: Record<string, string> } };
    expect(configz.kubeletconfig.evictionHard).toMatchObject({ "nodefs.available": "2%", "imagefs.available": "2%" });
  });

  it("is what `cluster.sh env` points at, and a second `cluster.sh up` restarts nothing", () => {
    const script = path.join(repoRoot, "scripts/provision/cluster.sh");
    expect(mustRun("bash", [script, "env"]).trim()).toBe(`export KUBECONFIG=${kubeconfig}`);
    const daemons = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "kube-proxy"];
    const pids = () => daemons.map((d) => fs.readFileSync(path.join("/run/buildkit-stack/cluster", `${d}.pid`), "utf8").split(" ")[0]);
    const before = pids();
    // No daemon holds cluster.sh's own lock (they were started without its open files): a second up does not wait.
    expect(run("flock", ["-n", path.join(cache, "cluster", "cluster.lock"), "true"]).code).toBe(0);
    const up = run("bash", [script, "up"], { timeoutMs: 5 * 60 * 1000 });
    expect({ code: up.code, stderr: up.code === 0 ? "" : up.stderr }).toEqual({ code: 0, stderr: "" });
    for (const d of daemons) expect(up.stderr).toContain(`[cluster/${d}] ${d} is running (pid `);
    expect(up.stderr).not.toMatch(/starting|restarting|building|importing|issuing/);
    expect(pids()).toEqual(before);
  });

  it("binds a PVC on the default StorageClass, dynamically, and a pod's writes land on the node's disk", async () => {
    const token = `written-${suffix}`;
    apply(
      { apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: { name: "data" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "64Mi" } } } },
      busyboxPod(
        "writer",
        `echo ${token} > /data/token && cat /data/token`,
        { volumeMounts: [{ name: "data", mountPath: "/data" }] },
        { volumes: [{ name: "data", persistentVolumeClaim: { claimName: "data" } }] },
      ),
    );
    expect(await finished("writer")).toEqual({ phase: "Succeeded", logs: `${token}\n` });

    const claim = JSON.parse(mustKubectl(["get", "pvc", "-n", namespace, "data", "-o", "json"])) as { spec: { storageClassName: string; volumeName: string }; status: { phase: string } };
    expect(claim.status.phase).toBe("Bound");
    expect(claim.spec.storageClassName).toBe("local-path");
    const volume = JSON.parse(mustKubectl(["get", "pv", claim.spec.volumeName, "-o", "json"])) as { spec: { hostPath?: { path: string }; local?: { path: string } } };
    const hostPath = volume.spec.hostPath?.path ?? volume.spec.local?.path;
    expect(hostPath).toBeDefined();
    expect(fs.readFileSync(path.join(hostPath!, "token"), "utf8")).toBe(`${token}\n`);
  });

  it(`runs ${buildkitImage} privileged, pulled through the mirror; buildctl answers through kubectl exec and kube-pod://, and builds from the mirror`, async () => {
    const mirror = `${gateway}:${registryPort}`;
    apply(
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "buildkitd" },
        data: { "buildkitd.toml": `[registry."docker.io"]\nmirrors = ["${mirror}"]\n[registry."${mirror}"]\nhttp = true\ninsecure = true\n` },
      },
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "buildkitd", labels: { app: "buildkitd" } },
        spec: {
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: "buildkitd",
              image: buildkitImage,
              securityContext: { privileged: true },
              readinessProbe: { exec: { command: ["buildctl", "debug", "workers"] }, periodSeconds: 2 },
              volumeMounts: [{ name: "config", mountPath: "/etc/buildkit" }],
            },
          ],
          volumes: [{ name: "config", configMap: { name: "buildkitd" } }],
        },
      },
    );
    mustKubectl(["wait", "-n", namespace, "--for=condition=Ready", "pod/buildkitd", "--timeout=300s"]);
    const image = mustKubectl(["get", "pod", "-n", namespace, "buildkitd", "-o", "jsonpath={.status.containerStatuses[0].image}"]).trim();
    expect(image).toBe(`docker.io/${buildkitImage}`);

    const viaExec = mustKubectl(["exec", "-n", namespace, "buildkitd", "--", "buildctl", "debug", "workers"]);
    expect(viaExec).toMatch(/linux\/amd64/);
    const host = `kube-pod://buildkitd?namespace=${namespace}`;
    const viaHelper = mustRun("buildctl", ["--addr", host, "debug", "workers"], { env });
    expect(viaHelper).toMatch(/linux\/amd64/);
    expect(viaHelper.split("\n")[1]?.split(/\s+/)[0]).toBe(viaExec.split("\n")[1]?.split(/\s+/)[0]);

    const context = writeBuildContext(`FROM busybox:latest\nRUN echo ${suffix} > /built\n`);
    try {
      const build = run("buildctl", ["--addr", host, "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${context}`, "--local", `dockerfile=${context}`], { env });
      expect({ code: build.code, stderr: build.code === 0 ? "" : build.stderr }).toEqual({ code: 0, stderr: "" });
      expect(build.stderr).toMatch(/load metadata for docker\.io\/library\/busybox:latest/);
    } finally {
      fs.rmSync(context, { recursive: true, force: true });
    }
  });

  it("resolves a pod by its name under a headless Service, and reaches it", async () => {
    const token = `served-${suffix}`;
    apply(
      { apiVersion: "v1", kind: "Service", metadata: { name: "peers" }, spec: { clusterIP: "None", selector: { app: "server" }, ports: [{ name: "http", port: 8080 }] } },
      {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "server", labels: { app: "server" } },
        spec: {
          hostname: "server-0",
          subdomain: "peers",
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: "main",
              image: "busybox:latest",
              command: ["sh", "-c", `mkdir -p /www && echo ${token} > /www/index.html && exec httpd -f -p 8080 -h /www`],
              readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    );
    mustKubectl(["wait", "-n", namespace, "--for=condition=Ready", "pod/server", "--timeout=180s"]);
    const serverIp = mustKubectl(["get", "pod", "-n", namespace, "server", "-o", "jsonpath={.status.podIP}"]).trim();
    const name = `server-0.peers.${namespace}.svc.cluster.local`;
    apply(busyboxPod("client", `nslookup ${name} && wget -qO- http://${name}:8080/`));
    const { phase, logs } = await finished("client");
    expect({ phase, logs }).toEqual({ phase: "Succeeded", logs: expect.stringContaining(`${token}\n`) });
    expect(logs).toMatch(new RegExp(`Name:\\s+${name.replace(/\./g, "\\.")}\\s+Address:\\s+${serverIp.replace(/\./g, "\\.")}\\s`));
  });

  it(`deploys through the Pulumi Kubernetes provider ${pkg.dependencies["@pulumi/kubernetes"]}: creates, previews clean, destroys`, async () => {
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "bkc-pulumi-"));
    const pulumiNamespace = `bkc-it-pulumi-${suffix}`;
    const stackName = "cluster-it";
    const program = async () => {
      const provider = new k8s.Provider("local", { kubeconfig: fs.readFileSync(kubeconfig, "utf8") });
      const ns = new k8s.core.v1.Namespace("ns", { metadata: { name: pulumiNamespace } }, { provider });
      const cm = new k8s.core.v1.ConfigMap("settings", { metadata: { name: "settings", namespace: ns.metadata.name }, data: { token: suffix } }, { provider });
      return { configMap: cm.metadata.name };
    };
    const stack = await LocalWorkspace.createStack(
      { stackName, projectName: "bkc-cluster-it", program },
      {
        workDir,
        projectSettings: { name: "bkc-cluster-it", runtime: "nodejs", backend: { url: `file://${workDir}` } },
        envVars: { PULUMI_BACKEND_URL: `file://${workDir}`, PULUMI_CONFIG_PASSPHRASE: "integration-tests" },
      },
    );
    try {
      const up = await stack.up({ onOutput: () => undefined });
      expect(up.summary.result).toBe("succeeded");
      expect(up.summary.resourceChanges).toEqual({ create: 4 }); // stack, provider, namespace, config map
      expect(mustKubectl(["get", "configmap", "-n", pulumiNamespace, "settings", "-o", "jsonpath={.data.token}"])).toBe(suffix);

      // The engine ran the provider at the version the SDK asked for.
      const state = (await stack.exportStack()).deployment as { resources: { type: string; inputs?: { version?: string } }[] };
      const provider = state.resources.find((r) => r.type === "pulumi:providers:kubernetes");
      expect(provider?.inputs?.version).toBe(pkg.dependencies["@pulumi/kubernetes"]);

      const preview = await stack.preview({ onOutput: () => undefined });
      expect(preview.changeSummary).toEqual({ same: 4 });

      const destroy = await stack.destroy({ onOutput: () => undefined });
      expect(destroy.summary.result).toBe("succeeded");
      expect(kubectl(["get", "namespace", pulumiNamespace]).code).not.toBe(0);
    } finally {
      await stack.destroy({ onOutput: () => undefined }).catch(() => undefined);
      await stack.workspace.removeStack(stackName).catch(() => undefined);
      kubectl(["delete", "namespace", pulumiNamespace, "--ignore-not-found", "--wait=true", "--timeout=120s"]);
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  });
});
