/**
 * BuildkitFleet under Pulumi mocks: one provider and one BuildkitStack per
 * host, every name derived from the fleet's and the host's names, each host's
 * resources sent through its own provider, endpoints for clients, and the
 * roll: nothing of host k+1 is registered before host k's smoke test is done.
 */
import * as pulumi from "@pulumi/pulumi";

import { parseFleetSettings } from "../../../components/docker/fleet-config";
import { makeCertificates, tlsSettings } from "../certificates";

const PEM = (what: string) => `-----BEGIN ${what}-----\nx\n-----END ${what}-----`;

interface Registration {
  type: string;
  name: string;
  inputs: Record<string, any>;
  provider?: string;
}
/** In the order the mock engine received them. */
const registered: Registration[] = [];
/** Smoke tests the engine is "running", released by the test in roll order. */
const pendingSmokeTests = new Map<string, () => void>();

pulumi.runtime.setMocks(
  {
    async newResource(args) {
      registered.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider });
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "docker:index/remoteImage:RemoteImage") state.imageId = "sha256:" + "1".repeat(64);
      // Smoke tests wait for the test's release; the cache guard (a command too) runs at once.
      if (args.type === "command:local:Command" && args.name.endsWith("-smoke-test")) {
        await new Promise<void>((resolve) => pendingSmokeTests.set(args.name, resolve));
        state.stdout = `worker w platforms linux/amd64; test build ok (${args.name})`;
      }
      return { id: `${args.name}-id`, state };
    },
    call: () => ({}),
  },
  "buildkit",
  "fleet",
  false,
);

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { BuildkitFleet } = require("../../../components/docker/buildkit-fleet") as typeof import("../../../components/docker/buildkit-fleet");

/** The mock monitor hands secret inputs over wrapped in Pulumi's secret signature. */
const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const reveal = (value: any): any => (value !== null && typeof value === "object" && SECRET_SIG in value ? reveal(value.value) : value);

const promiseOf = <T>(output: pulumi.Output<T>): Promise<T> => new Promise((resolve) => output.apply(resolve));

/** Lets the SDK run until `condition` holds; fails after a bounded number of event-loop turns. */
async function settle(what: string, condition: () => boolean, turns = 200): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  throw new Error(`never happened: ${what}`);
}
/** Gives the SDK a bounded number of event-loop turns to do anything it is free to do. */
async function idle(turns = 50): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 1));
}

const hosts = parseFleetSettings(
  {
    "buildkit:memory": "1g",
    "buildkit:hosts": JSON.stringify([
      { name: "local" },
      { name: "ssh-1", dockerHost: "ssh://root@127.0.0.1:18421" },
      { name: "tls-1", dockerHost: "tcp://127.0.0.1:18422", dockerTlsCa: PEM("CERTIFICATE"), dockerTlsCert: PEM("CERTIFICATE"), dockerTlsKey: PEM("PRIVATE KEY") },
    ]),
  },
  { stack: "fleet" },
)!;

const names = (type: string) => registered.filter((r) => r.type === type).map((r) => r.name);
const PROVIDER = "pulumi:providers:docker";
const SMOKE = "command:local:Command";

describe("a three-host fleet", () => {
  let fleet: InstanceType<typeof BuildkitFleet>;

  beforeAll(() => {
    fleet = new BuildkitFleet("fleet", { hosts });
  });

  it("rolls: host k+1's provider, and so all its resources, wait for host k's smoke test", async () => {
    for (const [index, host] of hosts.entries()) {
      await settle(`host ${host.name}'s smoke test to start`, () => pendingSmokeTests.has(`fleet-${host.name}-smoke-test`));
      await idle();
      const next = hosts[index + 1];
      if (next) {
        // While host k is being proven, nothing of host k+1 exists yet.
        expect(names(PROVIDER)).not.toContain(`fleet-${next.name}-docker`);
        expect(registered.filter((r) => r.name.startsWith(`fleet-${next.name}-`))).toEqual([]);
      }
      pendingSmokeTests.get(`fleet-${host.name}-smoke-test`)!();
    }
    await promiseOf(fleet.endpoints);
    expect(names(PROVIDER)).toEqual(["fleet-local-docker", "fleet-ssh-1-docker", "fleet-tls-1-docker"]);
    expect(names(SMOKE).filter((n) => n.endsWith("-smoke-test"))).toEqual(["fleet-local-smoke-test", "fleet-ssh-1-smoke-test", "fleet-tls-1-smoke-test"]);
  });

  it("gives each host a provider of its own, with its endpoint and TLS material", () => {
    const providers = registered.filter((r) => r.type === PROVIDER);
    // The local host's provider goes where the docker provider always does without a host: DOCKER_HOST, if set.
    expect(providers[0].inputs.host).toBe(process.env.DOCKER_HOST);
    expect(providers[1].inputs.host).toBe("ssh://root@127.0.0.1:18421");
    expect(providers[2].inputs).toMatchObject({ host: "tcp://127.0.0.1:18422", caMaterial: PEM("CERTIFICATE"), certMaterial: PEM("CERTIFICATE") });
    expect(JSON.stringify(providers[2].inputs.keyMaterial)).toContain("PRIVATE KEY");
  });

  it("sends every docker resource of a host through that host's provider, named after the host", () => {
    for (const host of hosts) {
      const own = registered.filter((r) => r.type.startsWith("docker:index/") && r.name.startsWith(`fleet-${host.name}-`));
      expect(own.map((r) => r.name).sort()).toEqual([`fleet-${host.name}-cache`, `fleet-${host.name}-daemon`, `fleet-${host.name}-image`, `fleet-${host.name}-network`]);
      for (const resource of own) expect(resource.provider).toMatch(new RegExp(`::fleet-${host.name}-docker::fleet-${host.name}-docker-id$`));
      const container = own.find((r) => r.name.endsWith("-daemon"))!;
      expect(container.inputs.name).toBe(`buildkitd-${host.name}`);
    }
  });

  it("points each smoke test's docker CLI at its host, with TLS files only for the tcp:// host", () => {
    const smokeTests = registered.filter((r) => r.type === SMOKE && r.name.endsWith("-smoke-test")).map((r) => ({ ...r, inputs: { ...r.inputs, environment: reveal(r.inputs.environment) } as Record<string, any> }));
    expect(smokeTests.map((r) => r.inputs.environment.DOCKER_HOST)).toEqual([undefined, "ssh://root@127.0.0.1:18421", "tcp://127.0.0.1:18422"]);
    expect(smokeTests[2].inputs.create).toMatch(/^DOCKER_CERT_PATH=\$\(mktemp -d\)/);
    expect(smokeTests[2].inputs.environment.DOCKER_TLS_CA).toBe(PEM("CERTIFICATE"));
    expect(smokeTests[0].inputs.create).not.toContain("DOCKER_CERT_PATH");
    expect(smokeTests[0].inputs.environment).not.toHaveProperty("DOCKER_TLS_CA");
  });

  it("outputs each host's BUILDKIT_HOST, and DOCKER_HOST where docker-container:// needs it", async () => {
    expect(await promiseOf(fleet.endpoints)).toEqual([
      { name: "local", buildkitHost: "docker-container://buildkitd-local" },
      { name: "ssh-1", buildkitHost: "docker-container://buildkitd-ssh-1", dockerHost: "ssh://root@127.0.0.1:18421" },
      { name: "tls-1", buildkitHost: "docker-container://buildkitd-tls-1", dockerHost: "tcp://127.0.0.1:18422" },
    ]);
  });
});

