import * as pulumi from "@pulumi/pulumi";
import { parse as parseToml } from "smol-toml";

import type { BuildkitStackArgs } from "../../components/buildkit-stack";
import { parseSettings } from "../../components/config";

/** Every resource the mocks saw: type, name, the inputs it was registered with. */
const registered: { type: string; name: string; inputs: Record<string, any> }[] = [];

pulumi.runtime.setMocks(
  {
    newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "docker:index/remoteImage:RemoteImage") {
        state.imageId = "sha256:" + "1".repeat(64);
        state.repoDigest = "moby/buildkit@sha256:" + "2".repeat(64);
      }
      if (args.type === "command:local:Command") state.stdout = "worker w1 platforms linux/amd64; test build ok";
      return { id: `${args.name}-id`, state };
    },
    call: () => ({}),
  },
  "buildkit",
  "dev",
  true,
);

// Imported after setMocks, as Pulumi's own examples do.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { BuildkitStack, providerCpus, renderBuildkitdToml } = require("../../components/buildkit-stack") as typeof import("../../components/buildkit-stack");

const promiseOf = <T>(output: pulumi.Output<T>): Promise<T> => new Promise((resolve) => output.apply(resolve));

/** The mock monitor hands secret inputs over wrapped in Pulumi's secret signature. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const isSecret = (value: any): boolean => value !== null && typeof value === "object" && SECRET_SIG in value;
const reveal = (value: any): any => (isSecret(value) ? value.value : value);

const PEM = (what: string) => `-----BEGIN ${what}-----\nx\n-----END ${what}-----`;

interface Deployed {
  stack: InstanceType<typeof BuildkitStack>;
  inputs: (type: string) => Record<string, any>;
  options: (type: string) => pulumi.CustomResourceOptions;
}

/** Declares a stack from raw config, as index.ts does, and collects what was registered. */
async function deploy(name: string, raw: Record<string, unknown> = {}): Promise<Deployed> {
  const settings = parseSettings(raw, { stack: "dev" });
  const options: Record<string, pulumi.CustomResourceOptions> = {};
  // A parent's transformations see each child's options: the honest way to observe them under mocks.
  const stack = new BuildkitStack(name, settings as BuildkitStackArgs, {
    transformations: [
      (args) => {
        options[args.type] = args.opts as pulumi.CustomResourceOptions;
        return undefined;
      },
    ],
  });
  await promiseOf(stack.smokeTestSummary);
  await promiseOf(stack.containerId);
  const ofType = (type: string) => {
    const match = registered.filter((r) => r.type === type && r.name.startsWith(`${name}-`));
    if (match.length !== 1) throw new Error(`expected one ${type} for ${name}, saw ${match.length}`);
    return match[0].inputs;
  };
  return {
    stack,
    inputs: (short) => ofType(TYPES[short] ?? short),
    options: (short) => options[TYPES[short] ?? short],
  };
}

const TYPES: Record<string, string> = {
  container: "docker:index/container:Container",
  image: "docker:index/remoteImage:RemoteImage",
  network: "docker:index/network:Network",
  volume: "docker:index/volume:Volume",
  smokeTest: "command:local:Command",
};

