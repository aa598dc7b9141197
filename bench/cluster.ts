/**
 * The cluster peer (part of `npm run bench -- --only peers`): time to N=2
 * replicas on the local Kubernetes cluster, ours against buildx's kubernetes
 * driver, same cluster, same image, same requests and limits, each run in a
 * namespace of its own.
 *
 * - ours: `pulumi up` of a copy of the program with Pulumi.cluster.yaml,
 *   until it returns: both replicas Ready *and* each proven by a real build
 *   through its own pod (our smoke tests), then `pulumi destroy`.
 * - buildx: `docker buildx create --driver kubernetes --driver-opt
 *   replicas=2,… --bootstrap` until it returns (buildx waits for its pods to
 *   be ready, no build), then `docker buildx rm`.
 *
 * Printed as `ratio cluster-up/buildx-kubernetes <median>`; lower is better
 * for us, and ours does strictly more (a build per replica).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { DEFAULT_IMAGE } from "../components/core/buildkitd";
import { copyProgram } from "../runtime/program-files";
import { buildxDockerConfig, exec, log, mustExec, onCleanup, repoRoot, Result, tempDir } from "./lib";
import type { Series, Target } from "./report";

type Add = (part: string, label: string, unit: Series["unit"], samples: number[], extra?: { target?: Target; note?: string }) => void;

const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const KUBECONFIG = path.join(cache, "cluster", "kubeconfig");
const REPLICAS = 2;
/** What Pulumi.cluster.yaml gives each replica, given to buildx's pods too. */
const RESOURCES = "requests.cpu=500m,limits.cpu=500m,requests.memory=1Gi,limits.memory=1Gi";

async function timed(run: () => Promise<Result>): Promise<number> {
  const started = process.hrtime.bigint();
  const result = await run();
  if (result.code !== 0) throw new Error(`exited ${result.code}: ${result.stderr.slice(-2000)}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export async function partClusterPeer(runs: number, add: Add): Promise<void> {
  const env = { ...process.env, KUBECONFIG };
  const ready = await exec("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) throw new Error(`the local cluster does not answer (${ready.stderr.trim()}); run: sudo bash scripts/provision/cluster.sh up`);
  const kubectl = (args: string[]) => mustExec("kubectl", args, { env });

  // Our program as `npm run up -- cluster` deploys it, from a copy with its own backend.
  const dir = tempDir("cluster-peer");
  copyProgram(dir);
  const stackFile = fs.readFileSync(path.join(repoRoot, "Pulumi.cluster.yaml"), "utf8").replace(/^encryptionsalt:.*\n/m, "");
  fs.writeFileSync(path.join(dir, "Pulumi.bench.yaml"), stackFile);
  const pulumiEnv = { ...env, PULUMI_BACKEND_URL: `file://${path.join(dir, ".state")}`, PULUMI_CONFIG_PASSPHRASE: "bench" };
  fs.mkdirSync(path.join(dir, ".state"));
  const pulumi = (args: string[]) => exec("pulumi", [...args, "--stack", "bench", "--non-interactive"], { cwd: dir, env: pulumiEnv, boundSeconds: 900 });
  await mustExec("pulumi", ["stack", "init", "bench", "--non-interactive"], { cwd: dir, env: pulumiEnv });
  onCleanup("cluster peer stack", async () => {
    await pulumi(["destroy", "--yes", "--skip-preview"]);
  });
  const buildxEnv = { ...env, DOCKER_CONFIG: buildxDockerConfig("cluster-buildx-config") };

  const ours: number[] = [];
  const buildx: number[] = [];
  for (let run = 1; run <= runs; run++) {
    const namespace = `bench-cluster-${process.pid}-${run}`;
    await mustExec("pulumi", ["config", "set", "buildkit:namespace", namespace, "--stack", "bench"], { cwd: dir, env: pulumiEnv });
    ours.push(await timed(() => pulumi(["up", "--yes", "--skip-preview"])));
    const destroyed = await pulumi(["destroy", "--yes", "--skip-preview"]);
    if (destroyed.code !== 0) throw new Error(`pulumi destroy failed: ${destroyed.stderr.slice(-2000)}`);

    const peerNamespace = `bench-buildx-${process.pid}-${run}`;
    const builder = `bench-buildx-${process.pid}-${run}`;
    await kubectl(["create", "namespace", peerNamespace]);
    const removeBuilder = onCleanup(`buildx builder ${builder}`, async () => {
      await exec("docker", ["buildx", "rm", builder], { env: buildxEnv });
      await exec("kubectl", ["delete", "namespace", peerNamespace, "--wait=false"], { env });
    });
    buildx.push(
      await timed(() =>
        exec(
          "docker",
          ["buildx", "create", "--name", builder, "--driver", "kubernetes", "--driver-opt", `replicas=${REPLICAS},namespace=${peerNamespace},image=${DEFAULT_IMAGE},${RESOURCES}`, "--bootstrap"],
          { env: buildxEnv, boundSeconds: 300 },
        ),
      ),
    );
    await exec("docker", ["buildx", "rm", builder], { env: buildxEnv });
    await exec("kubectl", ["delete", "namespace", peerNamespace, "--wait=false"], { env });
    removeBuilder();
    log(`cluster peer run ${run}: ours ${ours[run - 1].toFixed(1)} s, buildx kubernetes ${buildx[run - 1].toFixed(1)} s`);
  }
  add("PEERS", "cluster: pulumi up to 2 proven replicas (Pulumi.cluster.yaml)", "s", ours, {
    note: "returns once both pods are Ready and a real build went through each (the smoke tests)",
  });
  add("PEERS", "cluster: docker buildx create --driver kubernetes replicas=2 --bootstrap", "s", buildx, { note: "returns once its 2 pods are ready; no build" });
  add("PEERS", "ratio cluster-up/buildx-kubernetes", "x", ours.map((o, i) => o / buildx[i]), { target: { op: "<=", value: 1.0 } });
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  console.log(`ratio cluster-up/buildx-kubernetes ${median(ours.map((o, i) => o / buildx[i])).toFixed(2)} target 1.0`);
}
