/**
 * The BuildkitStack component under Pulumi mocks: every input it registers for
 * the image, network, volume, container and smoke test, the options that
 * decide replacement and protection, and its outputs. Settings come from raw
 * config through parseDockerSettings, as index.ts builds them.
 */
import * as pulumi from "@pulumi/pulumi";
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";
import { parse as parseToml } from "smol-toml";

import type { BuildkitStackArgs } from "../../../components/docker/buildkit-stack";
import { renderBuildkitdToml } from "../../../components/core/buildkitd-toml";
import { DockerSettings, parseDockerSettings, providerCpus } from "../../../components/docker/config";
import { makeCertificates, tlsSettings } from "../certificates";
import { COMMAND_TYPE, CONTAINER_TYPE, IMAGE_TYPE, NETWORK_TYPE, VOLUME_TYPE } from "../../../components/resource-types";

const IMAGE_ID = "sha256:" + "1".repeat(64);
const REPO_DIGEST = "moby/buildkit@sha256:" + "2".repeat(64);
const SMOKE_STDOUT = "worker w1 platforms linux/amd64; test build ok";

/** Every resource the mock engine saw: type, name, inputs, and the provider reference it was sent with. */
const registered: { type: string; name: string; inputs: Record<string, any>; provider?: string }[] = [];
/** Every function the program invoked: token, arguments, provider reference. */
const invoked: { token: string; inputs: Record<string, any>; provider?: string }[] = [];
/** What the mock registry answers for any tag. */
const TAG_DIGEST = "sha256:" + "3".repeat(64);

pulumi.runtime.setMocks(
  {
    newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === IMAGE_TYPE) {
        state.imageId = IMAGE_ID;
        state.repoDigest = REPO_DIGEST;
      }
      if (args.type === COMMAND_TYPE) state.stdout = SMOKE_STDOUT;
      return { id: `${args.name}-id`, state };
    },
    call(args) {
      invoked.push({ token: args.token, inputs: args.inputs, provider: args.provider });
      return args.token === "docker:index/getRegistryImage:getRegistryImage" ? { name: args.inputs.name, sha256Digest: TAG_DIGEST } : {};
    },
  },
  "buildkit",
  "dev",
  false,
);

// Imported after setMocks, as Pulumi's own examples do.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { BuildkitStack, tcpBuildkitHost } = require("../../../components/docker/buildkit-stack") as typeof import("../../../components/docker/buildkit-stack");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { DockerEngine } = require("../../../components/docker/docker-engine") as typeof import("../../../components/docker/docker-engine");

const promiseOf = <T>(output: pulumi.Output<T>): Promise<T> => new Promise((resolve) => output.apply(resolve));

/** The mock monitor hands secret inputs over wrapped in Pulumi's secret signature. */
const isSecret = (value: any): boolean => value !== null && typeof value === "object" && value[specialSigKey] === specialSecretSig;
const reveal = (value: any): any => (isSecret(value) ? reveal(value.value) : Array.isArray(value) ? value.map(reveal) : value);

// Config checks TLS material with node:crypto, so TCP stacks need real certificates naming their container and address.
const REMOTE_TLS = makeCertificates({ serverSans: ["DNS:bk-tcp", "IP:10.0.0.5"] });
const LOCAL_TLS = makeCertificates({ serverSans: ["DNS:bk-server-tls", "DNS:bk-rootless-tcp", "IP:127.0.0.1"] });
// A wildcard listener: config checks the container's name only (clients dial a name of the user's).
const WILDCARD_TLS = makeCertificates({ serverSans: ["DNS:bk-tcp-wildcard"] });
const tlsConfig = (set: typeof LOCAL_TLS) =>
  Object.fromEntries(Object.entries(tlsSettings(set)).map(([key, value]) => [`buildkit:${key}`, value]));
const TYPES = {
  container: CONTAINER_TYPE,
  image: IMAGE_TYPE,
  network: NETWORK_TYPE,
  volume: VOLUME_TYPE,
  smokeTest: COMMAND_TYPE,
  cacheGuard: COMMAND_TYPE,
} as const;
type Kind = keyof typeof TYPES;
/** Two commands share a type: the smoke test and the cache guard are told apart by name. */
const NAME_SUFFIX: Partial<Record<Kind, string>> = { smokeTest: "-smoke-test", cacheGuard: "-cache-owner" };

interface Deployed {
  stack: InstanceType<typeof BuildkitStack>;
  settings: DockerSettings;
  /** The inputs the engine received for the stack's one resource of this kind. */
  inputs: (kind: Kind) => Record<string, any>;
  /** The provider reference the engine received with it. */
  providerRef: (kind: Kind) => string | undefined;
  /** The resource options the component declared it with. */
  options: (kind: Kind) => pulumi.CustomResourceOptions;
  /** How many resources of this kind the stack registered. */
  count: (kind: Kind) => number;
}

