import { createHash } from "crypto";

import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";

import { CONFIG_FILE, daemonCommand, DaemonMode, modeOf, STATE_PATH, TCP_PORT, TLS_DIR, TLS_FILES, workersProbe } from "../core/buildkitd";
import { renderBuildkitdToml } from "../core/buildkitd-toml";
import { CONTAINER_LABEL, full, LABEL_PREFIX } from "../core/config-keys";
import { removalTimeoutSeconds } from "../core/drain";
import type { TagRegistry } from "../core/image-reference";
import { SMOKE_TEST_ATTEMPTS, smokeTestEndpoint, smokeTestScript } from "../core/smoke-test";
import { MIB } from "../core/units";
import { cacheGuardEnvironment, cacheGuardScript, cacheOwner } from "./cache-guard";
import { DockerSettings, providerCpus } from "./config";
import { dockerCliEnvironment, DockerEngine, enginePreflight, forEngine } from "./docker-engine";
import { apiAtLeast, START_INTERVAL_MIN_API } from "./engine-probe";
import { childName, STACK_TYPE } from "../resource-types";

/**
 * Arguments of {@link BuildkitStack}: validated settings (see `config.ts`) plus
 * the engine to deploy to. The engine's provider and the smoke test's docker
 * CLI are built from one endpoint ({@link DockerEngine}), so they cannot point
 * at different engines.
 */
export interface BuildkitStackArgs extends DockerSettings {
  /**
   * The Docker engine every resource goes to and the smoke test talks to
   * (`buildkitHost` names its host for a TCP listener). Defaults to one built
   * from `dockerHost` (unset: the ambient DOCKER_HOST or local socket), as a
   * child of this component. When given, `dockerHost` must be unset or equal
   * to the engine's host.
   */
  engine?: DockerEngine;
  /**
   * Nothing is declared on the engine before this resolves; a rejection stops
   * the stack with nothing created (a fleet: the hosts' engines were told apart).
   */
  ready?: Promise<unknown>;
}

/**
 * A BuildKit daemon on one Docker host: the image, an isolated network, a
 * persistent cache volume, the `buildkitd` container with limits and a
 * rendered buildkitd.toml, and a smoke test that proves the daemon builds.
 * `pulumi up` returns only once a real build has gone through it.
 */
export class BuildkitStack extends pulumi.ComponentResource {
  public readonly image: docker.RemoteImage;
  public readonly network: docker.Network;
  public readonly cacheVolume: docker.Volume;
  public readonly daemonContainer: docker.Container;
  public readonly smokeTest?: command.local.Command;
  /** Refuses, before anything is touched, a change that would hand a daemon a cache of the other mode. */
  public readonly cacheGuard: command.local.Command;

  /** Paste into a shell: `export BUILDKIT_HOST=<this>`. */
  public readonly buildkitHost: pulumi.Output<string>;
  public readonly containerName: pulumi.Output<string>;
  public readonly containerId: pulumi.Output<string>;
  public readonly imageRepoDigest: pulumi.Output<string>;
  public readonly cacheVolumeName: pulumi.Output<string>;
  public readonly networkName: pulumi.Output<string>;
  /** What the smoke test saw: worker id, platforms and the test build's result. */
  public readonly smokeTestSummary: pulumi.Output<string>;

