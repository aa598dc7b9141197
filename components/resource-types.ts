/**
 * The type tokens of what a BuildkitStack creates, as they appear in state,
 * engine events and policy arguments. Defined once: the CLIs, the policy pack
 * and the tests match resources by them.
 */
export const CONTAINER_TYPE = "docker:index/container:Container";
export const NETWORK_TYPE = "docker:index/network:Network";
export const VOLUME_TYPE = "docker:index/volume:Volume";
export const IMAGE_TYPE = "docker:index/remoteImage:RemoteImage";
export const COMMAND_TYPE = "command:local:Command";
export const DOCKER_PROVIDER_TYPE = "pulumi:providers:docker";