/** Declares a stack from raw config, as index.ts does, and waits until every resource is registered. */
async function deploy(name: string, raw: Record<string, unknown> = {}, engine?: InstanceType<typeof DockerEngine>): Promise<Deployed> {
  const settings = parseDockerSettings(raw, { stack: "dev" });
  const options = new Map<string, pulumi.CustomResourceOptions>();
  // A component's transformations run on each child with the options it was declared with:
  // the public way to see protect, retainOnDelete, deleteBeforeReplace... under mocks.
  const stack = new BuildkitStack(name, { ...settings, engine } as BuildkitStackArgs, {
    transformations: [
      (args) => {
        options.set(args.name, args.opts as pulumi.CustomResourceOptions);
        return undefined;
      },
    ],
  });
  await Promise.all([promiseOf(stack.smokeTestSummary), promiseOf(stack.containerId), promiseOf(stack.buildkitHost)]);
  const mine = (kind: Kind) =>
    registered.filter((r) => r.type === TYPES[kind] && r.name.startsWith(`${name}-`) && r.name.endsWith(NAME_SUFFIX[kind] ?? ""));
  const one = (kind: Kind) => {
    const match = mine(kind);
    if (match.length !== 1) throw new Error(`expected one ${kind} for ${name}, saw ${match.length}`);
    return match[0];
  };
  return {
    stack,
    settings,
    inputs: (kind) => one(kind).inputs,
    providerRef: (kind) => one(kind).provider,
    options: (kind) => {
      const found = options.get(one(kind).name);
      if (!found) throw new Error(`no ${kind} declared by ${name}`);
      return found;
    },
    count: (kind) => mine(kind).length,
  };
}