describe("a fleet whose hosts publish buildkitd's own TCP listener, without smoke tests", () => {
  it("hands clients tcp:// endpoints (no Docker API access) and gates the roll on each healthy container", async () => {
    // Config checks the certificates with node:crypto: real ones, covering both hosts' names and addresses.
    const certificates = makeCertificates({ serverSans: ["DNS:buildkitd-a", "DNS:buildkitd-b", "IP:10.0.0.5", "IP:10.0.0.6"] });
    const tls = tlsSettings(certificates);
    const tcpHosts = parseFleetSettings(
      {
        "buildkit:smokeTest": "false",
        "buildkit:hosts": JSON.stringify([
          { name: "a", dockerHost: "ssh://ci@a", tcpPort: 1234, tcpAddress: "10.0.0.5", ...tls },
          { name: "b", dockerHost: "ssh://ci@b", tcpPort: 1234, tcpAddress: "10.0.0.6", ...tls },
        ]),
      },
      { stack: "fleet" },
    )!;
    const fleet = new BuildkitFleet("tcp", { hosts: tcpHosts });
    expect(await promiseOf(fleet.endpoints)).toEqual([
      { name: "a", buildkitHost: "tcp://10.0.0.5:1234" },
      { name: "b", buildkitHost: "tcp://10.0.0.6:1234" },
    ]);
    await settle("host b's container to be registered", () => registered.some((r) => r.name === "tcp-b-daemon"));
    expect(registered.filter((r) => r.name.startsWith("tcp-") && r.name.endsWith("-smoke-test"))).toEqual([]);
    // Host b's provider came after host a's container: the container is the gate without a smoke test.
    const order = registered.map((r) => r.name);
    expect(order.indexOf("tcp-b-docker")).toBeGreaterThan(order.indexOf("tcp-a-daemon"));
  });
});

describe("the fleet as buildx remote-driver nodes", () => {
  const certificates = makeCertificates({ serverSans: ["DNS:buildkitd-amd", "DNS:buildkitd-arm", "IP:127.0.0.1"] });
  const tls = tlsSettings(certificates);
  const nodesOf = (entries: object[]) => {
    const settings = parseFleetSettings({ "buildkit:smokeTest": "false", "buildkit:hosts": JSON.stringify(entries) }, { stack: "fleet" })!;
    return new BuildkitFleet(`bx${registered.length}`, { hosts: settings }).buildxNodes;
  };

  it("gives each host's listener, its configured platforms and the client material, verified against the container name", async () => {
    const nodes = nodesOf([
      { name: "amd", tcpPort: 18431, ...tls },
      { name: "arm", tcpPort: 18432, platforms: ["linux/arm64"], ...tls },
    ]);
    expect(await promiseOf(nodes)).toEqual([
      { name: "amd", buildkitHost: "tcp://127.0.0.1:18431", tls: { serverName: "buildkitd-amd", ca: certificates.ca, cert: certificates.clientCert, key: certificates.clientKey } },
      {
        name: "arm",
        buildkitHost: "tcp://127.0.0.1:18432",
        platforms: ["linux/arm64"],
        tls: { serverName: "buildkitd-arm", ca: certificates.ca, cert: certificates.clientCert, key: certificates.clientKey },
      },
    ]);
  });

  it("is a secret output: it carries client keys", async () => {
    const nodes = nodesOf([{ name: "amd", tcpPort: 18433, ...tls }]);
    expect(await pulumi.isSecret(nodes)).toBe(true);
  });

  it("has no TLS material for a docker-container:// host (no listener)", async () => {
    expect(await promiseOf(nodesOf([{ name: "amd" }]))).toEqual([{ name: "amd", buildkitHost: "docker-container://buildkitd-amd" }]);
  });
});
