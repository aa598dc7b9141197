import { createHash } from "crypto";

import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { stringify as toToml } from "smol-toml";

import { BuildkitSettings, CONFIG_NAMESPACE, LABEL_PREFIX, providerCpus, TagRegistry } from "./config";
import { apiAtLeast, START_INTERVAL_MIN_API } from "./engine";
import { DockerEngine } from "./docker-engine";

// The provider's CPU spelling lives with the config rule that refuses what it cannot spell back.
export { providerCpus };

/** Where buildkitd keeps its state (the build cache): privileged and rootless images differ. */
const STATE_PATH = { privileged: "/var/lib/buildkit", rootless: "/home/user/.local/share/buildkit" } as const;
/** The daemon's own unix socket, where `buildctl` inside the image looks by default. */
const SOCKET = {
  privileged: "unix:///run/buildkit/buildkitd.sock",
  rootless: "unix:///run/user/1000/buildkit/buildkitd.sock",
} as const;
const CONFIG_FILE = "/etc/buildkit/buildkitd.toml";
const TLS_DIR = "/etc/buildkit/tls";
/** buildkitd's conventional TCP port inside the container. */
const TCP_CONTAINER_PORT = 1234;
const MIB = 1024 * 1024;
/** Time the provider gets on top of the stop grace to remove the container. */
const DELETE_MARGIN_SECONDS = 120;

/**
 * Arguments of {@link BuildkitStack}: validated settings (see `config.ts`) plus
 * the engine to deploy to. The engine's provider and the smoke test's docker
 * CLI are built from one endpoint ({@link DockerEngine}), so they cannot point
 * at different engines.
 */
export interface BuildkitStackArgs extends BuildkitSettings {
  /**
   * The Docker engine every resource goes to and the smoke test talks to
   * (`buildkitHost` names its host for a TCP listener). Defaults to one built
   * from `dockerHost` (unset: the ambient DOCKER_HOST or local socket), as a
   * child of this component. When given, `dockerHost` must be unset or equal
   * to the engine's host.
   */
  engine?: DockerEngine;
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
    super("buildkit:index:BuildkitStack", name, {}, opts);
    const mode = args.rootless ? "rootless" : "privileged";
    if (args.engine && args.dockerHost !== undefined && args.dockerHost !== args.engine.host) {
      throw new Error(
        `BuildkitStack ${name}: dockerHost is ${args.dockerHost} but the engine given is at ${args.engine.host ?? "the ambient DOCKER_HOST"}; ` +
          "build the engine from the same value (new DockerEngine(name, { host: settings.dockerHost })) or leave engine unset",
      );
    }
    const engine = args.engine ?? new DockerEngine(`${name}-docker`, { host: args.dockerHost }, { parent: this });
    const child: pulumi.CustomResourceOptions = { parent: this, provider: engine.provider };
    // Docker cannot relabel a volume or a network: any label change replaces them, and a
    // replaced volume is a lost cache. So their labels never depend on config, and labels
    // written by earlier versions (user labels, the container's name) are left as they are.
    const stableLabels = { ...child, ignoreChanges: ["labels"] };

    // Before everything: a mode switch whose old cache Pulumi would keep under the same name
    // (retained on delete: protected in the last deploy) is refused here, at `up`, while the
    // old daemon still runs. Docker would hand the kept volume back to the new daemon, which
    // cannot use a cache of the other mode: an outage.
    this.cacheGuard = new command.local.Command(
      `${name}-cache-owner`,
      {
        // The command provider prints the command it ran before its error: one short line, so
        // the refusal the script writes is what the user reads. The script itself is in the environment.
        create: 'eval "$CACHE_GUARD"',
        environment: {
          ...cacheGuardEnvironment(args),
          ...dockerCliEnvironment(engine),
          CACHE_GUARD: (engine.tls ? dockerTlsPreamble() : "") + cacheGuardScript(),
        },
      },
      // It talks to the stack's Docker host, so it waits for what that host's provider waits for
      // (in a fleet, the previous host's proof).
      { parent: this, dependsOn: [engine.provider] },
    );