  constructor(name: string, args: BuildkitStackArgs, opts: pulumi.ComponentResourceOptions = {}) {
    super(STACK_TYPE, name, {}, opts);
    const mode = modeOf(args);
    if (args.engine && args.dockerHost !== undefined && args.dockerHost !== args.engine.host) {
      throw new Error(
        `BuildkitStack ${name}: dockerHost is ${args.dockerHost} but the engine given is at ${args.engine.host ?? "the ambient DOCKER_HOST"}; ` +
          "build the engine from the same value (new DockerEngine(name, { host: settings.dockerHost })) or leave engine unset",
      );
    }
    const engine = args.engine ?? new DockerEngine(childName(name, "engine"), { host: args.dockerHost }, { parent: this });
    const child: pulumi.CustomResourceOptions = { parent: this, provider: engine.provider };
    // Docker cannot relabel a volume or a network: any label change replaces them, and a
    // replaced volume is a lost cache. So their labels never depend on config, and labels
    // written by earlier versions (user labels, the container's name) are left as they are.
    const stableLabels = { ...child, ignoreChanges: ["labels"] };

    // Following the tag: the image is pulled, and the container run, by the digest the tag
    // points at now, so a new image behind the same tag is a replacement in preview and drift.
    const pinnedImage = args.tagRegistry ? imageAtCurrentDigest(name, args.tagRegistry, args.image, engine.host, this) : undefined;
    // Nothing is declared on the engine until it has judged what only it can (CPUs, ports, names),
    // the followed tag has resolved, and whatever the caller waits for (a fleet: the engines' identities).
    const ready = readyToDeclare(this, args, engine, pinnedImage);

    // Before everything: a mode switch whose old cache Pulumi would keep under the same name
    // (retained on delete: protected in the last deploy) is refused here, at `up`, while the
    // old daemon still runs. Docker would hand the kept volume back to the new daemon, which
    // cannot use a cache of the other mode: an outage.
    this.cacheGuard = new command.local.Command(
      childName(name, "cacheGuard"),
      {
        // The command provider prints the command it ran before its error: one short line, so
        // the refusal the script writes is what the user reads. The script itself is in the environment.
        create: 'eval "$CACHE_GUARD"',
        environment: {
          ...cacheGuardEnvironment(args),
          ...dockerCliEnvironment(engine),
          CACHE_GUARD: forEngine(engine, cacheGuardScript()),
        },
      },
      // It talks to the stack's Docker host, so it waits for what that host's provider waits for
      // (in a fleet, the previous host's proof), and for the checks above.
      { parent: this, dependsOn: ready.apply(() => [engine.provider]) },
    );

    // Then the volume, and everything waits for it: when a change would replace a protected
    // cache, Pulumi refuses at this resource, before any other step (a pulled image, a
    // stopped daemon) has happened.
    this.cacheVolume = new docker.Volume(
      childName(name, "cacheVolume"),
      { name: args.cacheVolumeName, labels: toLabelList(ownershipLabels()) },
      {
        ...stableLabels,
        // The cache is what makes rebuilds cheap; where it is precious a stray
        // `destroy` or a replacement must not throw it away.
        protect: args.cacheProtected,
        retainOnDelete: args.cacheProtected,
        deleteBeforeReplace: true,
        // A root daemon's state is unusable by the rootless one (uid 1000 in its own user
        // namespace) and the other way round: switching modes needs a fresh cache, shown
        // in preview as this volume's replacement (refused while the cache is protected).
        replacementTrigger: cacheOwner(args),
        dependsOn: [this.cacheGuard],
      },
    );

    this.image = new docker.RemoteImage(
      childName(name, "image"),
      // Kept locally: deleting the stack must not pull the rug from other users of the image.
      { name: pinnedImage ?? args.image, keepLocally: true },
      // After the cache: the engine sees the image only once the volume's step is settled.
      { ...child, dependsOn: [this.cacheVolume] },
    );

    this.network = new docker.Network(
      childName(name, "network"),
      { name: args.networkName, driver: "bridge", labels: toLabelList(ownershipLabels()) },
      // Named, so a replacement must remove the old one first (and that removes the daemon: after the guard).
      { ...stableLabels, deleteBeforeReplace: true, dependsOn: [this.cacheGuard] },
    );

    const daemonArgs = daemonCommand(args);

    const uploads: pulumi.Input<docker.types.input.ContainerUpload>[] = [
      { file: CONFIG_FILE, content: renderBuildkitdToml(args) },
    ];
    if (args.tls) {
      uploads.push(
        { file: `${TLS_DIR}/${TLS_FILES.ca}`, content: args.tls.ca },
        { file: `${TLS_DIR}/${TLS_FILES.cert}`, content: args.tls.cert },
        { file: `${TLS_DIR}/${TLS_FILES.key}`, content: pulumi.secret(args.tls.key) },
      );
    }

    const memoryMb = args.memoryBytes !== undefined ? Math.floor(args.memoryBytes / MIB) : undefined;
    const containerArgs: docker.ContainerArgs = {
        name: args.containerName,
        // Never the bare tag: by the digest it resolved to (known in preview, so the plan is exact),
        // or by the id of the image the tag gave when first pulled.
        image: pinnedImage ?? this.image.imageId,
        command: daemonArgs,
        privileged: !args.rootless,
        // BuildKit's documented requirements for rootless: it creates its own user namespace.
        securityOpts: args.rootless ? ["seccomp=unconfined", "apparmor=unconfined"] : undefined,
        memory: memoryMb,
        // Equal to memory: no swap on top of the limit (and no perpetual diff from the engine's default of 2x).
        memorySwap: memoryMb,
        cpus: args.cpus !== undefined ? providerCpus(args.cpus) : undefined,
        shmSize: args.shmSizeBytes !== undefined ? Math.floor(args.shmSizeBytes / MIB) : undefined,
        restart: args.restartPolicy,
        maxRetryCount: args.restartMaxRetries,
        logDriver: "json-file",
        logOpts: { "max-size": args.logMaxSize, "max-file": String(args.logMaxFiles) },
        labels: toLabelList(daemonLabels(args)),
        // Attached to the stack's network only; left unset the provider reports a perpetual diff.
        networkMode: this.network.name,
        networksAdvanced: [{ name: this.network.name }],
        hosts: args.extraHosts.map(parseExtraHost),
        volumes: [{ volumeName: this.cacheVolume.name, containerPath: STATE_PATH[mode] }],
        uploads,
        ports:
          args.tcpPort !== undefined
            ? [{ internal: TCP_PORT, external: args.tcpPort, ip: args.tcpAddress, protocol: "tcp" }]
            : undefined,
        // "Up" means buildkitd lists its workers, not that the process exists.
        healthcheck: pulumi.output(engine.apiVersion).apply((api) => daemonHealthcheck(mode, api)),
        wait: true,
        waitTimeout: 120,
        mustRun: true,
        // docker stop with this timeout: SIGTERM, then buildkitd stops taking new builds and
        // finishes the running ones (grpc GracefulStop) before docker kills it.
        destroyGraceSeconds: args.stopGraceSeconds,
    };
    this.daemonContainer = new docker.Container(
      childName(name, "daemon"),
      containerArgs,
      {
        ...child,
        // By digest the container does not reference the image resource: pulled first all the same.
        dependsOn: [this.image],
        // The provider's own 20-minute delete timeout must not cut the grace period short.
        customTimeouts: { delete: `${removalTimeoutSeconds(args.stopGraceSeconds)}s` },
        // The name is fixed, so the old container must go before the new one can exist.
        deleteBeforeReplace: true,
        // buildkitd reads its config only at start: a new config means a new container.
        replaceOnChanges: ["uploads", "command"],
      },
    );

    this.buildkitHost =
      args.tcpPort !== undefined
        ? pulumi.output(tcpBuildkitHost(args.tcpAddress, args.tcpPort, engine.host))
        : pulumi.interpolate`docker-container://${this.daemonContainer.name}`;

    if (args.smokeTest) {
      this.smokeTest = new command.local.Command(
        childName(name, "smokeTest"),
        {
          create: forEngine(engine, smokeTestScript(smokeTestRunner(args), smokeTestEndpoint(args, args.containerName))),
          environment: smokeTestEnvironment(args, engine, this.image.imageId, this.network.name),
          // Re-run after every change of the container, replaced (new id) or updated in
          // place (memory, cpus, restart policy...): a digest of everything it was given.
          triggers: [this.daemonContainer.id, digestOf(containerArgs)],
        },
        { parent: this, dependsOn: [this.daemonContainer] },
      );
    }

    this.containerName = this.daemonContainer.name;
    this.containerId = this.daemonContainer.id;
    this.imageRepoDigest = this.image.repoDigest;
    this.cacheVolumeName = this.cacheVolume.name;
    this.networkName = this.network.name;
    this.smokeTestSummary = this.smokeTest ? this.smokeTest.stdout : pulumi.output("smoke test disabled");

    this.registerOutputs({
      buildkitHost: this.buildkitHost,
      containerName: this.containerName,
      containerId: this.containerId,
      imageRepoDigest: this.imageRepoDigest,
      cacheVolumeName: this.cacheVolumeName,
      networkName: this.networkName,
      smokeTestSummary: this.smokeTestSummary,
    });
  }
}

