import * as pulumi from "@pulumi/pulumi";

import { BuildkitStack } from "./buildkit-stack";
import { DockerEngine } from "./docker-engine";
import type { FleetHostSettings } from "./fleet-config";
import { childName, FLEET_TYPE, fleetHostStackName } from "../resource-types";

/** Arguments of {@link BuildkitFleet}. */
export interface BuildkitFleetArgs {
  /**
   * The hosts, in roll order (as `parseFleetSettings` returns them from
   * `buildkit:hosts`). Host k+1 is touched only after host k's smoke test
   * passed, so a change that replaces daemons takes one host out at a time.
   */
  hosts: FleetHostSettings[];
}

/** How a client reaches one host's daemon: what the routing command hands out. */
export interface FleetEndpoint {
  /** The host's name in `buildkit:hosts`. */
  name: string;
  /** `BUILDKIT_HOST` for this host's daemon. */
  buildkitHost: string;
  /**
   * `DOCKER_HOST` a `docker-container://` address needs (buildctl runs
   * `docker exec` there); absent for the local engine and for `tcp://` daemons.
   */
  dockerHost?: string;
}

/**
 * What a buildx `remote` driver node needs to reach one host's daemon: the
 * published listener, the platforms the host's worker advertises and the mTLS
 * client material (`npm run buildx` writes it to files and prints
 * `docker buildx create … --append`). Secret as a whole: it holds a client key.
 */
export interface BuildxNode {
  /** The host's name in `buildkit:hosts`. */
  name: string;
  /** `BUILDKIT_HOST` of this host's daemon: `tcp://ADDRESS:PORT` where it publishes a listener. */
  buildkitHost: string;
  /** `buildkit:platforms` of this host; absent when the daemon reports what it detects. */
  platforms?: string[];
  /** mTLS client material for a `tcp://` listener; absent for a `docker-container://` endpoint. */
  tls?: {
    /**
     * The name to verify the server certificate against: the container name,
     * which config guarantees the certificate carries whatever address clients dial.
     */
    serverName: string;
    /** CA that signed the daemon's certificate. */
    ca: string;
    /** Client certificate and key the daemon accepts. */
    cert: string;
    key: string;
  };
}

/**
 * A BuildKit fleet: one {@link BuildkitStack} per host, each through a Docker
 * provider of its own (`ssh://`, `tcp://` with TLS, or the local engine), every
 * name derived from the fleet's name and the host's. Changes roll host by host:
 * each host's provider, and so every resource on that host, waits for the
 * previous host's smoke test, so at most one host is out at a time and a host
 * that fails stops the roll with the hosts after it untouched.
 */
export class BuildkitFleet extends pulumi.ComponentResource {
  /** One engine (and its provider) per host, in roll order. */
  public readonly engines: DockerEngine[] = [];
  /** One stack per host, in roll order. */
  public readonly stacks: BuildkitStack[] = [];
  /** Every host's client endpoint, in roll order. */
  public readonly endpoints: pulumi.Output<FleetEndpoint[]>;
  /** Every host as a buildx remote-driver node, in roll order (secret: it carries client keys). */
  public readonly buildxNodes: pulumi.Output<BuildxNode[]>;

  constructor(name: string, args: BuildkitFleetArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super(FLEET_TYPE, name, {}, opts);

    let previousGate: pulumi.Resource | undefined;
    for (const host of args.hosts) {
      const { settings, dockerTls } = host;
      const engine = new DockerEngine(
        childName(fleetHostStackName(name, host.name), "engine"),
        { host: settings.dockerHost, tls: dockerTls },
        // The roll: everything on this host goes through this provider, so
        // nothing here is read, replaced or created before the previous host
        // has proven it builds again.
        { parent: this, dependsOn: previousGate ? [previousGate] : [] },
      );
      const stack = new BuildkitStack(fleetHostStackName(name, host.name), { ...settings, engine }, { parent: this });
      this.engines.push(engine);
      this.stacks.push(stack);
      // Without a smoke test, a healthy container (`wait: true`) is the best proof there is.
      previousGate = stack.smokeTest ?? stack.daemonContainer;
    }

    this.endpoints = pulumi.all(
      this.stacks.map((stack, index) =>
        stack.buildkitHost.apply((buildkitHost): FleetEndpoint => {
          const dockerHost = args.hosts[index].settings.dockerHost;
          const viaDocker = buildkitHost.startsWith("docker-container://");
          return { name: args.hosts[index].name, buildkitHost, ...(viaDocker && dockerHost ? { dockerHost } : {}) };
        }),
      ),
    );
    // Secret explicitly: config secrets reach the program as plain strings.
    this.buildxNodes = pulumi.secret(
      pulumi.all(
        this.stacks.map((stack, index) =>
          stack.buildkitHost.apply((buildkitHost): BuildxNode => {
            const { name, settings } = args.hosts[index];
            const tls = buildkitHost.startsWith("tcp://") && settings.tls ? settings.tls : undefined;
            return {
              name,
              buildkitHost,
              ...(settings.platforms.length > 0 ? { platforms: settings.platforms } : {}),
              ...(tls ? { tls: { serverName: settings.containerName, ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } } : {}),
            };
          }),
        ),
      ),
    );
    this.registerOutputs({ endpoints: this.endpoints, buildxNodes: this.buildxNodes });
  }
}
