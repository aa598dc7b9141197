// Stack configuration → BuildkitStack → stack outputs. Nothing else lives here.
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

import { BuildkitStack } from "./components/buildkit-stack";
import { ConfigError, loadSettings } from "./components/config";

function settingsOrExit() {
  try {
    return loadSettings();
  } catch (error) {
    // A RunError prints just the message: the list of config problems, no stack trace.
    if (error instanceof ConfigError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

const settings = settingsOrExit();
const provider = new docker.Provider("docker-host", settings.dockerHost ? { host: settings.dockerHost } : {});
const buildkit = new BuildkitStack("buildkit", { ...settings, provider });

export const buildkitHost = buildkit.buildkitHost;
export const containerName = buildkit.containerName;
export const containerId = buildkit.containerId;
export const imageRepoDigest = buildkit.imageRepoDigest;
export const cacheVolumeName = buildkit.cacheVolumeName;
export const networkName = buildkit.networkName;
export const smokeTestSummary = buildkit.smokeTestSummary;