/**
 * Resolves when everything the stack must know before touching the engine is
 * known and acceptable; rejects, having logged the reason against the stack,
 * when the engine refuses the settings (or the tag or the caller's gate fails).
 */
function readyToDeclare(stack: BuildkitStack, args: BuildkitStackArgs, engine: DockerEngine, pinnedImage?: pulumi.Output<string>): pulumi.Output<void> {
  const checked = enginePreflight(engine, args, stack).then((problems) => {
    if (problems.length === 0) return;
    const message =
      `Refused before anything was created on the engine (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
      problems.map((p) => `  - ${p}`).join("\n");
    pulumi.log.error(message, stack);
    throw new pulumi.RunError(message);
  });
  return pulumi.all([checked, pinnedImage, args.ready]).apply(() => undefined);
}

/**
 * `repository@sha256:…` for the digest `tagRegistry` resolves the image's tag
 * to, asked with the docker provider's own getRegistryImage on every preview
 * and up. A plain-HTTP registry (a local mirror) needs a `registryAuth` entry
 * with its http:// address, or the provider speaks HTTPS; that entry lives on a
 * provider of its own, used for this look-up alone, so the stack's provider
 * (every resource's) is never reconfigured. A registry that does not answer
 * fails the preview, naming the key: never a silent "no change".
 */
function imageAtCurrentDigest(
  name: string,
  registry: TagRegistry,
  image: string,
  dockerHost: string | undefined,
  parent: pulumi.Resource,
): pulumi.Output<string> {
  const key = full("tagRegistry");
  const given = `${registry.plainHttp ? "http://" : ""}${registry.host}`;
  const lookup = new docker.Provider(
    childName(name, "tagRegistry"),
    {
      host: dockerHost,
      // No credentials: auth disabled is the provider's way to say "anonymous, at this address".
      registryAuth: registry.plainHttp ? [{ address: `http://${registry.host}`, authDisabled: true }] : undefined,
    },
    { parent },
  );
  const resolved = docker
    .getRegistryImage({ name: registry.reference }, { provider: lookup, parent })
    .then(
      (result) => {
        if (!/^sha256:[a-f0-9]{64}$/.test(result.sha256Digest)) {
          throw new pulumi.RunError(`${key}: ${given} answered ${JSON.stringify(result.sha256Digest)} for ${registry.reference}, not a sha256 digest`);
        }
        return `${registry.repository}@${result.sha256Digest}`;
      },
      (error: unknown) => {
        // The provider's answer ends in its reason ("* Got error … connection refused") after a line or two of wrapping.
        const lines = String(error instanceof Error ? error.message : error).split("\n").map((line) => line.replace(/^\s*\*\s*/, "").trim());
        const reason = lines.filter((line) => line !== "" && !/^\d+ errors? occurred:?$/.test(line)).pop() ?? "no answer";
        const message =
          `${key} is ${JSON.stringify(given)}, but the current digest of ${image} could not be read there (${registry.reference}: ${reason}). ` +
          `Nothing was changed. Start that registry or point ${key} at one that holds the image; ` +
          `or remove ${key} to deploy without following the tag (a new image behind it is then not seen)`;
        // Logged on its own, as the first error the user reads: thrown alone it reaches them only
        // inside the SDK's "error serializing property …" of the first resource that uses the image.
        pulumi.log.error(message, parent);
        throw new pulumi.RunError(message);
      },
    );
  return pulumi.output(resolved);
}