describe("the default (privileged) daemon", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("plain", {
      "buildkit:memory": "1g",
      "buildkit:cpus": "2.5",
      "buildkit:shmSize": "128m",
      "buildkit:restartPolicy": "on-failure",
      "buildkit:restartMaxRetries": "4",
      "buildkit:labels": '{"team":"platform"}',
      "buildkit:extraHosts": '["host.docker.internal:host-gateway"]',
    });
  });

  it("pulls the configured image and keeps it locally", () => {
    expect(deployed.inputs("image")).toMatchObject({ name: "moby/buildkit:v0.32.2", keepLocally: true });
  });

  it("runs the container from the image id, so a new image behind a tag is a replacement", () => {
    expect(deployed.inputs("container").image).toBe("sha256:" + "1".repeat(64));
  });

  it("is privileged, with no security options", () => {
    const container = deployed.inputs("container");
    expect(container.privileged).toBe(true);
    expect(container.securityOpts).toBeUndefined();
    expect(container.command).toEqual(["--config", "/etc/buildkit/buildkitd.toml"]);
  });

  it("sets the limits in the provider's units", () => {
    expect(deployed.inputs("container")).toMatchObject({ memory: 1024, memorySwap: 1024, cpus: "2.5", shmSize: 128 });
  });

  it("restarts and rotates logs as configured", () => {
    expect(deployed.inputs("container")).toMatchObject({
      restart: "on-failure",
      maxRetryCount: 4,
      logDriver: "json-file",
      logOpts: { "max-size": "10m", "max-file": "3" },
    });
  });

  it("mounts the cache volume at /var/lib/buildkit", () => {
    expect(deployed.inputs("container").volumes).toEqual([{ volumeName: "buildkit-dev-cache", containerPath: "/var/lib/buildkit" }]);
    expect(deployed.inputs("volume").name).toBe("buildkit-dev-cache");
  });

  it("attaches the daemon to the stack's network only", () => {
    expect(deployed.inputs("network")).toMatchObject({ name: "buildkit-dev", driver: "bridge" });
    expect(deployed.inputs("container")).toMatchObject({ networkMode: "buildkit-dev", networksAdvanced: [{ name: "buildkit-dev" }] });
  });

  it("adds the extra hosts", () => {
    expect(deployed.inputs("container").hosts).toEqual([{ host: "host.docker.internal", ip: "host-gateway" }]);
  });

  it("is healthy only when buildctl lists workers, and up waits for it", () => {
    expect(deployed.inputs("container")).toMatchObject({
      healthcheck: { tests: ["CMD", "buildctl", "--addr", "unix:///run/buildkit/buildkitd.sock", "debug", "workers"] },
      wait: true,
    });
  });

  it("labels the container for policy and the network and volume with stable labels only", () => {
    expect(deployed.inputs("container").labels).toEqual([
      { label: "org.buildkit-stack.allow-privileged", value: "true" },
      { label: "org.buildkit-stack.container", value: "buildkitd" },
      { label: "org.buildkit-stack.managed-by", value: "pulumi" },
      { label: "org.buildkit-stack.production", value: "false" },
      { label: "org.buildkit-stack.rootless", value: "false" },
      { label: "team", value: "platform" },
    ]);
    const stable = [
      { label: "org.buildkit-stack.container", value: "buildkitd" },
      { label: "org.buildkit-stack.managed-by", value: "pulumi" },
      { label: "team", value: "platform" },
    ];
    expect(deployed.inputs("network").labels).toEqual(stable);
    expect(deployed.inputs("volume").labels).toEqual(stable);
  });

  it("uploads the rendered buildkitd.toml, and nothing else without TLS", () => {
    const settings = parseSettings({ "buildkit:memory": "1g" }, { stack: "dev" });
    expect(deployed.inputs("container").uploads).toEqual([{ file: "/etc/buildkit/buildkitd.toml", content: renderBuildkitdToml(settings) }]);
  });

  it("replaces fixed-name objects delete-first, and the container when its config changes", () => {
    expect(deployed.options("container")).toMatchObject({ deleteBeforeReplace: true, replaceOnChanges: ["uploads", "command"] });
    expect(deployed.options("network")).toMatchObject({ deleteBeforeReplace: true });
    expect(deployed.options("volume")).toMatchObject({ deleteBeforeReplace: true, protect: false, retainOnDelete: false });
  });

  it("smoke-tests the daemon again whenever the container is replaced", () => {
    const smokeTest = deployed.inputs("smokeTest");
    expect(smokeTest.triggers).toEqual(["plain-daemon-id"]);
    expect(smokeTest.environment).toEqual({ CONTAINER: "buildkitd", IMAGE: "sha256:" + "1".repeat(64), NETWORK: "buildkit-dev", ATTEMPTS: "60" });
    expect(smokeTest.create).toContain('docker exec -i "$CONTAINER" sh');
    expect(smokeTest.create).toContain("debug workers");
    expect(smokeTest.create).toContain("build --frontend dockerfile.v0");
  });

  it("outputs what a user pastes", async () => {
    const { stack } = deployed;
    expect(await promiseOf(stack.buildkitHost)).toBe("docker-container://buildkitd");
    expect(await promiseOf(stack.containerName)).toBe("buildkitd");
    expect(await promiseOf(stack.imageRepoDigest)).toBe("moby/buildkit@sha256:" + "2".repeat(64));
    expect(await promiseOf(stack.cacheVolumeName)).toBe("buildkit-dev-cache");
    expect(await promiseOf(stack.networkName)).toBe("buildkit-dev");
    expect(await promiseOf(stack.smokeTestSummary)).toBe("worker w1 platforms linux/amd64; test build ok");
  });
});

describe("hardened (rootless) mode", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("hardened", { "buildkit:rootless": "true", "buildkit:containerName": "bk-rootless" });
  });

  it("runs the rootless image without --privileged, seccomp and apparmor unconfined", () => {
    expect(deployed.inputs("image").name).toBe("moby/buildkit:v0.32.2-rootless");
    expect(deployed.inputs("container")).toMatchObject({ privileged: false, securityOpts: ["seccomp=unconfined", "apparmor=unconfined"] });
  });

  it("disables the process sandbox and keeps state under the user's home", () => {
    const container = deployed.inputs("container");
    expect(container.command).toContain("--oci-worker-no-process-sandbox");
    expect(container.volumes[0].containerPath).toBe("/home/user/.local/share/buildkit");
    expect(container.healthcheck.tests).toContain("unix:///run/user/1000/buildkit/buildkitd.sock");
  });
});

