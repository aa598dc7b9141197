/**
 * The program as reviewers meet it: `pulumi preview` of the repo's own dev and
 * prod stack files lists exactly the expected resources, and a wrong stack
 * file fails before anything is registered, naming every problem; `pulumi up`
 * of a refused stack leaves nothing on the engine.
 */
import { createTestStack, DEPLOY_TIMEOUT_MS, mustRun, TestStack } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

/** Type and name of every resource a preview plans to create, and every warning it printed, from its event stream. */
async function plannedResources(testStack: TestStack): Promise<{ planned: string[]; warnings: string[] }> {
  const planned: string[] = [];
  const warnings: string[] = [];
  await testStack.stack.preview({
    onOutput: () => undefined,
    onEvent: (event) => {
      const step = event.resourcePreEvent?.metadata;
      if (step && step.op === "create") planned.push(`${step.type}::${step.urn.split("::").pop()}`);
      const diagnostic = event.diagnosticEvent;
      if (diagnostic && diagnostic.severity === "warning") warnings.push(diagnostic.message.trim());
    },
  });
  return { planned: planned.sort(), warnings };
}

const EXPECTED = [
  "buildkit:index:BuildkitStack::buildkit",
  "command:local:Command::buildkit-cache-owner",
  "command:local:Command::buildkit-smoke-test",
  "docker:index/container:Container::buildkit-daemon",
  "docker:index/network:Network::buildkit-network",
  "docker:index/remoteImage:RemoteImage::buildkit-image",
  "docker:index/volume:Volume::buildkit-cache",
  "pulumi:providers:command::default_1_2_1",
  "pulumi:providers:docker::docker-host",
  "pulumi:pulumi:Stack::buildkit-" /* + stack name */,
];

describe.each(["dev", "prod"])("the %s stack file", (stackFile) => {
  let testStack: TestStack;
  beforeAll(async () => {
    testStack = await createTestStack(`preview-${stackFile}`, {}, { fromStackFile: stackFile });
  });
  afterAll(async () => testStack?.cleanup());

  it("previews exactly the expected resources, with no warning (e.g. about a fleet output left undefined)", async () => {
    const expected = EXPECTED.map((r) => (r.endsWith("buildkit-") ? `${r}preview-${stackFile}` : r)).sort();
    const { planned, warnings } = await plannedResources(testStack);
    expect(planned).toEqual(expected);
    expect(warnings).toEqual([]);
  });
});

describe("a wrong stack file", () => {
  let testStack: TestStack;
  beforeAll(async () => {
    testStack = await createTestStack("badconfig", { memory: "4 gigs", tcpPort: "1234", restartPolicy: "sometimes", memroy: "1g" });
  });
  afterAll(async () => testStack?.cleanup());

  it("fails the preview with every problem named, and registers no resource", async () => {
    let output = "";
    const planned: string[] = [];
    await expect(
      testStack.stack.preview({
        onOutput: (line) => (output += line),
        onEvent: (event) => {
          const step = event.resourcePreEvent?.metadata;
          if (step && step.type !== "pulumi:pulumi:Stack") planned.push(step.type);
        },
      }),
    ).rejects.toThrow();
    expect(output).toContain("Invalid stack configuration (4 problems)");
    expect(output).toContain('buildkit:memory is "4 gigs"; expected a size in docker\'s units');
    expect(output).toContain('buildkit:restartPolicy is "sometimes"; expected one of no, always, unless-stopped, on-failure');
    expect(output).toContain("buildkit:memroy is not a setting this program reads");
    expect(output).toContain("buildkit:tcpPort is 1234 but no TLS is configured");
    expect(planned).toEqual([]);
  });
});

/**
 * Values that used to be accepted and then failed mid-deploy (docker refused
 * the network, the log options, the extra host; buildkitd never became healthy
 * in 6.5 MiB; the smoke test could not connect without a client certificate),
 * leaving a volume, a network or a container behind. Other helpers create
 * docker objects on the same engine concurrently, so the comparison is limited
 * to names this test's stacks would have used: every one carries the `b-refused`
 * id (container bk-it-b-refused-N, network bk-it-b-refused-N or the configured
 * one, volume bk-it-b-refused-N-cache).
 */
describe("pulumi up of a refused stack", () => {
  const ID = "b-refused";
  /** Names of docker objects whose name contains `marker`, one list per kind. */
  const dockerObjects = (marker: string) => ({
    containers: mustRun("docker", ["ps", "-a", "--format", "{{.Names}}"]).split("\n").filter((n) => n.includes(marker)).sort(),
    networks: mustRun("docker", ["network", "ls", "--format", "{{.Name}}"]).split("\n").filter((n) => n.includes(marker)).sort(),
    volumes: mustRun("docker", ["volume", "ls", "--format", "{{.Name}}"]).split("\n").filter((n) => n.includes(marker)).sort(),
  });

  const CASES: [string, Record<string, string>, string][] = [
    ["a docker-reserved network", { networkName: "host" }, 'buildkit:networkName is "host"'],
    ["a log size of zero", { logMaxSize: "0m" }, 'buildkit:logMaxSize is "0m"'],
    ["an extra host whose address is not one", { extraHosts: JSON.stringify(["db:abc"]) }, 'buildkit:extraHosts is "[\\"db:abc\\"]"'],
    ["memory below the measured floor", { memory: "6.5m", networkName: `bk-it-${ID}-4-net` }, 'buildkit:memory is "6.5m" (6815744 bytes); expected at least'],
    ["CPUs the provider would spell as no limit", { cpus: "0.03", networkName: `bk-it-${ID}-5-net` }, 'buildkit:cpus is "0.03"'],
  ];

  it.each(CASES.map(([title, config, problem], index) => [title, index + 1, config, problem] as const))(
    "with %s fails before any resource, and the engine has no new container, network or volume",
    async (_title, index, config, problem) => {
      const before = dockerObjects(ID);
      const testStack = await createTestStack(`${ID}-${index}`, config);
      try {
        let output = "";
        await expect(testStack.stack.up({ onOutput: (line) => (output += line) })).rejects.toThrow();
        expect(output).toContain("Invalid stack configuration (1 problem)");
        expect(output).toContain(problem);
        // Nothing registered but the stack itself (Pulumi registers it before the program runs).
        const state = await testStack.stack.exportStack();
        const resources = ((state.deployment as { resources?: { type: string }[] }).resources ?? []).map((r) => r.type);
        expect(resources.filter((type) => type !== "pulumi:pulumi:Stack")).toEqual([]);
        expect(dockerObjects(ID)).toEqual(before);
      } finally {
        await testStack.cleanup();
      }
    },
    DEPLOY_TIMEOUT_MS,
  );
});