/**
 * The daemon's healthcheck. Every duration is written as the provider reads it
 * back (Go's time.Duration spelling), or preview shows a replacement forever.
 * On engines with API >= 1.44 it probes every second for up to 30 s after
 * start, so the container is healthy ~1 s after buildkitd lists workers;
 * older engines drop the start interval, so it is left out there and their
 * first probe comes one interval (5 s) after start.
 */
export function daemonHealthcheck(mode: DaemonMode, engineApiVersion?: string): docker.types.input.ContainerHealthcheck {
  const check = { tests: ["CMD", ...workersProbe(mode)], interval: "5s", timeout: "5s", retries: 3 };
  if (engineApiVersion !== undefined && apiAtLeast(engineApiVersion, START_INTERVAL_MIN_API)) {
    return { ...check, startPeriod: "30s", startInterval: "1s" };
  }
  return { ...check, startPeriod: "2s" };
}

/**
 * Labels on every object the stack creates. Network and volume labels cannot
 * change without replacing the object (and the volume is the cache), so they
 * carry nothing that config can change.
 */
function ownershipLabels(): Record<string, string> {
  return { [`${LABEL_PREFIX}.managed-by`]: "pulumi" };
}

/** The container's labels: the user's, whose daemon it is, and what policy checks it against. */
function daemonLabels(args: BuildkitStackArgs): Record<string, string> {
  return {
    ...args.labels,
    ...ownershipLabels(),
    [CONTAINER_LABEL]: args.containerName,
    [`${LABEL_PREFIX}.production`]: String(args.production),
    [`${LABEL_PREFIX}.rootless`]: String(args.rootless),
    // What policy checks a privileged daemon against: the stack opted in.
    [`${LABEL_PREFIX}.allow-privileged`]: String(args.allowPrivileged),
  };
}