describe("the default (privileged) daemon", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("plain", {
      "buildkit:memory": "1g",
      "buildkit:cpus": "2.5",
      "buildkit:shmSize": "128m",
      "buildkit:restartPolicy": "on-failure",
      "buildkit:restartMaxRetries": "4",
      "buildkit:labels": '{"team":"platform","a.first":"yes"}',
      "buildkit:extraHosts": '["host.docker.internal:host-gateway","db:10.0.0.2"]',
      "buildkit:cacheMaxUsedSpace": "5g",
      "buildkit:maxParallelism": "2",
      "buildkit:registryMirrors": '["http://host.docker.internal:5000"]',
    });
  });

  it("pulls the configured image and keeps it locally", () => {
    expect(deployed.inputs("image")).toEqual({ name: "moby/buildkit:v0.32.2", keepLocally: true });
  });

  it("runs the container from the id of the image the tag gave when pulled (the tag is not followed)", () => {
    expect(deployed.inputs("container").image).toBe(IMAGE_ID);
  });

  it("is privileged, with no security options and no sandbox switch", () => {
    const container = deployed.inputs("container");
    expect(container.privileged).toBe(true);
    expect(container.securityOpts).toBeUndefined();
    expect(container.command).toEqual(["--config", "/etc/buildkit/buildkitd.toml"]);
  });

  it("sets memory and swap equal in MB, CPUs as the provider spells them, shm in MB", () => {
    expect(deployed.inputs("container")).toMatchObject({ memory: 1024, memorySwap: 1024, cpus: "2.5", shmSize: 128 });
  });

  it("restarts on failure the configured number of times", () => {
    expect(deployed.inputs("container")).toMatchObject({ restart: "on-failure", maxRetryCount: 4 });
  });

  it("rotates json-file logs with the default size and count", () => {
    expect(deployed.inputs("container")).toMatchObject({ logDriver: "json-file", logOpts: { "max-size": "10m", "max-file": "3" } });
  });

  it("mounts the cache volume at /var/lib/buildkit", () => {
    expect(deployed.inputs("volume").name).toBe("buildkit-dev-cache");
    expect(deployed.inputs("container").volumes).toEqual([{ volumeName: "buildkit-dev-cache", containerPath: "/var/lib/buildkit" }]);
  });

  it("attaches the daemon to the stack's bridge network only", () => {
    expect(deployed.inputs("network")).toMatchObject({ name: "buildkit-dev", driver: "bridge" });
    expect(deployed.inputs("container")).toMatchObject({ networkMode: "buildkit-dev", networksAdvanced: [{ name: "buildkit-dev" }] });
  });

  it("adds the extra hosts, split at the first colon", () => {
    expect(deployed.inputs("container").hosts).toEqual([
      { host: "host.docker.internal", ip: "host-gateway" },
      { host: "db", ip: "10.0.0.2" },
    ]);
  });

  it("publishes no port without a TCP listener", () => {
    expect(deployed.inputs("container").ports).toBeUndefined();
  });

  it("is healthy only when buildctl lists workers on the daemon's socket, and up waits for it", () => {
    expect(deployed.inputs("container")).toMatchObject({
      healthcheck: {
        tests: ["CMD", "buildctl", "--addr", "unix:///run/buildkit/buildkitd.sock", "debug", "workers"],
        interval: "5s",
        timeout: "5s",
        retries: 3,
        startPeriod: "2s",
      },
      wait: true,
      waitTimeout: 120,
      mustRun: true,
    });
  });

  it("labels the container, sorted, for policy, and the network and volume with stable labels only", () => {
    expect(deployed.inputs("container").labels).toEqual([
      { label: "a.first", value: "yes" },
      { label: "org.buildkit-stack.allow-privileged", value: "true" },
      { label: "org.buildkit-stack.container", value: "buildkitd" },
      { label: "org.buildkit-stack.managed-by", value: "pulumi" },
      { label: "org.buildkit-stack.production", value: "false" },
      { label: "org.buildkit-stack.rootless", value: "false" },
      { label: "team", value: "platform" },
    ]);
    // Nothing config can change: a new label or container name must not replace the cache.
    const stable = [{ label: "org.buildkit-stack.managed-by", value: "pulumi" }];
    expect(deployed.inputs("network").labels).toEqual(stable);
    expect(deployed.inputs("volume").labels).toEqual(stable);
  });

  it("ignores label changes on the network and volume, so stacks labelled by earlier versions keep them", () => {
    expect(deployed.options("network").ignoreChanges).toEqual(["labels"]);
    expect(deployed.options("volume").ignoreChanges).toEqual(["labels"]);
  });

  it("registers the cache volume before the image, so a refused cache replacement comes first", () => {
    const order = registered.filter((r) => r.name.startsWith("plain-")).map((r) => r.type);
    expect(order.indexOf(TYPES.volume)).toBeLessThan(order.indexOf(TYPES.image));
    expect(deployed.options("image").dependsOn).toEqual([deployed.stack.cacheVolume]);
  });

  it("records a root-owned cache, so a later switch to rootless replaces it", () => {
    expect(deployed.options("volume").replacementTrigger).toBe("root");
  });

  it("gives buildkitd the stop grace period to drain builds, within the provider's delete timeout", () => {
    expect(deployed.inputs("container").destroyGraceSeconds).toBe(600);
    expect(deployed.options("container").customTimeouts).toEqual({ delete: "720s" });
  });

  it("uploads the buildkitd.toml rendered from these settings, and nothing else without TLS", () => {
    const uploads = deployed.inputs("container").uploads;
    expect(isSecret(uploads)).toBe(false);
    expect(uploads).toEqual([{ file: "/etc/buildkit/buildkitd.toml", content: renderBuildkitdToml(deployed.settings) }]);
    const toml = parseToml(uploads[0].content) as any;
    expect(toml.worker.oci).toMatchObject({ maxUsedSpace: 5 * 1024 ** 3, "max-parallelism": 2 });
    expect(toml.registry["docker.io"].mirrors).toEqual(["host.docker.internal:5000"]);
  });

  it("replaces the fixed-name container delete-first, and when its config or command changes", () => {
    expect(deployed.options("container")).toMatchObject({ deleteBeforeReplace: true, replaceOnChanges: ["uploads", "command"] });
  });

  it("replaces the named network and volume delete-first", () => {
    expect(deployed.options("network")).toMatchObject({ deleteBeforeReplace: true });
    expect(deployed.options("volume")).toMatchObject({ deleteBeforeReplace: true });
  });

  it("leaves a disposable cache unprotected, deleted with the stack", () => {
    expect(deployed.options("volume")).toMatchObject({ protect: false, retainOnDelete: false });
  });

  it("smoke-tests the daemon once it exists, and again whenever the container is replaced or updated", () => {
    expect(deployed.count("smokeTest")).toBe(1);
    const smokeTest = deployed.inputs("smokeTest");
    expect(smokeTest.triggers).toEqual(["plain-daemon-id", expect.stringMatching(/^[0-9a-f]{64}$/)]);
    expect(deployed.options("smokeTest").dependsOn).toEqual([deployed.stack.daemonContainer]);
  });

  it("runs the smoke test inside the daemon's container, against the local engine", () => {
    const smokeTest = deployed.inputs("smokeTest");
    expect(smokeTest.environment).toEqual({ CONTAINER: "buildkitd", IMAGE: IMAGE_ID, NETWORK: "buildkit-dev", ATTEMPTS: "60" });
    expect(smokeTest.create).toContain('docker exec -i "$CONTAINER" sh');
    expect(smokeTest.create).toContain("buildctl --addr unix:///run/buildkit/buildkitd.sock debug workers");
    expect(smokeTest.create).toContain("build --frontend dockerfile.v0");
    expect(smokeTest.create).not.toContain("BK_CA");
  });

  it("outputs what a user pastes", async () => {
    const { stack } = deployed;
    expect(await promiseOf(stack.buildkitHost)).toBe("docker-container://buildkitd");
    expect(await promiseOf(stack.containerName)).toBe("buildkitd");
    expect(await promiseOf(stack.containerId)).toBe("plain-daemon-id");
    expect(await promiseOf(stack.imageRepoDigest)).toBe(REPO_DIGEST);
    expect(await promiseOf(stack.cacheVolumeName)).toBe("buildkit-dev-cache");
    expect(await promiseOf(stack.networkName)).toBe("buildkit-dev");
    expect(await promiseOf(stack.smokeTestSummary)).toBe(SMOKE_STDOUT);
  });
});

