/**
 * What only the engine can judge (components/docker/engine-preflight.ts),
 * against a fake engine's answers: each refusal names the key, the engine and
 * the engine's own numbers. The real engine's answers are exercised in
 * tests/integration/engine-judged.test.ts.
 */
import { bindingsCollide, EngineInspector, enginePreflightProblems } from "../../../components/docker/engine-preflight";
import { parseDockerSettings } from "../../../components/docker/config";
import { endpointIdentity, FleetHostSettings, sharedObjectProblems } from "../../../components/docker/fleet-config";
import { makeCertificates, tlsSettings } from "../certificates";

const OURS = { "org.buildkit-stack.managed-by": "pulumi" };
const WHERE = "unix:///run/test.sock";

function engine(answers: Partial<EngineInspector> & { cpus?: number; swapLimit?: boolean } = {}): EngineInspector {
  return {
    facts: async () => ({ id: "engine-1", name: "host", cpus: answers.cpus ?? 2, swapLimit: answers.swapLimit ?? true }),
    containerLabels: answers.containerLabels ?? (async () => undefined),
    networkLabels: answers.networkLabels ?? (async () => undefined),
    volumeLabels: answers.volumeLabels ?? (async () => undefined),
    publishers: answers.publishers ?? (async () => []),
    ...(answers.bindable ? { bindable: answers.bindable } : {}),
  };
}
const settings = (raw: Record<string, unknown> = {}) => parseDockerSettings(raw, { stack: "dev" });
const problems = (raw: Record<string, unknown>, inspector: EngineInspector) => enginePreflightProblems(settings(raw), inspector, WHERE);

describe("what only the engine can judge", () => {
  it("accepts what the engine can run as configured, and a re-deploy of the stack's own objects", async () => {
    const own = async () => OURS;
    expect(await problems({ "buildkit:cpus": "2", "buildkit:memory": "1g" }, engine({ containerLabels: own, networkLabels: own, volumeLabels: own }))).toEqual([]);
  });

  it("refuses more CPUs than the engine has, with its count", async () => {
    expect(await problems({ "buildkit:cpus": "64" }, engine({ cpus: 2 }))).toEqual([
      `buildkit:cpus is 64 but the Docker engine at ${WHERE} has 2 CPUs (docker info: NCPU 2); expected at most 2: docker refuses a larger limit when it creates the container`,
    ]);
  });

  it("refuses a memory limit on an engine without swap accounting", async () => {
    expect((await problems({ "buildkit:memory": "1g" }, engine({ swapLimit: false })))[0]).toMatch(/^buildkit:memory is set but the Docker engine at .* has no swap accounting \(docker info: SwapLimit false\)/);
    expect(await problems({}, engine({ swapLimit: false }))).toEqual([]);
  });

  it("refuses a container, network or volume name another program holds", async () => {
    const foreign = async () => ({ "com.example.owner": "someone" });
    expect(await problems({}, engine({ containerLabels: foreign, volumeLabels: foreign }))).toEqual([
      `buildkit:containerName is "buildkitd" but a container of that name on the Docker engine at ${WHERE} was not made by this program (no org.buildkit-stack.managed-by label); choose another name, or remove that container if it is yours to remove`,
      `buildkit:cacheVolumeName is "buildkit-dev-cache" but a volume of that name on the Docker engine at ${WHERE} was not made by this program (no org.buildkit-stack.managed-by label); choose another name, or remove that volume if it is yours to remove`,
    ]);
  });

  it("leaves a held name to npm run drift's own report when asked (its previews): the other checks still run", async () => {
    const foreign = async () => ({ "com.example.owner": "someone" });
    const inspector = engine({ containerLabels: foreign, volumeLabels: foreign });
    expect(await enginePreflightProblems(settings({}), inspector, WHERE, false)).toEqual([]);
    expect(await enginePreflightProblems(settings({ "buildkit:cpus": "64" }), inspector, WHERE, false)).toHaveLength(1);
  });

  describe("a published port", () => {
    const certificates = tlsSettings(makeCertificates({ serverSans: ["DNS:buildkitd", "IP:127.0.0.1", "IP:10.9.9.9"] }));
    const tcp = { "buildkit:tcpPort": "1234", ...Object.fromEntries(Object.entries(certificates).map(([key, value]) => [`buildkit:${key}`, value])) };

    it("is refused when another container publishes it on a colliding address", async () => {
      const publishers = async () => [{ container: "web", address: "0.0.0.0" }];
      expect(await problems(tcp, engine({ publishers }))).toEqual([
        `buildkit:tcpPort is 1234 but container "web" on the Docker engine at ${WHERE} already publishes it (on 0.0.0.0); choose another port, or stop publishing it there`,
      ]);
    });

    it("is the stack's own when its container publishes it: no bind test", async () => {
      const bindable = jest.fn(async () => "in use" as const);
      expect(await problems(tcp, engine({ publishers: async () => [{ container: "buildkitd", address: "127.0.0.1" }], bindable }))).toEqual([]);
      expect(bindable).not.toHaveBeenCalled();
    });

    it("is refused when a process on the (local) host listens there, or the host lacks the address", async () => {
      expect(await problems(tcp, engine({ bindable: async () => "in use" }))).toEqual([
        `buildkit:tcpPort is 1234 but something on the Docker host at ${WHERE} (not a container) already listens on 127.0.0.1:1234; choose another port, or stop it`,
      ]);
      expect(await problems({ ...tcp, "buildkit:tcpAddress": "10.9.9.9" }, engine({ bindable: async () => "no such address" }))).toEqual([
        `buildkit:tcpAddress is "10.9.9.9" but the Docker host at ${WHERE} has no such address; publish on one of its addresses, or 0.0.0.0 for all`,
      ]);
    });
  });
});

