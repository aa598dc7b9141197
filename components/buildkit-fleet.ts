import * as pulumi from "@pulumi/pulumi";

import { BuildkitStack } from "./buildkit-stack";
import { DockerEngine } from "./docker-engine";
import type { FleetHostSettings } from "./fleet-config";

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

  constructor(name: string, args: BuildkitFleetArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super("buildkit:index:BuildkitFleet", name, {}, opts);

    let previousGate: pulumi.Resource | undefined;
    for (const host of args.hosts) {
      const { settings, dockerTls } = host;
      const engine = new DockerEngine(
        `${name}-${host.name}-docker`,
        { host: settings.dockerHost, tls: dockerTls },
        // The roll: everything on this host goes through this provider, so
        // nothing here is read, replaced or created before the previous host
        // has proven it builds again.
        { parent: this, dependsOn: previousGate ? [previousGate] : [] },
      );
      const stack = new BuildkitStack(`${name}-${host.name}`, { ...settings, engine }, { parent: this });
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
    this.registerOutputs({ endpoints: this.endpoints });
  }
}