    // Then the volume, and everything waits for it: when a change would replace a protected
    // cache, Pulumi refuses at this resource, before any other step (a pulled image, a
    // stopped daemon) has happened.
    this.cacheVolume = new docker.Volume(
      `${name}-cache`,
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

    // Following the tag: the image is pulled, and the container run, by the digest the tag
    // points at now, so a new image behind the same tag is a replacement in preview and drift.
    const pinnedImage = args.tagRegistry ? imageAtCurrentDigest(name, args.tagRegistry, args.image, engine.host, this) : undefined;
    this.image = new docker.RemoteImage(
      `${name}-image`,
      // Kept locally: deleting the stack must not pull the rug from other users of the image.
      { name: pinnedImage ?? args.image, keepLocally: true },
      // After the cache: the engine sees the image only once the volume's step is settled.
      { ...child, dependsOn: [this.cacheVolume] },
    );

    this.network = new docker.Network(
      `${name}-network`,
      { name: args.networkName, driver: "bridge", labels: toLabelList(ownershipLabels()) },
      // Named, so a replacement must remove the old one first (and that removes the daemon: after the guard).
      { ...stableLabels, deleteBeforeReplace: true, dependsOn: [this.cacheGuard] },
    );

    const tcpAddr = args.tcpPort !== undefined ? `tcp://0.0.0.0:${TCP_CONTAINER_PORT}` : undefined;
    const daemonArgs = [
      "--config",
      CONFIG_FILE,
      // With a TCP listener the unix socket stays, for the healthcheck and `docker exec buildctl`.
      ...(tcpAddr ? ["--addr", SOCKET[mode], "--addr", tcpAddr] : []),
      ...(tcpAddr && args.tls
        ? ["--tlscacert", `${TLS_DIR}/ca.pem`, "--tlscert", `${TLS_DIR}/cert.pem`, "--tlskey", `${TLS_DIR}/key.pem`]
        : []),
      // Rootless has no privileges to build a PID namespace sandbox per step.
      ...(args.rootless ? ["--oci-worker-no-process-sandbox"] : []),
    ];

    const uploads: pulumi.Input<docker.types.input.ContainerUpload>[] = [
      { file: CONFIG_FILE, content: renderBuildkitdToml(args) },
    ];
    if (args.tls) {
      uploads.push(
        { file: `${TLS_DIR}/ca.pem`, content: args.tls.ca },
        { file: `${TLS_DIR}/cert.pem`, content: args.tls.cert },
        { file: `${TLS_DIR}/key.pem`, content: pulumi.secret(args.tls.key) },
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
            ? [{ internal: TCP_CONTAINER_PORT, external: args.tcpPort, ip: args.tcpAddress, protocol: "tcp" }]
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
      `${name}-daemon`,
      containerArgs,
      {
        ...child,
        // By digest the container does not reference the image resource: pulled first all the same.
        dependsOn: [this.image],
        // The provider's own 20-minute delete timeout must not cut the grace period short.
        customTimeouts: { delete: `${args.stopGraceSeconds + DELETE_MARGIN_SECONDS}s` },
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
        `${name}-smoke-test`,
        {
          create: (engine.tls ? dockerTlsPreamble() : "") + smokeTestScript(args),
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
  const key = `${CONFIG_NAMESPACE}:tagRegistry`;
  const given = `${registry.plainHttp ? "http://" : ""}${registry.host}`;
  const lookup = new docker.Provider(
    `${name}-tag-registry`,
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
export function daemonHealthcheck(mode: "privileged" | "rootless", engineApiVersion?: string): docker.types.input.ContainerHealthcheck {
  const check = { tests: ["CMD", "buildctl", "--addr", SOCKET[mode], "debug", "workers"], interval: "5s", timeout: "5s", retries: 3 };
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
    [`${LABEL_PREFIX}.container`]: args.containerName,
    [`${LABEL_PREFIX}.production`]: String(args.production),
    [`${LABEL_PREFIX}.rootless`]: String(args.rootless),
    // What policy checks a privileged daemon against: the stack opted in.
    [`${LABEL_PREFIX}.allow-privileged`]: String(args.allowPrivileged),
  };
}

/**
 * Who owns the files in the cache volume: the volume's replacement trigger. The
 * engine replaces only when a recorded value differs; stacks deployed before
 * the trigger existed have none recorded, so their volume is kept, and the
 * first `up` records it.
 */
export function cacheOwner(settings: Pick<BuildkitSettings, "rootless">): string {
  return settings.rootless ? "rootless (uid 1000 in its own user namespace)" : "root";
}

/**
 * The cache guard's script. It records, in its output, whose cache the volume
 * holds and whether Pulumi keeps it on delete; the next run (any change of
 * those) reads the record back (PULUMI_COMMAND_STDOUT) and refuses a mode
 * switch of the same volume when the last deploy retained it: the replacement
 * would "create" the kept volume again under its name. Without a record (a new
 * stack, or one deployed before the guard) it asks the engine which mode the
 * daemons using the volume run in, and refuses a switch it cannot judge.
 */
export function cacheGuardScript(): string {
  const key = (name: string) => `${CONFIG_NAMESPACE}:${name}`;
  return [
    "set -eu",
    'record="cache $VOLUME owner $OWNER retained $RETAINED"',
    'previous="${PULUMI_COMMAND_STDOUT:-}"',
    'if [ -n "$previous" ]; then',
    "  set -- $previous",
    '  if [ "$2" = "$VOLUME" ] && [ "$4" != "$OWNER" ] && [ "$6" = true ]; then',
    `    echo "refused before anything was touched: ${key("rootless")} switches the cache volume $VOLUME from a $4 daemon to a $OWNER one, but the last deploy protected it (${key("cacheProtected")} true), so Pulumi keeps it on delete and docker would hand the same volume, with the $4 daemon's files, to the new daemon, which cannot use them and never becomes healthy. Instead: set ${key("cacheProtected")} false (keep ${key("rootless")} as deployed) and pulumi up, then switch ${key("rootless")} in a second up (a fresh cache)." >&2`,
    "    exit 1",
    "  fi",
    "else",
    `  modes=$(docker ps -a --filter "volume=$VOLUME" --format '{{.Label "${LABEL_PREFIX}.rootless"}}')`,
    "  for mode in $modes; do",
    '    if [ "$mode" != "$ROOTLESS" ]; then',
    `      echo "refused before anything was touched: the cache volume $VOLUME is used by a daemon with ${key("rootless")} $mode, and this stack has no record of who owns the cache yet (deployed before this version): switching now would give the new daemon the old daemon's files. Deploy once as you are (${key("rootless")} $mode) to record it, then switch." >&2`,
    "      exit 1",
    "    fi",
    "  done",
    "fi",
    'echo "$record"',
  ].join("\n");
}

function cacheGuardEnvironment(args: BuildkitStackArgs): Record<string, pulumi.Input<string>> {
  const environment: Record<string, pulumi.Input<string>> = {
    VOLUME: args.cacheVolumeName,
    OWNER: args.rootless ? "rootless" : "root",
    ROOTLESS: String(args.rootless),
    // Retained on delete exactly when protected (see the volume's options).
    RETAINED: String(args.cacheProtected),
  };
  return environment;
}

/**
 * What a local command's docker CLI needs to reach the stack's engine (the
 * smoke test, the cache guard): its DOCKER_HOST, and the TLS client material
 * that {@link dockerTlsPreamble} writes where the CLI reads it.
 */
function dockerCliEnvironment(engine: DockerEngine): Record<string, pulumi.Input<string>> {
  const environment: Record<string, pulumi.Input<string>> = {};
  if (engine.host) environment.DOCKER_HOST = engine.host;
  if (engine.tls) {
    environment.DOCKER_TLS_CA = engine.tls.ca;
    environment.DOCKER_TLS_CERT = engine.tls.cert;
    environment.DOCKER_TLS_KEY = pulumi.secret(engine.tls.key);
  }
  return environment;
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
 * buildkitd.toml for these settings. Garbage collection uses BuildKit's current
 * fields: reservedSpace is a floor GC never frees below, maxUsedSpace the
 * ceiling it prunes down to, minFreeSpace the disk it keeps free. The older
 * keepBytes/gckeepstorage now means a floor, not a cap, and is never written.
 * `platforms` replaces the worker's detected platforms (the first is the
 * default for builds that name none).
 */
export function renderBuildkitdToml(settings: BuildkitSettings): string {
  const worker: Record<string, unknown> = { enabled: true, gc: true };
  if (settings.cacheReservedSpaceBytes !== undefined) worker.reservedSpace = settings.cacheReservedSpaceBytes;
  if (settings.cacheMaxUsedSpaceBytes !== undefined) worker.maxUsedSpace = settings.cacheMaxUsedSpaceBytes;
  if (settings.cacheMinFreeSpaceBytes !== undefined) worker.minFreeSpace = settings.cacheMinFreeSpaceBytes;
  if (settings.maxParallelism !== undefined) worker["max-parallelism"] = settings.maxParallelism;
  // What the worker advertises (first, before its host's own), not what it can run: without
  // emulators (binfmt_misc) on the host, a RUN of another architecture's binary fails with
  // "exec format error" (tests/integration/buildx-fleet.test.ts).
  if (settings.platforms.length > 0) worker.platforms = settings.platforms;

  const registry: Record<string, Record<string, unknown>> = {};
  if (settings.registryMirrors.length > 0) {
    registry["docker.io"] = { mirrors: settings.registryMirrors.map((m) => m.replace(/^https?:\/\//, "")) };
    for (const mirror of settings.registryMirrors.filter((m) => m.startsWith("http://"))) {
      registry[mirror.slice("http://".length)] = { http: true, insecure: true };
    }
  }

  const document: Record<string, unknown> = {
    debug: settings.debug,
    worker: { oci: worker, containerd: { enabled: false } },
  };
  if (Object.keys(registry).length > 0) document.registry = registry;
  return `# Rendered by buildkit-stack; edit the stack configuration, not this file.\n${toToml(document)}\n`;
}

/**
 * The smoke test runs the image's own buildctl against the daemon's own
 * endpoint, on the same Docker host the stack targets: workers must be listed,
 * then a real (tiny) build must solve. Bounded retries, no fixed waits.
 */
export function smokeTestScript(args: BuildkitSettings): string {
  const mode = args.rootless ? "rootless" : "privileged";
  const tcp = args.tcpPort !== undefined && args.tls !== undefined;
  // Inside the client container; no single quotes, it is passed to sh -c '...'.
  const endpoint = tcp
    ? `--addr tcp://${args.containerName}:${TCP_CONTAINER_PORT} --tlscacert $d/ca.pem --tlscert $d/cert.pem --tlskey $d/key.pem`
    : `--addr ${SOCKET[mode]}`;
  const client = [
    "set -e",
    "d=$(mktemp -d)",
    'trap "rm -rf $d" EXIT',
    ...(tcp ? ['printf "%s" "$BK_CA" >$d/ca.pem', 'printf "%s" "$BK_CERT" >$d/cert.pem', 'printf "%s" "$BK_KEY" >$d/key.pem'] : []),
    'if [ "$1" = workers ]; then exec buildctl ' + endpoint + " debug workers; fi",
    // A Dockerfile with no base image to pull: it exercises the frontend, the solver and the cache.
    'printf "FROM scratch\\nCOPY hello /hello\\n" >$d/Dockerfile',
    'echo "$2" >$d/hello',
    "buildctl " + endpoint + " build --frontend dockerfile.v0 --local context=$d --local dockerfile=$d",
  ].join("; ");
  const runner = tcp
    ? // Through the TCP listener with the client certificate, from a throwaway container on the stack's network.
      'docker run --rm -i --network "$NETWORK" -e BK_CA -e BK_CERT -e BK_KEY --entrypoint sh "$IMAGE"'
    : 'docker exec -i "$CONTAINER" sh';
  return [
    "set -eu",
    `client() { ${runner} -c '${client}' client "$@"; }`,
    "attempt=0",
    'until workers=$(client workers 2>&1) && [ "$(printf "%s\\n" "$workers" | wc -l)" -ge 2 ]; do',
    "  attempt=$((attempt + 1))",
    '  if [ "$attempt" -ge "$ATTEMPTS" ]; then',
    '    echo "smoke test: buildkitd in $CONTAINER listed no workers after $ATTEMPTS attempts: $workers" >&2',
    "    exit 1",
    "  fi",
    "  sleep 1",
    "done",
    'if ! out=$(client build "buildkit-stack smoke test $(date +%s)" 2>&1); then',
    '  echo "smoke test: the test build through $CONTAINER failed:" >&2',
    '  echo "$out" >&2',
    "  exit 1",
    "fi",
    // The time says which deploy this proof belongs to: every run changes the summary.
    'printf "%s\\n" "$workers" | awk -v at="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \'NR == 2 { printf "worker %s platforms %s; test build ok at %s\\n", $1, $2, at }\'',
  ].join("\n");
}

function smokeTestEnvironment(
  args: BuildkitSettings,
  engine: DockerEngine,
  imageId: pulumi.Output<string>,
  network: pulumi.Output<string>,
): pulumi.Input<Record<string, pulumi.Input<string>>> {
  const environment: Record<string, pulumi.Input<string>> = {
    CONTAINER: args.containerName,
    IMAGE: imageId,
    NETWORK: network,
    ATTEMPTS: "60",
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

/**
 * Puts the Docker TLS client material where the docker CLI reads it
 * (DOCKER_CERT_PATH), for the smoke test's calls to a `--tlsverify` engine.
 * Prepended only when a host has such material, so other stacks' smoke tests
 * are unchanged.
 */
export function dockerTlsPreamble(): string {
  return [
    'DOCKER_CERT_PATH=$(mktemp -d)',
    'trap \'rm -rf "$DOCKER_CERT_PATH"\' EXIT',
    'printf "%s" "$DOCKER_TLS_CA" >"$DOCKER_CERT_PATH/ca.pem"',
    'printf "%s" "$DOCKER_TLS_CERT" >"$DOCKER_CERT_PATH/cert.pem"',
    'printf "%s" "$DOCKER_TLS_KEY" >"$DOCKER_CERT_PATH/key.pem"',
    "export DOCKER_CERT_PATH DOCKER_TLS_VERIFY=1",
    "",
  ].join("\n");
}