describe("hardened (rootless) mode", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("hardened", {
      "buildkit:rootless": "true",
      "buildkit:containerName": "bk-rootless",
      "buildkit:memory": "512m",
      "buildkit:cpus": "1",
      "buildkit:logMaxSize": "50m",
      "buildkit:logMaxFiles": "5",
    });
  });

  it("runs the rootless image without --privileged", () => {
    expect(deployed.inputs("image").name).toBe("moby/buildkit:v0.32.2-rootless");
    expect(deployed.inputs("container").privileged).toBe(false);
  });

  it("runs with seccomp and apparmor unconfined", () => {
    expect(deployed.inputs("container").securityOpts).toEqual(["seccomp=unconfined", "apparmor=unconfined"]);
  });

  it("disables the process sandbox", () => {
    expect(deployed.inputs("container").command).toEqual(["--config", "/etc/buildkit/buildkitd.toml", "--oci-worker-no-process-sandbox"]);
  });

  it("keeps state under the user's home", () => {
    expect(deployed.inputs("container").volumes).toEqual([{ volumeName: "buildkit-dev-cache", containerPath: "/home/user/.local/share/buildkit" }]);
  });

  it("checks health and smoke-tests on the rootless socket", () => {
    expect(deployed.inputs("container").healthcheck.tests).toEqual(["CMD", "buildctl", "--addr", "unix:///run/user/1000/buildkit/buildkitd.sock", "debug", "workers"]);
    expect(deployed.inputs("smokeTest").create).toContain("--addr unix:///run/user/1000/buildkit/buildkitd.sock");
  });

  it("writes a whole CPU as 1.0 and 512m as 512 MB", () => {
    expect(deployed.inputs("container")).toMatchObject({ cpus: "1.0", memory: 512, memorySwap: 512 });
  });

  it("rotates logs with the configured size and count, and does not restart by default", () => {
    const container = deployed.inputs("container");
    expect(container.logOpts).toEqual({ "max-size": "50m", "max-file": "5" });
    expect(container.restart).toBe("no");
    expect(container.maxRetryCount).toBeUndefined();
  });

  it("keeps its cache under a rootless owner, so switching modes replaces the cache instead of breaking the daemon", () => {
    expect(deployed.options("volume").replacementTrigger).toMatch(/^rootless/);
  });

  it("says in its labels that it is rootless", () => {
    expect(deployed.inputs("container").labels).toContainEqual({ label: "org.buildkit-stack.rootless", value: "true" });
    expect(deployed.inputs("container").labels).toContainEqual({ label: "org.buildkit-stack.container", value: "bk-rootless" });
  });

  it("outputs a docker-container:// host with its own name", async () => {
    expect(await promiseOf(deployed.stack.buildkitHost)).toBe("docker-container://bk-rootless");
  });
});