/** A stable digest of resolved inputs (secret if any input is): changes whenever any of them does. */
function digestOf(inputs: object): pulumi.Output<string> {
  return pulumi.output(inputs).apply((resolved) => createHash("sha256").update(JSON.stringify(resolved)).digest("hex"));
}

function toLabelList(labels: Record<string, string>): { label: string; value: string }[] {
  return Object.keys(labels)
    .sort()
    .map((label) => ({ label, value: labels[label] }));
}

function parseExtraHost(entry: string): { host: string; ip: string } {
  const separator = entry.indexOf(":");
  return { host: entry.slice(0, separator), ip: entry.slice(separator + 1) };
}

/**
 * How the smoke test starts a shell next to the daemon: inside the container
 * (its unix socket), or, for a TCP listener, a throwaway container of the same
 * image on the stack's network that dials it with the client certificate.
 */
function smokeTestRunner(args: DockerSettings): string {
  return smokeTestEndpoint(args, args.containerName).kind === "tcp"
    ? 'docker run --rm -i --network "$NETWORK" -e BK_CA -e BK_CERT -e BK_KEY --entrypoint sh "$IMAGE"'
    : 'docker exec -i "$CONTAINER" sh';
}

function smokeTestEnvironment(
  args: DockerSettings,
  engine: DockerEngine,
  imageId: pulumi.Output<string>,
  network: pulumi.Output<string>,
): pulumi.Input<Record<string, pulumi.Input<string>>> {
  const environment: Record<string, pulumi.Input<string>> = {
    CONTAINER: args.containerName,
    IMAGE: imageId,
    NETWORK: network,
    ATTEMPTS: String(SMOKE_TEST_ATTEMPTS),
  };
  // The smoke test talks to the same Docker engine the resources went to.
  Object.assign(environment, dockerCliEnvironment(engine));
  if (args.tls?.clientCert && args.tls.clientKey) {
    environment.BK_CA = args.tls.ca;
    environment.BK_CERT = args.tls.clientCert;
    environment.BK_KEY = pulumi.secret(args.tls.clientKey);
  }
  return environment;
}

/**
 * BUILDKIT_HOST for the published TCP listener. A wildcard address (0.0.0.0,
 * ::) listens on every interface of the Docker host, so clients dial that
 * host: the name in a tcp:// or ssh:// `dockerHost`, else this machine's
 * loopback. Any other address is dialled as published; a loopback address on
 * a remote host is reachable only there (or through `ssh -L`). IPv6 in brackets.
 */
export function tcpBuildkitHost(tcpAddress: string, tcpPort: number, dockerHost?: string): string {
  const wildcard = tcpAddress === "0.0.0.0" || tcpAddress === "::";
  const host = wildcard ? (remoteHostName(dockerHost) ?? (tcpAddress === "::" ? "::1" : "127.0.0.1")) : tcpAddress;
  return `tcp://${host.includes(":") ? `[${host}]` : host}:${tcpPort}`;
}

/** The host name of a tcp:// or ssh:// Docker endpoint; undefined for a local socket. */
function remoteHostName(dockerHost: string | undefined): string | undefined {
  const match = dockerHost ? /^(?:tcp|ssh):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)/.exec(dockerHost) : null;
  return match ? match[1].replace(/^\[(.*)\]$/, "$1") : undefined;
}
