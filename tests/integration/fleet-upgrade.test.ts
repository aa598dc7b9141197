/**
 * Fleets must not disturb the stacks that exist: a single-host stack deployed
 * by the program as it was just before fleets were added (taken from git
 * history) previews with no changes at all under today's program.
 */
import * as fs from "fs";
import * as path from "path";

import { OpType } from "@pulumi/pulumi/automation";

import { createTestStack, DEPLOY_TIMEOUT_MS, mustRun, repoRoot, TestStack } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);
const quiet = { onOutput: () => undefined };
const PROGRAM = ["index.ts", "components"];

/** The commit before the one that added fleets: the program existing stacks were deployed with. */
function programBeforeFleets(): string {
  const added = mustRun("git", ["log", "--diff-filter=A", "--format=%H", "--", "components/fleet-config.ts"], { cwd: repoRoot }).trim().split("\n").pop();
  if (!added) {
    throw new Error("git history has no commit adding components/fleet-config.ts; run the tests in a full clone (not --depth 1)");
  }
  return mustRun("git", ["rev-parse", `${added}^`], { cwd: repoRoot }).trim();
}

function checkout(commit: string, workDir: string): void {
  for (const entry of PROGRAM) fs.rmSync(path.join(workDir, entry), { recursive: true, force: true });
  const archive = path.join(workDir, "program-before-fleets.tar");
  mustRun("git", ["archive", "--format=tar", "-o", archive, commit, ...PROGRAM], { cwd: repoRoot });
  mustRun("tar", ["-xf", archive, "-C", workDir]);
  fs.rmSync(archive);
}

describe("a single-host stack deployed before fleets existed", () => {
  let testStack: TestStack;

  beforeAll(async () => {
    testStack = await createTestStack("g-fleet-single");
  });
  afterAll(async () => testStack?.cleanup());

  it("upgrades to the fleet-aware program with nothing to change", async () => {
    checkout(programBeforeFleets(), testStack.workDir);
    expect(fs.existsSync(path.join(testStack.workDir, "components/fleet-config.ts"))).toBe(false);
    const deployed = await testStack.stack.up(quiet);
    expect(deployed.outputs.smokeTestSummary.value).toMatch(/test build ok$/);

    for (const entry of PROGRAM) fs.cpSync(path.join(repoRoot, entry), path.join(testStack.workDir, entry), { recursive: true });
    const preview = await testStack.stack.preview(quiet);
    const changes = Object.entries(preview.changeSummary ?? {}).filter(([op, count]) => op !== "same" && (count ?? 0) > 0);
    expect(Object.fromEntries(changes) as Partial<Record<OpType, number>>).toEqual({});
    expect(preview.changeSummary.same).toBeGreaterThanOrEqual(7);
    // And the outputs a user pastes are the same ones.
    const after = await testStack.stack.up(quiet);
    expect(after.outputs.buildkitHost.value).toBe(deployed.outputs.buildkitHost.value);
    expect(after.outputs.containerId.value).toBe(deployed.outputs.containerId.value);
  });
});