describe("a TCP listener with mTLS on a remote Docker host", () => {
  let deployed: Deployed;
  let engine: InstanceType<typeof DockerEngine>;
  beforeAll(async () => {
    engine = new DockerEngine("remote-host", { host: "ssh://builder@build-host" });
    deployed = await deploy(
      "tcp",
      {
        "buildkit:containerName": "bk-tcp",
        "buildkit:tcpPort": "2345",
        "buildkit:tcpAddress": "10.0.0.5",
        ...tlsConfig(REMOTE_TLS),
        "buildkit:dockerHost": "ssh://builder@build-host",
      },
      engine,
    );
  });

  it("publishes container port 1234 on the configured host address and port", () => {
    expect(deployed.inputs("container").ports).toEqual([{ internal: 1234, external: 2345, ip: "10.0.0.5", protocol: "tcp" }]);
  });

  it("listens on the socket and on TCP with the server certificate", () => {
    expect(deployed.inputs("container").command).toEqual([
      "--config", "/etc/buildkit/buildkitd.toml",
      "--addr", "unix:///run/buildkit/buildkitd.sock", "--addr", "tcp://0.0.0.0:1234",
      "--tlscacert", "/etc/buildkit/tls/ca.pem", "--tlscert", "/etc/buildkit/tls/cert.pem", "--tlskey", "/etc/buildkit/tls/key.pem",
    ]);
  });

  it("uploads the config and the server's TLS files, the key making the uploads secret", () => {
    const uploads = deployed.inputs("container").uploads;
    // The key makes the whole upload list a secret: encrypted in state, never shown in a diff.
    expect(isSecret(uploads)).toBe(true);
    expect(reveal(uploads)).toEqual([
      { file: "/etc/buildkit/buildkitd.toml", content: renderBuildkitdToml(deployed.settings) },
      { file: "/etc/buildkit/tls/ca.pem", content: REMOTE_TLS.ca },
      { file: "/etc/buildkit/tls/cert.pem", content: REMOTE_TLS.cert },
      { file: "/etc/buildkit/tls/key.pem", content: REMOTE_TLS.key },
    ]);
  });

  it("outputs a tcp:// BUILDKIT_HOST on the published address", async () => {
    expect(await promiseOf(deployed.stack.buildkitHost)).toBe("tcp://10.0.0.5:2345");
  });

  it("sends every Docker resource to the given engine's provider", () => {
    for (const kind of ["image", "network", "volume", "container"] as const) {
      expect(deployed.options(kind).provider).toBe(engine.provider);
      expect(deployed.providerRef(kind)).toMatch(/::pulumi:providers:docker::remote-host::remote-host-id$/);
    }
  });

  it("smoke-tests through the listener with the client certificate, on the same Docker host", () => {
    const smokeTest = deployed.inputs("smokeTest");
    expect(isSecret(smokeTest.environment)).toBe(true);
    expect(reveal(smokeTest.environment)).toEqual({
      CONTAINER: "bk-tcp",
      IMAGE: IMAGE_ID,
      NETWORK: "buildkit-dev",
      ATTEMPTS: "60",
      DOCKER_HOST: "ssh://builder@build-host",
      BK_CA: REMOTE_TLS.ca,
      BK_CERT: REMOTE_TLS.clientCert,
      BK_KEY: REMOTE_TLS.clientKey,
    });
    expect(smokeTest.create).toContain('docker run --rm -i --network "$NETWORK" -e BK_CA -e BK_CERT -e BK_KEY --entrypoint sh "$IMAGE"');
    expect(smokeTest.create).toContain("--addr tcp://bk-tcp:1234 --tlscacert $d/ca.pem --tlscert $d/cert.pem --tlskey $d/key.pem");
  });
});

describe("a TCP listener on the local engine", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("server-tls", {
      "buildkit:containerName": "bk-server-tls",
      "buildkit:tcpPort": "1234",
      ...tlsConfig(LOCAL_TLS),
    });
  });

  it("publishes on 127.0.0.1 by default", async () => {
    expect(deployed.inputs("container").ports).toEqual([{ internal: 1234, external: 1234, ip: "127.0.0.1", protocol: "tcp" }]);
    expect(await promiseOf(deployed.stack.buildkitHost)).toBe("tcp://127.0.0.1:1234");
  });

  it("gives the smoke test the client certificate and no DOCKER_HOST", () => {
    expect(reveal(deployed.inputs("smokeTest").environment)).toEqual({
      CONTAINER: "bk-server-tls",
      IMAGE: IMAGE_ID,
      NETWORK: "buildkit-dev",
      ATTEMPTS: "60",
      BK_CA: LOCAL_TLS.ca,
      BK_CERT: LOCAL_TLS.clientCert,
      BK_KEY: LOCAL_TLS.clientKey,
    });
  });
});

describe("a production daemon", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("production", {
      "buildkit:production": "true",
      "buildkit:allowPrivileged": "true",
      "buildkit:containerName": "bk-prod",
      "buildkit:memory": "4g",
      "buildkit:cpus": "2",
      "buildkit:cacheMaxUsedSpace": "20g",
    });
  });

  it("protects and retains the cache volume by default", () => {
    expect(deployed.options("volume")).toMatchObject({ protect: true, retainOnDelete: true, deleteBeforeReplace: true });
  });

  it("restarts unless stopped, with the seed's limits", () => {
    expect(deployed.inputs("container")).toMatchObject({ restart: "unless-stopped", memory: 4096, memorySwap: 4096, cpus: "2.0", privileged: true });
  });

  it("says in its labels that it is production and allowed privileges", () => {
    expect(deployed.inputs("container").labels).toEqual(
      expect.arrayContaining([
        { label: "org.buildkit-stack.production", value: "true" },
        { label: "org.buildkit-stack.allow-privileged", value: "true" },
      ]),
    );
  });
});