describe("bindings of one port", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1", true],
    ["0.0.0.0", "127.0.0.1", true],
    ["::", "10.0.0.1", true],
    ["127.0.0.1", "10.0.0.1", false],
  ])("%s and %s collide: %s", (a, b, collide) => {
    expect(bindingsCollide(a, b)).toBe(collide);
  });
});

describe("two hosts of a fleet on one engine", () => {
  const host = (name: string, raw: Record<string, unknown>): FleetHostSettings => ({ name, settings: settings(raw) });

  it("are told apart by the engine's identity, not by how its endpoint is spelt", () => {
    const hosts = [
      host("a", { "buildkit:dockerHost": "unix:///run/docker.sock", "buildkit:containerName": "bk", "buildkit:networkName": "net-a", "buildkit:cacheVolumeName": "cache-a" }),
      host("b", { "buildkit:dockerHost": "unix:///run//docker.sock", "buildkit:containerName": "bk", "buildkit:networkName": "net-b", "buildkit:cacheVolumeName": "cache-b" }),
    ];
    expect(sharedObjectProblems(hosts)).toEqual([]);
    expect(sharedObjectProblems(hosts, () => ({ key: "engine-1", description: "engine-1" }))).toEqual([
      { host: "b", text: 'its container "bk" on engine-1 is already host "a"\'s; give one of them another name' },
    ]);
  });

  it("collide on a port by what they bind: 0.0.0.0 takes it on every address", () => {
    // Only the rule between hosts is under test: the listener's own settings as config would give them.
    const listener = (name: string, tcpAddress: string): FleetHostSettings => {
      const base = settings({ "buildkit:containerName": name, "buildkit:networkName": name, "buildkit:cacheVolumeName": name });
      return { name, settings: { ...base, tcpPort: 1234, tcpAddress } };
    };
    const hosts = [listener("host-a", "0.0.0.0"), listener("host-b", "127.0.0.1")];
    expect(sharedObjectProblems(hosts, endpointIdentity)).toEqual([
      { host: "host-b", text: 'its TCP port "127.0.0.1:1234" on the local engine is already host "host-a"\'s; give one of them another name' },
    ]);
  });
});
