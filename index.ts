// Stack configuration → BuildkitStack (one host), BuildkitFleet (buildkit:hosts) or BuildkitCluster
// (buildkit:kubeconfig) → stack outputs.
import * as pulumi from "@pulumi/pulumi";

import { ConfigError } from "./components/core/config-keys";
import { BuildkitFleet } from "./components/docker/buildkit-fleet";
import { BuildkitStack } from "./components/docker/buildkit-stack";
import { loadDockerSettings } from "./components/docker/config";
import { DockerEngine } from "./components/docker/docker-engine";
import { activeContextHost, engineApiVersion } from "./components/docker/engine-probe";
import { loadFleetSettings } from "./components/docker/fleet-config";
import { BuildkitCluster } from "./components/kubernetes/buildkit-cluster";
import { clusterPreflightProblems, clusterRefusal, kubectlAsker } from "./components/kubernetes/cluster-preflight";
import { isClusterConfig, loadClusterSettings } from "./components/kubernetes/config";

function orExit<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    // A RunError prints just the message: the list of config problems, no stack trace.
    if (error instanceof ConfigError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

function singleHost(): BuildkitStack {
  const settings = orExit(loadDockerSettings);
  // The engine's API version decides the healthcheck's fields (components/docker/engine-probe.ts).
  // With neither buildkit:dockerHost nor DOCKER_HOST, the provider would take the default socket while the
  // docker CLI of the smoke test follows an active docker context: name the context's engine for both.
  const host = settings.dockerHost ?? activeContextHost();
  const engine = new DockerEngine("docker-host", { host, tls: settings.dockerTls, apiVersion: engineApiVersion(host, settings.dockerTls), askEngine: true });
  return new BuildkitStack("buildkit", { ...settings, engine });
}

/**
 * A cluster's daemons, declared only once its API server has answered (components/kubernetes/cluster-preflight.ts):
 * a cluster that does not answer is the program's one error, naming the key and the fix, and nothing is declared.
 */
async function clusterOutputs(): Promise<StackOutputs> {
  const settings = orExit(loadClusterSettings);
  const problems = await clusterPreflightProblems(settings, kubectlAsker(settings));
  if (problems.length > 0) throw new pulumi.RunError(clusterRefusal(problems));
  const cluster = new BuildkitCluster("buildkit", settings);
  return { fleetEndpoints: cluster.endpoints, fleetSmokeTests: cluster.smokeTestSummaries, kubeconfig: cluster.kubeconfig, namespace: cluster.namespaceName };
}

// A cluster stack is one that says where its cluster is; every other stack deploys to Docker.
const isCluster = isClusterConfig(pulumi.runtime.allConfig());
// Without buildkit:hosts the program declares exactly what it always has (same names, same URNs).
const fleetHosts = isCluster ? undefined : orExit(loadFleetSettings);
const fleet = fleetHosts ? new BuildkitFleet("buildkit", { hosts: fleetHosts, askEngines: true }) : undefined;
const buildkit = isCluster || fleetHosts ? undefined : singleHost();

/**
 * The stack's outputs. Only those of the stack's kind are exported: an output
 * left undefined makes Pulumi warn on every preview and up.
 */
interface StackOutputs {
  /** Paste into a shell: `export BUILDKIT_HOST=<this>`. */
  buildkitHost?: pulumi.Output<string>;
  containerName?: pulumi.Output<string>;
  containerId?: pulumi.Output<string>;
  imageRepoDigest?: pulumi.Output<string>;
  cacheVolumeName?: pulumi.Output<string>;
  networkName?: pulumi.Output<string>;
  smokeTestSummary?: pulumi.Output<string>;
  /**
   * A fleet's hosts in roll order (name, BUILDKIT_HOST and, where needed, DOCKER_HOST), or a cluster's
   * replicas (pod name, kube-pod:// BUILDKIT_HOST): what `npm run route` spreads builds over.
   */
  fleetEndpoints?: BuildkitFleet["endpoints"] | BuildkitCluster["endpoints"];
  /**
   * Each fleet host as a buildx remote-driver node: listener, platforms, mTLS client material
   * (secret). `npm run buildx` turns it into `docker buildx create … --append` lines.
   */
  fleetBuildxNodes?: BuildkitFleet["buildxNodes"];
  /** Each fleet host's (or cluster replica's) smoke test result, by host (pod) name. */
  fleetSmokeTests?: pulumi.Output<Record<string, string>>;
  /** A cluster stack's kubeconfig: `export KUBECONFIG=<this>` before using a kube-pod:// endpoint. */
  kubeconfig?: string;
  /** A cluster stack's namespace. */
  namespace?: pulumi.Output<string>;
}

function outputsOf(): StackOutputs {
  if (fleet) {
    return {
      fleetEndpoints: fleet.endpoints,
      fleetBuildxNodes: fleet.buildxNodes,
      fleetSmokeTests: pulumi.all(Object.fromEntries(fleet.stacks.map((stack, index) => [fleetHosts![index].name, stack.smokeTestSummary]))),
    };
  }
  const stack = buildkit!;
  return {
    buildkitHost: stack.buildkitHost,
    containerName: stack.containerName,
    containerId: stack.containerId,
    imageRepoDigest: stack.imageRepoDigest,
    cacheVolumeName: stack.cacheVolumeName,
    networkName: stack.networkName,
    smokeTestSummary: stack.smokeTestSummary,
  };
}

// A cluster stack's outputs come once its cluster has answered; the Pulumi runtime awaits them.
export = isCluster ? clusterOutputs() : outputsOf();
