/**
 * The core and the Kubernetes target must not disturb the Docker stacks that
 * exist: a single-host stack and a fleet of two hosts, deployed by the program
 * as it was just before the core was split out (taken from git history: the
 * main that issues 17 and 19 were filed against), upgrade to today's program
 * with no Docker object replaced, created or deleted, the same daemons
 * answering, a proof that ran again, and a clean preview after.
 */
import * as fs from "fs";
import * as path from "path";

import { EngineEvent } from "@pulumi/pulumi/automation";

import { createTestStack, DEPLOY_TIMEOUT_MS, mustRun, repoRoot, run, TestStack, useProgramAt } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const quiet = { onOutput: () => undefined };

/** The commit before the one that added components/core: the program existing stacks were deployed with. */
function programBeforeTheCore(): string {
  const added = mustRun("git", ["log", "--diff-filter=A", "--format=%H", "--", "components/core/config-keys.ts"], { cwd: repoRoot }).trim().split("\n").pop();
  if (!added) throw new Error("git history has no commit adding components/core/config-keys.ts; run the tests in a full clone (not --depth 1)");
  return mustRun("git", ["rev-parse", `${added}^`], { cwd: repoRoot }).trim();
}

/** Every Docker object's planned steps, by type and name; the proofs and guards (commands) are left out. */
async function dockerPlan(testStack: TestStack): Promise<Record<string, string[]>> {
  const planned: Record<string, string[]> = {};
  const onEvent = (event: EngineEvent) => {
    const step = event.resourcePreEvent?.metadata;
    if (!step || !step.type.startsWith("docker:")) return;
    const key = `${step.type} ${step.urn.split("::").pop()}`;
    planned[key] = [...new Set([...(planned[key] ?? []), step.op])].sort();
  };
  await testStack.stack.preview({ ...quiet, onEvent });
  return planned;
}
const replacedOrMoved = (plan: Record<string, string[]>) => Object.entries(plan).filter(([, ops]) => ops.some((op) => op !== "same" && op !== "update"));
const changes = (summary: Record<string, number> | undefined) => Object.entries(summary ?? {}).filter(([op, n]) => op !== "same" && n);

describe("Docker stacks deployed before the core and the Kubernetes target", () => {
  const before = programBeforeTheCore();

  describe("a single-host stack", () => {
    let testStack: TestStack;
    beforeAll(async () => {
      testStack = await createTestStack("t-upgrade-single");
    });
    afterAll(async () => {
      await testStack?.cleanup();
    });

    it("upgrades keeping its daemon, cache and network, and proves it again", async () => {
      useProgramAt(testStack.workDir, before);
      expect(fs.existsSync(path.join(testStack.workDir, "components/core"))).toBe(false);
      const deployed = await testStack.stack.up(quiet);
      expect(deployed.outputs.smokeTestSummary.value).toMatch(/test build ok/);

      useProgramAt(testStack.workDir);
      const plan = await dockerPlan(testStack);
      expect(Object.keys(plan).length).toBeGreaterThanOrEqual(4);
      expect(replacedOrMoved(plan)).toEqual([]);
      const after = await testStack.stack.up(quiet);
      expect(after.outputs.containerId.value).toBe(deployed.outputs.containerId.value);
      expect(after.outputs.cacheVolumeName.value).toBe(deployed.outputs.cacheVolumeName.value);
      expect(after.outputs.smokeTestSummary.value).toMatch(/test build ok/);
      expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual([]);
    });
  });

  describe("a fleet of two hosts (Docker 29 and Docker 28)", () => {
    const HOSTS = [
      { name: "h29", dockerHost: "unix:///run/buildkit-stack/docker-29.sock" },
      { name: "h28", dockerHost: "unix:///run/buildkit-stack/docker-28.sock" },
    ];
    const containerOf = (name: string) => `bk-tu-${name}`;
    const removeLeftovers = () => {
      for (const host of HOSTS) {
        const env = { ...process.env, DOCKER_HOST: host.dockerHost };
        run("docker", ["rm", "-f", containerOf(host.name)], { env });
        run("docker", ["network", "rm", containerOf(host.name)], { env });
        run("docker", ["volume", "rm", "-f", `${containerOf(host.name)}-cache`], { env });
      }
    };
    let testStack: TestStack;
    beforeAll(async () => {
      removeLeftovers();
      testStack = await createTestStack("t-upgrade-fleet");
      const config: Record<string, { value: string }> = {};
      HOSTS.forEach((host, index) => {
        const fields = { name: host.name, dockerHost: host.dockerHost, containerName: containerOf(host.name), networkName: containerOf(host.name), cacheVolumeName: `${containerOf(host.name)}-cache` };
        for (const [field, value] of Object.entries(fields)) config[`buildkit:hosts[${index}].${field}`] = { value };
      });
      await testStack.stack.setAllConfig(config, true);
    });
    afterAll(async () => {
      try {
        await testStack?.cleanup();
      } finally {
        removeLeftovers();
      }
    });

    it("upgrades every host keeping its daemon, cache and network, and proves each again", async () => {
      useProgramAt(testStack.workDir, before);
      const deployed = await testStack.stack.up(quiet);
      const proofs = deployed.outputs.fleetSmokeTests.value as Record<string, string>;
      expect(Object.keys(proofs).sort()).toEqual(["h28", "h29"]);
      const containerIds = () =>
        HOSTS.map((host) => mustRun("docker", ["inspect", "--format", "{{.Id}}", containerOf(host.name)], { env: { ...process.env, DOCKER_HOST: host.dockerHost } }).trim());
      const idsBefore = containerIds();

      useProgramAt(testStack.workDir);
      const plan = await dockerPlan(testStack);
      expect(Object.keys(plan).length).toBeGreaterThanOrEqual(8);
      expect(replacedOrMoved(plan)).toEqual([]);
      const after = await testStack.stack.up(quiet);
      expect(containerIds()).toEqual(idsBefore);
      for (const host of HOSTS) expect((after.outputs.fleetSmokeTests.value as Record<string, string>)[host.name]).toMatch(/test build ok/);
      expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual([]);
    });
  });
});