describe("the cache guard", () => {
  const { execFileSync } = require("child_process") as typeof import("child_process");
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const path = require("path") as typeof import("path");
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("guarded", { "buildkit:containerName": "bk-guarded", "buildkit:cacheProtected": "true" });
  });

  /** Runs the guard's script as the command provider does, with a fake docker that lists daemons of `modes` on the volume. */
  function runGuard(environment: Record<string, string>, previous?: string, modes = ""): { code: number; stdout: string; stderr: string } {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "guard-docker-"));
    fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\nprintf '%s' '${modes}'\n`, { mode: 0o755 });
    const env = { PATH: `${bin}:${process.env.PATH}`, ...environment, ...(previous !== undefined ? { PULUMI_COMMAND_STDOUT: previous } : {}) };
    try {
      const guard = deployed.inputs("cacheGuard");
      const stdout = execFileSync("/bin/sh", ["-c", guard.create], { env: { ...env, CACHE_GUARD: guard.environment.CACHE_GUARD }, encoding: "utf8", stdio: "pipe" });
      return { code: 0, stdout: stdout.trim(), stderr: "" };
    } catch (error) {
      const failed = error as { status: number; stdout: string; stderr: string };
      return { code: failed.status, stdout: failed.stdout.trim(), stderr: failed.stderr.trim() };
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  }
  const rootless = { VOLUME: "buildkit-dev-cache", OWNER: "rootless", ROOTLESS: "true", RETAINED: "false" };

  it("records who owns the cache and whether Pulumi keeps it on delete", () => {
    const { CACHE_GUARD, ...record } = deployed.inputs("cacheGuard").environment;
    expect(record).toEqual({ VOLUME: "buildkit-dev-cache", OWNER: "root", ROOTLESS: "false", RETAINED: "true" });
    expect(CACHE_GUARD).toContain('record="cache $VOLUME owner $OWNER retained $RETAINED"');
    expect(runGuard({ VOLUME: "v", OWNER: "root", ROOTLESS: "false", RETAINED: "true" })).toEqual({ code: 0, stdout: "cache v owner root retained true", stderr: "" });
  });

  it("runs before the volume and the network, whose replacements remove the daemon first", () => {
    expect(deployed.options("volume").dependsOn).toContain(deployed.stack.cacheGuard);
    expect(deployed.options("network").dependsOn).toContain(deployed.stack.cacheGuard);
  });

  it("refuses a mode switch of the same volume that the last deploy kept on delete, saying how instead", () => {
    const refused = runGuard(rootless, "cache buildkit-dev-cache owner root retained true");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^refused before anything was touched: buildkit:rootless switches the cache volume buildkit-dev-cache from a root daemon to a rootless one/);
    expect(refused.stderr).toContain("set buildkit:cacheProtected false (keep buildkit:rootless as deployed) and pulumi up, then switch buildkit:rootless in a second up");
  });

  it("lets a switch through when the old cache is deleted, or renamed away", () => {
    expect(runGuard(rootless, "cache buildkit-dev-cache owner root retained false").code).toBe(0);
    expect(runGuard(rootless, "cache old-cache owner root retained true").code).toBe(0);
    expect(runGuard({ ...rootless, OWNER: "root", ROOTLESS: "false", RETAINED: "true" }, "cache buildkit-dev-cache owner root retained false").stdout).toBe(
      "cache buildkit-dev-cache owner root retained true",
    );
  });

  it("without a record, refuses a switch away from the mode of the daemons using the volume", () => {
    expect(runGuard(rootless, undefined, "false\n").stderr).toMatch(/^refused before anything was touched: the cache volume buildkit-dev-cache is used by a daemon with buildkit:rootless false/);
    expect(runGuard(rootless, undefined, "true\n").code).toBe(0);
    expect(runGuard(rootless, undefined, "").code).toBe(0);
  });
});

describe("following the tag at the engine's mirror (buildkit:tagRegistry)", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("follow", { "buildkit:containerName": "bk-follow", "buildkit:tagRegistry": "http://127.0.0.1:5000" });
  });

  it("asks the mirror for the tag's current digest with the provider's getRegistryImage, through a provider of its own", () => {
    const lookups = invoked.filter((i) => i.token === "docker:index/getRegistryImage:getRegistryImage" && i.inputs.name === "127.0.0.1:5000/moby/buildkit:v0.32.2");
    expect(lookups).toHaveLength(1);
    const lookupProvider = registered.find((r) => r.type === "pulumi:providers:docker" && r.name === "follow-tag-registry");
    expect(lookups[0].provider).toMatch(/follow-tag-registry::/);
    // The provider speaks HTTPS to a registry unless an auth entry gives its http:// address.
    expect(JSON.parse(lookupProvider!.inputs.registryAuth)).toEqual([{ address: "http://127.0.0.1:5000", authDisabled: true }]);
  });

  it("pulls the image by that digest and runs the container by it, so preview knows the exact plan", () => {
    expect(deployed.inputs("image")).toEqual({ name: `moby/buildkit@${TAG_DIGEST}`, keepLocally: true });
    expect(deployed.inputs("container").image).toBe(`moby/buildkit@${TAG_DIGEST}`);
    expect(deployed.options("container").dependsOn).toContain(deployed.stack.image);
  });

  it("leaves the stack's own provider alone: no stack resource goes through the look-up's", () => {
    for (const kind of ["image", "container", "network", "volume"] as const) expect(deployed.providerRef(kind) ?? "").not.toMatch(/tag-registry/);
  });
});

describe("a tag that is not followed", () => {
  it("invokes nothing and creates no look-up provider", async () => {
    const before = invoked.length;
    await deploy("unfollowed", { "buildkit:containerName": "bk-unfollowed" });
    expect(invoked.slice(before).filter((i) => i.token.includes("getRegistryImage"))).toEqual([]);
    expect(registered.some((r) => r.name === "unfollowed-tag-registry")).toBe(false);
  });
});

describe("a precious cache and no smoke test", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("precious", { "buildkit:containerName": "bk-precious", "buildkit:cacheProtected": "true", "buildkit:smokeTest": "false" });
  });

  it("protects and retains the cache volume when asked to outside production", () => {
    expect(deployed.options("volume")).toMatchObject({ protect: true, retainOnDelete: true });
  });

  it("declares no smoke test and says so in its output", async () => {
    expect(deployed.count("smokeTest")).toBe(0);
    expect(deployed.stack.smokeTest).toBeUndefined();
    expect(await promiseOf(deployed.stack.smokeTestSummary)).toBe("smoke test disabled");
  });
});

describe("the smoke test's trigger", () => {
  it("changes with any container input the provider updates in place, and only then", async () => {
    const base = { "buildkit:memory": "1g", "buildkit:restartPolicy": "no" };
    const triggerOf = async (name: string, raw: Record<string, unknown>) => (await deploy(name, raw)).inputs("smokeTest").triggers[1];
    const before = await triggerOf("trigger-a", base);
    expect(await triggerOf("trigger-b", base)).toBe(before);
    expect(await triggerOf("trigger-c", { ...base, "buildkit:memory": "2g" })).not.toBe(before);
    expect(await triggerOf("trigger-d", { ...base, "buildkit:restartPolicy": "always" })).not.toBe(before);
    expect(await triggerOf("trigger-e", { ...base, "buildkit:stopGracePeriod": "1m" })).not.toBe(before);
  });
});

describe("CPUs in the provider's spelling", () => {
  // The docker provider reads NanoCPUs back with nanoInt64ToDecimalString
  // (internal/provider/helpers.go): "1.0" for whole numbers with one digit,
  // trailing zeros trimmed otherwise, so 10 comes back as "10.".
  it.each([
    [1, "1.0"],
    [2, "2.0"],
    [2.5, "2.5"],
    [0.5, "0.5"],
    [1.25, "1.25"],
    [0.75, "0.75"],
    [10, "10."],
  ])("writes %d as %s, as the provider reads it back", (cpus, text) => {
    expect(providerCpus(cpus)).toBe(text);
  });
});

describe("a rootless daemon with a TCP listener", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("rootless-tcp", {
      "buildkit:rootless": "true",
      "buildkit:containerName": "bk-rootless-tcp",
      "buildkit:tcpPort": "4321",
      ...tlsConfig(LOCAL_TLS),
    });
  });

  it("keeps the rootless socket next to the TLS listener, and still disables the process sandbox", () => {
    expect(deployed.inputs("container").command).toEqual([
      "--config", "/etc/buildkit/buildkitd.toml",
      "--addr", "unix:///run/user/1000/buildkit/buildkitd.sock", "--addr", "tcp://0.0.0.0:1234",
      "--tlscacert", "/etc/buildkit/tls/ca.pem", "--tlscert", "/etc/buildkit/tls/cert.pem", "--tlskey", "/etc/buildkit/tls/key.pem",
      "--oci-worker-no-process-sandbox",
    ]);
  });

  it("stays unprivileged with seccomp and apparmor unconfined", () => {
    expect(deployed.inputs("container")).toMatchObject({ privileged: false, securityOpts: ["seccomp=unconfined", "apparmor=unconfined"] });
  });

  it("publishes the listener and outputs its tcp:// address", async () => {
    expect(deployed.inputs("container").ports).toEqual([{ internal: 1234, external: 4321, ip: "127.0.0.1", protocol: "tcp" }]);
    expect(await promiseOf(deployed.stack.buildkitHost)).toBe("tcp://127.0.0.1:4321");
  });
});

describe("the container's name and smallest memory limit", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("named", { "buildkit:containerName": "bk-named", "buildkit:memory": "32m" });
  });

  it("names the container as configured", () => {
    expect(deployed.inputs("container").name).toBe("bk-named");
  });

  it("passes the smallest accepted limit (32 MiB, measured) through as 32 MB, swap equal", () => {
    expect(deployed.inputs("container")).toMatchObject({ memory: 32, memorySwap: 32 });
  });

  it("sets no CPU or shm limit when none is configured", () => {
    const container = deployed.inputs("container");
    expect(container.cpus).toBeUndefined();
    expect(container.shmSize).toBeUndefined();
  });
});

describe("a remote Docker host without TLS", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    // No engine given: the component builds its own from dockerHost, provider and smoke test alike.
    deployed = await deploy("remote-plain", { "buildkit:containerName": "bk-remote", "buildkit:dockerHost": "tcp://build-host:2376" });
  });

  it("points the smoke test's docker CLI at that host, with no certificates", () => {
    const smokeTest = deployed.inputs("smokeTest");
    expect(isSecret(smokeTest.environment)).toBe(false);
    expect(smokeTest.environment).toEqual({
      CONTAINER: "bk-remote",
      IMAGE: IMAGE_ID,
      NETWORK: "buildkit-dev",
      ATTEMPTS: "60",
      DOCKER_HOST: "tcp://build-host:2376",
    });
    expect(smokeTest.create).toContain('docker exec -i "$CONTAINER" sh');
  });

  it("sends every Docker resource through a provider of its own for the same host", () => {
    const provider = registered.find((r) => r.type === "pulumi:providers:docker" && r.name === "remote-plain-docker");
    expect(provider?.inputs.host).toBe("tcp://build-host:2376");
    for (const kind of ["image", "network", "volume", "container"] as const) {
      expect(deployed.providerRef(kind)).toMatch(/\$pulumi:providers:docker::remote-plain-docker::remote-plain-docker-id$/);
    }
  });
});

describe("an engine that is not the configured dockerHost", () => {
  it("is refused, naming both, before any resource is declared", () => {
    const settings = parseDockerSettings({ "buildkit:dockerHost": "ssh://builder@build-a" }, { stack: "dev" });
    const engine = new DockerEngine("build-b-engine", { host: "ssh://builder@build-b" });
    expect(() => new BuildkitStack("mismatch", { ...settings, engine })).toThrow(
      "BuildkitStack mismatch: dockerHost is ssh://builder@build-a but the engine given is at ssh://builder@build-b",
    );
    expect(registered.filter((r) => r.name.startsWith("mismatch-"))).toEqual([]);
  });
});

describe("BUILDKIT_HOST of a TCP listener", () => {
  it.each([
    ["127.0.0.1", undefined, "tcp://127.0.0.1:1234"],
    ["::1", undefined, "tcp://[::1]:1234"],
    ["fd00::5", "ssh://builder@build-host", "tcp://[fd00::5]:1234"],
    ["10.0.0.5", "tcp://build-host:2376", "tcp://10.0.0.5:1234"],
    // A wildcard listens on every interface of the Docker host: clients dial that host.
    ["0.0.0.0", undefined, "tcp://127.0.0.1:1234"],
    ["::", undefined, "tcp://[::1]:1234"],
    ["0.0.0.0", "unix:///var/run/docker.sock", "tcp://127.0.0.1:1234"],
    ["0.0.0.0", "tcp://build-host:2376", "tcp://build-host:1234"],
    ["0.0.0.0", "ssh://builder@build-host", "tcp://build-host:1234"],
    ["::", "ssh://builder@build-host:2222", "tcp://build-host:1234"],
    ["0.0.0.0", "tcp://[fd00::7]:2376", "tcp://[fd00::7]:1234"],
    // Loopback on a remote host is reachable only there (or through ssh -L): dialled as published.
    ["127.0.0.1", "ssh://builder@build-host", "tcp://127.0.0.1:1234"],
  ])("tcpAddress %s on docker host %s is %s", (address, dockerHost, expected) => {
    expect(tcpBuildkitHost(address, 1234, dockerHost)).toBe(expected);
  });

  it("names the provider's remote host when published on all interfaces", async () => {
    const deployed = await deploy(
      "tcp-wildcard",
      {
        "buildkit:containerName": "bk-tcp-wildcard",
        "buildkit:tcpPort": "2346",
        "buildkit:tcpAddress": "0.0.0.0",
        ...tlsConfig(WILDCARD_TLS),
        "buildkit:dockerHost": "ssh://builder@build-host",
      },
      new DockerEngine("wildcard-host", { host: "ssh://builder@build-host" }),
    );
    expect(await promiseOf(deployed.stack.buildkitHost)).toBe("tcp://build-host:2346");
    expect(reveal(deployed.inputs("smokeTest").environment).DOCKER_HOST).toBe("ssh://builder@build-host");
  });
});
