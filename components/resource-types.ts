/**
 * The type tokens and child names of what the program declares, as they appear in state,
 * engine events and policy arguments. Defined once: the CLIs, the policy pack
 * and the tests match resources by them.
 */
export const CONTAINER_TYPE = "docker:index/container:Container";
export const NETWORK_TYPE = "docker:index/network:Network";
export const VOLUME_TYPE = "docker:index/volume:Volume";
export const IMAGE_TYPE = "docker:index/remoteImage:RemoteImage";
export const COMMAND_TYPE = "command:local:Command";
export const DOCKER_PROVIDER_TYPE = "pulumi:providers:docker";
/** The program's own components. */
export const STACK_TYPE = "buildkit:index:BuildkitStack";
export const FLEET_TYPE = "buildkit:index:BuildkitFleet";
export const CLUSTER_TYPE = "buildkit:index:BuildkitCluster";
export const STATEFUL_SET_TYPE = "kubernetes:apps/v1:StatefulSet";
export const CONFIG_MAP_TYPE = "kubernetes:core/v1:ConfigMap";

/**
 * How a BuildkitStack names what it declares, from its own name: the one
 * rule, which the component creates by and the CLIs find children by (a
 * smoke test and a cache guard are both commands; their names tell them apart).
 */
export const STACK_CHILD = {
  cacheGuard: "cache-owner",
  cacheVolume: "cache",
  image: "image",
  network: "network",
  daemon: "daemon",
  smokeTest: "smoke-test",
  /** The Docker provider a stack builds for itself, or a fleet for each host. */
  engine: "docker",
  tagRegistry: "tag-registry",
} as const;

export const childName = (stack: string, child: keyof typeof STACK_CHILD): string => `${stack}-${STACK_CHILD[child]}`;

/** A fleet host's BuildkitStack is `<fleet>-<host>`. */
export const fleetHostStackName = (fleet: string, host: string): string => `${fleet}-${host}`;

/** The host whose stack is named `stackName` in fleet `fleet` (the inverse of {@link fleetHostStackName}), or undefined. */
export function hostOfFleetStack(fleet: string, stackName: string): string | undefined {
  const prefix = fleetHostStackName(fleet, "");
  return stackName.startsWith(prefix) && stackName.length > prefix.length ? stackName.slice(prefix.length) : undefined;
}

/** How a BuildkitCluster names what it declares, from its own name (a replica's smoke test: `<cluster>-<pod>-smoke-test`). */
export const CLUSTER_CHILD = {
  provider: "kubernetes",
  namespace: "namespace",
  config: "config",
  service: "service",
  daemons: "daemons",
  "disruption-budget": "disruption-budget",
  tls: "tls",
  smokeTest: STACK_CHILD.smokeTest,
} as const;

export const clusterChildName = (cluster: string, child: keyof typeof CLUSTER_CHILD): string => `${cluster}-${CLUSTER_CHILD[child]}`;

/** The daemon's container in each of a cluster's pods: `kube-pod://` endpoints, the proofs and the CLIs name it. */
export const CLUSTER_DAEMON_CONTAINER = "buildkitd";
/** A cluster pod's cache volume, and so each replica's PVC name prefix (`cache-<pod>`). */
export const CLUSTER_CACHE_VOLUME = "cache";
