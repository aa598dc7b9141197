/**
 * The type tokens the CLIs, the policy pack and the tests match resources by
 * are the SDKs' own: a provider upgrade that renamed one fails here, not in a
 * drift check that silently stops seeing containers.
 */
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";

import { COMMAND_TYPE, CONTAINER_TYPE, DOCKER_PROVIDER_TYPE, IMAGE_TYPE, NETWORK_TYPE, VOLUME_TYPE } from "../../components/resource-types";

/** The token each SDK class registers its resources under (set on the class, not in its typings). */
const tokenOf = (resourceClass: unknown): string => (resourceClass as { __pulumiType: string }).__pulumiType;

describe("resource type tokens", () => {
  it.each([
    [CONTAINER_TYPE, docker.Container],
    [NETWORK_TYPE, docker.Network],
    [VOLUME_TYPE, docker.Volume],
    [IMAGE_TYPE, docker.RemoteImage],
    [COMMAND_TYPE, command.local.Command],
  ])("%s is the SDK's own token", (token, resourceClass) => {
    expect(tokenOf(resourceClass)).toBe(token);
  });

  it("names the docker provider as pulumi:providers:<its package>", () => {
    expect(DOCKER_PROVIDER_TYPE).toBe(`pulumi:providers:${tokenOf(docker.Provider)}`);
  });
});
