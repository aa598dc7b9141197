/**
 * The program as reviewers meet it: `pulumi preview` of the repo's own dev and
 * prod stack files lists exactly the expected resources, and a wrong stack
 * file fails before anything is registered, naming every problem.
 */
import { createTestStack, DEPLOY_TIMEOUT_MS, TestStack } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

/** Type and name of every resource a preview plans to create, from its event stream. */
async function plannedResources(testStack: TestStack): Promise<string[]> {
  const planned: string[] = [];
  await testStack.stack.preview({
    onOutput: () => undefined,
    onEvent: (event) => {
      const step = event.resourcePreEvent?.metadata;
      if (step && step.op === "create") planned.push(`${step.type}::${step.urn.split("::").pop()}`);
    },
  });
  return planned.sort();
}

const EXPECTED = [
  "buildkit:index:BuildkitStack::buildkit",
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

  it("previews exactly the expected resources", async () => {
    const expected = EXPECTED.map((r) => (r.endsWith("buildkit-") ? `${r}preview-${stackFile}` : r)).sort();
    expect(await plannedResources(testStack)).toEqual(expected);
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
