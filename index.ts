// Stack configuration → BuildkitStack (one host) or BuildkitFleet (buildkit:hosts) → stack outputs.
import * as pulumi from "@pulumi/pulumi";

import { ConfigError } from "./components/core/config-keys";
import { BuildkitFleet } from "./components/docker/buildkit-fleet";
import { BuildkitStack } from "./components/docker/buildkit-stack";
import { loadDockerSettings } from "./components/docker/config";
import { DockerEngine } from "./components/docker/docker-engine";
import { engineApiVersion } from "./components/docker/engine-probe";
import { loadFleetSettings } from "./components/docker/fleet-config";

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
  const engine = new DockerEngine("docker-host", { host: settings.dockerHost, apiVersion: engineApiVersion(settings.dockerHost) });
  return new BuildkitStack("buildkit", { ...settings, engine });
}

// Without buildkit:hosts the program declares exactly what it always has (same names, same URNs).
const fleetHosts = orExit(loadFleetSettings);
const fleet = fleetHosts ? new BuildkitFleet("buildkit", { hosts: fleetHosts }) : undefined;
const buildkit = fleetHosts ? undefined : singleHost();

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
  /** A fleet's hosts in roll order: name, BUILDKIT_HOST and, where needed, DOCKER_HOST (`npm run route` reads it). */
  fleetEndpoints?: BuildkitFleet["endpoints"];
  /**
   * Each fleet host as a buildx remote-driver node: listener, platforms, mTLS client material
   * (secret). `npm run buildx` turns it into `docker buildx create … --append` lines.
   */
  fleetBuildxNodes?: BuildkitFleet["buildxNodes"];
  /** Each fleet host's smoke test result, by host name. */
  fleetSmokeTests?: pulumi.Output<Record<string, string>>;
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

export = outputsOf();