describe("a TCP listener with mTLS", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("tcp", {
      "buildkit:containerName": "bk-tcp",
      "buildkit:tcpPort": "1234",
      "buildkit:tcpAddress": "10.0.0.5",
      "buildkit:tlsCa": PEM("CA"),
      "buildkit:tlsCert": PEM("CERT"),
      "buildkit:tlsKey": PEM("KEY"),
      "buildkit:tlsClientCert": PEM("CLIENT CERT"),
      "buildkit:tlsClientKey": PEM("CLIENT KEY"),
      "buildkit:dockerHost": "ssh://builder@build-host",
    });
  });

  it("publishes the listener on the configured host address and port", () => {
    expect(deployed.inputs("container").ports).toEqual([{ internal: 1234, external: 1234, ip: "10.0.0.5", protocol: "tcp" }]);
  });

  it("listens on the socket and on TCP with the server certificate", () => {
    expect(deployed.inputs("container").command).toEqual([
      "--config", "/etc/buildkit/buildkitd.toml",
      "--addr", "unix:///run/buildkit/buildkitd.sock", "--addr", "tcp://0.0.0.0:1234",
      "--tlscacert", "/etc/buildkit/tls/ca.pem", "--tlscert", "/etc/buildkit/tls/cert.pem", "--tlskey", "/etc/buildkit/tls/key.pem",
    ]);
    // The key makes the whole upload list a secret: it is encrypted in state, never shown in a diff.
    expect(isSecret(deployed.inputs("container").uploads)).toBe(true);
    expect(reveal(deployed.inputs("container").uploads).map((u: { file: string }) => u.file)).toEqual([
      "/etc/buildkit/buildkitd.toml", "/etc/buildkit/tls/ca.pem", "/etc/buildkit/tls/cert.pem", "/etc/buildkit/tls/key.pem",
    ]);
  });

  it("outputs a tcp:// BUILDKIT_HOST", async () => {
    expect(await promiseOf(deployed.stack.buildkitHost)).toBe("tcp://10.0.0.5:1234");
  });

  it("smoke-tests through the listener with the client certificate, on the same Docker host", () => {
    const smokeTest = deployed.inputs("smokeTest");
    expect(isSecret(smokeTest.environment)).toBe(true);
    expect(reveal(smokeTest.environment)).toMatchObject({ DOCKER_HOST: "ssh://builder@build-host", BK_CA: PEM("CA"), BK_CERT: PEM("CLIENT CERT"), BK_KEY: PEM("CLIENT KEY") });
    expect(smokeTest.create).toContain('docker run --rm -i --network "$NETWORK"');
    expect(smokeTest.create).toContain("--addr tcp://bk-tcp:1234 --tlscacert $d/ca.pem");
  });
});

describe("a precious cache and no smoke test", () => {
  let deployed: Deployed;
  beforeAll(async () => {
    deployed = await deploy("precious", { "buildkit:containerName": "bk-precious", "buildkit:cacheProtected": "true", "buildkit:smokeTest": "false" });
  });

  it("protects and retains the cache volume", () => {
    expect(deployed.options("volume")).toMatchObject({ protect: true, retainOnDelete: true });
  });

  it("declares no smoke test and says so in its output", async () => {
    expect(registered.filter((r) => r.type === TYPES.smokeTest && r.name.startsWith("precious-"))).toEqual([]);
    expect(await promiseOf(deployed.stack.smokeTestSummary)).toBe("smoke test disabled");
  });
});

describe("buildkitd.toml", () => {
  const render = (raw: Record<string, unknown>) => renderBuildkitdToml(parseSettings(raw, { stack: "dev" }));

  it("writes the GC floor, ceiling and free-space in BuildKit's current fields", () => {
    const text = render({ "buildkit:cacheReservedSpace": "1g", "buildkit:cacheMaxUsedSpace": "10g", "buildkit:cacheMinFreeSpace": "5g", "buildkit:maxParallelism": "4" });
    const toml = parseToml(text) as any;
    expect(toml.worker.oci).toEqual({
      enabled: true,
      gc: true,
      reservedSpace: 1024 ** 3,
      maxUsedSpace: 10 * 1024 ** 3,
      minFreeSpace: 5 * 1024 ** 3,
      "max-parallelism": 4,
    });
    expect(toml.worker.containerd).toEqual({ enabled: false });
  });

  it("never writes the deprecated keepBytes or gckeepstorage", () => {
    const text = render({ "buildkit:cacheReservedSpace": "1g", "buildkit:cacheMaxUsedSpace": "10g" });
    expect(text).not.toMatch(/keepBytes|gckeepstorage/i);
  });

  it("points Docker Hub at the mirrors and trusts a plain-HTTP one", () => {
    const toml = parseToml(render({ "buildkit:registryMirrors": '["http://host.docker.internal:5000","mirror.example.com"]' })) as any;
    expect(toml.registry).toEqual({
      "docker.io": { mirrors: ["host.docker.internal:5000", "mirror.example.com"] },
      "host.docker.internal:5000": { http: true, insecure: true },
    });
  });

  it("sets debug logging, and no registry section without mirrors", () => {
    const toml = parseToml(render({ "buildkit:debug": "true" })) as any;
    expect(toml.debug).toBe(true);
    expect(toml.registry).toBeUndefined();
  });
});

describe("CPUs in the provider's spelling", () => {
  it.each([
    [1, "1.0"],
    [2, "2.0"],
    [2.5, "2.5"],
    [0.5, "0.5"],
    [1.25, "1.25"],
  ])("writes %d as %s, as the provider reads it back", (cpus, text) => {
    expect(providerCpus(cpus)).toBe(text);
  });
});
