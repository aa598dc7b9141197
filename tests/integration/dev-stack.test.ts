/**
 * The dev stack as `npm run up` deploys it (the repository's own
 * Pulumi.dev.yaml: its limits, the local mirror, host.docker.internal), under
 * names of this test's own, and a user's first real build through it: a
 * Dockerfile whose first line is `# syntax=docker/dockerfile:1`, as most real
 * ones begin, built offline with buildctl and with docker buildx. The
 * frontend image that line names comes from the local mirror, built by
 * provisioning from BuildKit's own Go module.
 */
import { buildctlBuild, buildxDockerConfig, createTestStack, DEPLOY_TIMEOUT_MS, run, TestStack, writeBuildContext } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const SYNTAX_DOCKERFILE = [
  "# syntax=docker/dockerfile:1",
  "FROM busybox",
  // A heredoc RUN: syntax the external frontend parses (BuildKit's own frontend does too, but only the
  // image the syntax line names is asked for here).
  "RUN <<EOF",
  "echo built by the docker/dockerfile:1 frontend > /proof",
  "EOF",
  "RUN --mount=type=cache,target=/cache cat /proof",
  "",
].join("\n");

describe("the dev stack, and a Dockerfile that names its frontend", () => {
  let testStack: TestStack;
  let buildkitHost: string;

  beforeAll(async () => {
    testStack = await createTestStack(
      "i-dev",
      { containerName: "bk-it-i-dev", networkName: "bk-it-i-dev", cacheVolumeName: "bk-it-i-dev-cache" },
      { fromStackFile: "dev" },
    );
    const result = await testStack.stack.up({ onOutput: () => undefined });
    buildkitHost = result.outputs.buildkitHost.value as string;
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok at /);
  });
  afterAll(async () => testStack?.cleanup());

  it("builds it with buildctl, the frontend pulled from the local mirror", () => {
    const context = writeBuildContext(SYNTAX_DOCKERFILE);
    const build = buildctlBuild(buildkitHost, context);
    const output = build.stdout + build.stderr;
    if (build.code !== 0) throw new Error(`buildctl build failed (${build.code}):\n${output}`);
    expect(output).toMatch(/resolve image config for docker(-image)?:\/\/docker\.io\/docker\/dockerfile:1/);
    expect(output).toContain("built by the docker/dockerfile:1 frontend");
  });

  it("builds it with docker buildx through the running daemon (remote driver)", () => {
    const dockerConfig = buildxDockerConfig();
    const env = { ...process.env, DOCKER_CONFIG: dockerConfig };
    const builder = "bk-it-i-dev";
    try {
      const created = run("docker", ["buildx", "create", "--name", builder, "--driver", "remote", buildkitHost], { env });
      if (created.code !== 0) throw new Error(`buildx create failed: ${created.stderr}`);
      const context = writeBuildContext(SYNTAX_DOCKERFILE);
      const build = run("docker", ["buildx", "build", "--builder", builder, "--progress", "plain", context], { env });
      const output = build.stdout + build.stderr;
      if (build.code !== 0) throw new Error(`docker buildx build failed (${build.code}):\n${output}`);
      expect(output).toContain("docker.io/docker/dockerfile:1");
      expect(output).toContain("built by the docker/dockerfile:1 frontend");
    } finally {
      run("docker", ["buildx", "rm", "--force", builder], { env });
    }
  });
});
