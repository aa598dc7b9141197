/**
 * Fleets must not disturb the stacks that exist: a single-host stack deployed
 * by the program as it was just before fleets were added (taken from git
 * history) keeps its daemon, cache volume and network under today's program.
 * It runs on Docker 20.10, the engine that program was provisioned with and
 * proven on. Two changes are expected and nothing else: the container gains
 * its stop grace in place (`destroyGraceSeconds`, issue 8), and the smoke test
 * re-runs because its container changed.
 */
import * as fs from "fs";
import * as path from "path";

import { EngineEvent } from "@pulumi/pulumi/automation";

import { createTestStack, DEPLOY_TIMEOUT_MS, mustRun, repoRoot, TestStack, useDockerHost, useProgramAt } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);
const quiet = { onOutput: () => undefined };
/** Where stacks of the program before fleets ran: Debian's 20.10 on the default socket. */
const ENGINE_BEFORE_FLEETS = "unix:///var/run/docker.sock";

/** The commit before the one that added fleets: the program existing stacks were deployed with. */
function programBeforeFleets(): string {
  const added = mustRun("git", ["log", "--diff-filter=A", "--format=%H", "--", "components/fleet-config.ts"], { cwd: repoRoot }).trim().split("\n").pop();
  if (!added) {
    throw new Error("git history has no commit adding components/fleet-config.ts; run the tests in a full clone (not --depth 1)");
  }
  return mustRun("git", ["rev-parse", `${added}^`], { cwd: repoRoot }).trim();
}

describe("a single-host stack deployed before fleets existed", () => {
  let testStack: TestStack;
  let restoreDockerHost = () => undefined as void;

  beforeAll(async () => {
    restoreDockerHost = useDockerHost(ENGINE_BEFORE_FLEETS);
    testStack = await createTestStack("g-fleet-single");
  });
  afterAll(async () => {
    try {
      await testStack?.cleanup();
    } finally {
      restoreDockerHost();
    }
  });

  it("upgrades to the fleet-aware program keeping its daemon, cache and network", async () => {
    useProgramAt(testStack.workDir, programBeforeFleets());
    expect(fs.existsSync(path.join(testStack.workDir, "components/fleet-config.ts"))).toBe(false);
    const deployed = await testStack.stack.up(quiet);
    expect(deployed.outputs.smokeTestSummary.value).toMatch(/test build ok$/);

    useProgramAt(testStack.workDir);
    // Every step the preview plans, per resource type (a replacement shows as several steps).
    const planned: Record<string, string[]> = {};
    const onEvent = (event: EngineEvent) => {
      const step = event.resourcePreEvent?.metadata;
      if (step && !step.type.startsWith("pulumi:")) planned[step.type] = [...new Set([...(planned[step.type] ?? []), step.op])].sort();
    };
    await testStack.stack.preview({ ...quiet, onEvent });
    const { "command:local:Command": smokeTestSteps, ...daemon } = planned;
    expect(daemon).toEqual({
      "buildkit:index:BuildkitStack": ["same"],
      "docker:index/remoteImage:RemoteImage": ["same"],
      "docker:index/network:Network": ["same"],
      "docker:index/volume:Volume": ["same"],
      "docker:index/container:Container": ["update"],
    });
    expect(smokeTestSteps).toContain("replace");
    // The daemon a user's clients point at is the same one, and the proof ran again.
    const after = await testStack.stack.up(quiet);
    expect(after.outputs.buildkitHost.value).toBe(deployed.outputs.buildkitHost.value);
    expect(after.outputs.containerId.value).toBe(deployed.outputs.containerId.value);
    expect(after.outputs.smokeTestSummary.value).toMatch(/test build ok at \S+$/);
  });
});
