// Stack configuration → BuildkitStack (one host) or BuildkitFleet (buildkit:hosts) → stack outputs.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

import { BuildkitFleet } from "./components/buildkit-fleet";
import { BuildkitStack } from "./components/buildkit-stack";
import { ConfigError, loadSettings } from "./components/config";
import { engineApiVersion } from "./components/engine";
import { loadFleetSettings } from "./components/fleet-config";

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
  const settings = orExit(loadSettings);
  const provider = new docker.Provider("docker-host", settings.dockerHost ? { host: settings.dockerHost } : {});
  // The engine's API version decides the healthcheck's fields (components/engine.ts).
  return new BuildkitStack("buildkit", { ...settings, provider, engineApiVersion: engineApiVersion(settings.dockerHost) });
}

// Without buildkit:hosts the program declares exactly what it always has (same names, same URNs).
const fleetHosts = orExit(loadFleetSettings);
const fleet = fleetHosts ? new BuildkitFleet("buildkit", { hosts: fleetHosts }) : undefined;
const buildkit = fleetHosts ? undefined : singleHost();

export const buildkitHost = buildkit?.buildkitHost;
export const containerName = buildkit?.containerName;
export const containerId = buildkit?.containerId;
export const imageRepoDigest = buildkit?.imageRepoDigest;
export const cacheVolumeName = buildkit?.cacheVolumeName;
export const networkName = buildkit?.networkName;
export const smokeTestSummary = buildkit?.smokeTestSummary;
/** A fleet's hosts in roll order: name, BUILDKIT_HOST and, where needed, DOCKER_HOST (`npm run route` reads it). */
export const fleetEndpoints = fleet?.endpoints;
/**
 * Each fleet host as a buildx remote-driver node: listener, platforms, mTLS client material
 * (secret). `npm run buildx` turns it into `docker buildx create … --append` lines.
 */
export const fleetBuildxNodes = fleet?.buildxNodes;
/** Each fleet host's smoke test result, by host name. */
export const fleetSmokeTests = fleet
  ? pulumi.all(Object.fromEntries(fleet.stacks.map((stack, index) => [fleetHosts![index].name, stack.smokeTestSummary])))
  : undefined;
