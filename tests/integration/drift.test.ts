/**
 * Out-of-band changes, as a user meets them: deploy, break the deployment with
 * the docker CLI, run `npm run drift` (and `npm run doctor`), follow the fix
 * it prints, and check that the next drift check and a preview are clean and
 * the smoke test passes again. One stack for the whole file: each test leaves
 * it healthy for the next.
 */
import * as fs from "fs";
import * as path from "path";

import type { UpOptions } from "@pulumi/pulumi/automation";

import { CONTAINER_TYPE } from "../../components/resource-types";
import { CommandResult, DEPLOY_TIMEOUT_MS, TestStack, createTestStack, mustRun, repoRoot, requireEngine, run, waitFor } from "./harness";

const ID = "dr-drift";
const CONFIG_FILE = "/etc/buildkit/buildkitd.toml";
jest.setTimeout(DEPLOY_TIMEOUT_MS);

let testStack: TestStack;
let containerUrn: string;
/** Set while a test has the deployment broken; afterEach heals it if the test stopped half-way. */
let broken = false;

beforeAll(async () => {
  requireEngine();
  testStack = await createTestStack(ID);
  const result = await testStack.stack.up({ onOutput: () => undefined });
  expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok/);
  const deployment = (await testStack.stack.exportStack()).deployment as { resources: { urn: string; type: string }[] };
  containerUrn = deployment.resources.find((r) => r.type === CONTAINER_TYPE)!.urn;
});

afterEach(async () => {
  if (!broken) return;
  broken = false;
  // Whatever a failed test left behind: a hand-made container under our name, missing objects.
  const live = inspect(testStack.containerName);
  if (live && live.Id !== (await recordedContainerId())) run("docker", ["rm", "-f", testStack.containerName]);
  await testStack.stack.up({ refresh: true, replace: [containerUrn], onOutput: () => undefined });
});

afterAll(async () => {
  await testStack?.cleanup();
});

/** `npm run drift` as a user types it, against the test stack's own program copy and backend. */
function drift(): CommandResult {
  return run("bash", ["scripts/run-ts.sh", "cli/drift.ts", "--stack", ID, "--cwd", testStack.workDir], { env: testStack.env, cwd: repoRoot });
}

function doctor(): CommandResult {
  return run("bash", ["scripts/run-ts.sh", "cli/doctor.ts", "--stack", ID, "--cwd", testStack.workDir], { env: testStack.env, cwd: repoRoot });
}

/** Asserts the exit code, showing what the script printed when it is not the expected one. */
function expectExit(result: CommandResult, code: number): string {
  if (result.code !== code) throw new Error(`expected exit ${code}, got ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  return result.stdout;
}

interface ContainerState {
  Id: string;
  State: { Status: string; Running: boolean; Health?: { Status: string } };
  NetworkSettings: { Networks: Record<string, unknown> };
}

function inspect(name: string): ContainerState | undefined {
  const result = run("docker", ["container", "inspect", name]);
  return result.code === 0 ? (JSON.parse(result.stdout) as ContainerState[])[0] : undefined;
}

async function recordedContainerId(): Promise<string | undefined> {
  return (await testStack.stack.outputs()).containerId?.value as string | undefined;
}

function stateFile(): Buffer {
  return fs.readFileSync(path.join(testStack.backendUrl.slice("file://".length), ".pulumi", "stacks", "buildkit", `${ID}.json`));
}

/** The `--replace <urn>` the drift summary tells the user to pass. */
function replaceArgument(summary: string): string {
  const match = /--replace '([^']+)'/.exec(summary) ?? /--replace (\S+)/.exec(summary);
  if (!match) throw new Error(`the drift summary names no --replace:\n${summary}`);
  return match[1];
}

/** Runs `pulumi up` as the fix says; returns the steps per resource name and the smoke test's output. */
async function heal(options: UpOptions): Promise<{ steps: Map<string, string[]>; smokeTestSummary: string }> {
  const steps = new Map<string, string[]>();
  const result = await testStack.stack.up({
    ...options,
    onOutput: () => undefined,
    onEvent: (event) => {
      const step = event.resourcePreEvent?.metadata;
      if (!step || step.op === "refresh" || step.op === "same") return;
      const name = step.urn.slice(step.urn.lastIndexOf("::") + 2);
      steps.set(name, [...(steps.get(name) ?? []), step.op]);
    },
  });
  return { steps, smokeTestSummary: String(result.outputs.smokeTestSummary?.value ?? "") };
}

/** After a heal: drift is clean, a preview plans nothing, and the daemon is healthy. */
async function expectHealthyAndClean(): Promise<void> {
  expect(expectExit(drift(), 0)).toMatch(/^no drift: stack dr-drift matches the engine/m);
  const preview = await testStack.stack.preview({ onOutput: () => undefined });
  expect(Object.entries(preview.changeSummary).filter(([op, count]) => op !== "same" && count)).toEqual([]);
  await waitFor("the daemon to report healthy", 90_000, () => inspect(testStack.containerName)?.State.Health?.Status === "healthy");
  broken = false;
}

describe("npm run drift", () => {
  it("finds no drift on a fresh deployment, and rejects bad arguments and unknown stacks with exit 1", () => {
    expect(expectExit(drift(), 0)).toMatch(/no drift/);

    const noStack = run("bash", ["scripts/run-ts.sh", "cli/drift.ts", "--cwd", testStack.workDir], { env: testStack.env, cwd: repoRoot });
    expectExit(noStack, 1);
    expect(noStack.stderr).toMatch(/--stack NAME is required/);

    const unknown = run("bash", ["scripts/run-ts.sh", "cli/drift.ts", "--stack", "dr-nope", "--cwd", testStack.workDir], { env: testStack.env, cwd: repoRoot });
    expectExit(unknown, 1);
    expect(unknown.stderr).toMatch(/stack dr-nope does not exist/);
  });

  it("container removed: drift says it will be re-created, without touching the state; up --refresh heals and the smoke test re-runs", async () => {
    broken = true;
    mustRun("docker", ["rm", "-f", testStack.containerName]);
    const before = stateFile();

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`container ${testStack.containerName}: deleted out of band → will be re-created`);
    expect(summary).toMatch(/pulumi .*up --refresh --stack dr-drift/);
    expect(stateFile().equals(before)).toBe(true);

    const { steps, smokeTestSummary } = await heal({ refresh: true });
    expect(steps.get("buildkit-daemon")).toContain("create");
    expect(steps.get("buildkit-smoke-test")).toContain("replace");
    expect(smokeTestSummary).toMatch(/test build ok/);
    await expectHealthyAndClean();
  });

  it("container stopped: drift says it will be started; up --refresh starts the same container", async () => {
    broken = true;
    const id = await recordedContainerId();
    mustRun("docker", ["stop", testStack.containerName]);

    const summary = expectExit(drift(), 2);
    expect(summary).toMatch(new RegExp(`container ${testStack.containerName}: stopped out of band .*→ will be started`));

    const { steps, smokeTestSummary } = await heal({ refresh: true });
    expect(steps.get("buildkit-daemon")).toEqual(["update"]);
    expect(inspect(testStack.containerName)?.Id).toBe(id);
    expect(smokeTestSummary).toMatch(/test build ok/);
    await expectHealthyAndClean();
  });

  it("container replaced by hand under the same name: drift says to remove it; up fails until we do, then heals", async () => {
    broken = true;
    const image = mustRun("docker", ["inspect", "--format", "{{.Config.Image}}", testStack.containerName]).trim();
    mustRun("docker", ["rm", "-f", testStack.containerName]);
    const handMade = mustRun("docker", ["run", "-d", "--name", testStack.containerName, "--memory", "256m", "--privileged", image]).trim();

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`container ${testStack.containerName}: replaced by hand: exists but was not created by this stack (id ${handMade.slice(0, 12)}`);
    expect(summary).toContain("memory 256 MiB");
    expect(summary).toContain(`remove it with \`docker rm -f ${testStack.containerName}\`, then run pulumi up --refresh`);

    // What the warning is about: up alone cannot take the name back.
    await expect(testStack.stack.up({ refresh: true, onOutput: () => undefined })).rejects.toThrow(/already in use/);
    expect(expectExit(drift(), 2)).toContain(`docker rm -f ${testStack.containerName}`);

    mustRun("docker", ["rm", "-f", testStack.containerName]);
    const { steps, smokeTestSummary } = await heal({ refresh: true });
    expect(steps.get("buildkit-daemon")).toContain("create");
    expect(inspect(testStack.containerName)?.Id).not.toBe(handMade);
    expect(smokeTestSummary).toMatch(/test build ok/);
    await expectHealthyAndClean();
  });

  it("network removed (container disconnected first): drift names both; the printed up --refresh --replace heals", async () => {
    broken = true;
    // docker refuses to remove a network in use; a person disconnects the container first.
    mustRun("docker", ["network", "disconnect", testStack.networkName, testStack.containerName]);
    mustRun("docker", ["network", "rm", testStack.networkName]);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`network ${testStack.networkName}: deleted out of band → will be re-created`);
    expect(summary).toContain(`container ${testStack.containerName}: detached from network ${testStack.networkName}`);
    expect(summary).toMatch(/up --refresh --replace /);
    const urn = replaceArgument(summary);
    expect(urn).toBe(containerUrn);

    const { steps, smokeTestSummary } = await heal({ refresh: true, replace: [urn] });
    expect(steps.get("buildkit-network")).toContain("create");
    expect(steps.get("buildkit-daemon")).toContain("replace");
    expect(Object.keys(inspect(testStack.containerName)?.NetworkSettings.Networks ?? {})).toEqual([testStack.networkName]);
    expect(smokeTestSummary).toMatch(/test build ok/);
    await expectHealthyAndClean();
  });

  it("cache volume removed (container removed first): drift warns the cache is lost; up --refresh re-creates both", async () => {
    broken = true;
    // docker refuses to remove a volume in use; the container has to go first.
    mustRun("docker", ["rm", "-f", testStack.containerName]);
    mustRun("docker", ["volume", "rm", testStack.cacheVolumeName]);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`volume ${testStack.cacheVolumeName}: deleted out of band → will be re-created (build cache lost)`);
    expect(summary).toContain(`container ${testStack.containerName}: deleted out of band → will be re-created`);

    const { steps, smokeTestSummary } = await heal({ refresh: true });
    expect(steps.get("buildkit-cache")).toContain("create");
    expect(steps.get("buildkit-daemon")).toContain("create");
    mustRun("docker", ["volume", "inspect", testStack.cacheVolumeName]);
    expect(smokeTestSummary).toMatch(/test build ok/);
    await expectHealthyAndClean();
  });

  it("buildkitd.toml edited inside the container: drift sees what the provider cannot; the printed up --replace heals", async () => {
    broken = true;
    mustRun("docker", ["exec", testStack.containerName, "sh", "-c", `echo "# edited" >> ${CONFIG_FILE}`]);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`container ${testStack.containerName}: ${CONFIG_FILE} changed inside the container (+# edited)`);
    // Nothing else drifted, so no refresh is asked for: just the replacement.
    expect(summary).toMatch(/pulumi .*up --replace /);
    const urn = replaceArgument(summary);
    expect(urn).toBe(containerUrn);

    const { steps, smokeTestSummary } = await heal({ replace: [urn] });
    expect(steps.get("buildkit-daemon")).toContain("replace");
    expect(mustRun("docker", ["exec", testStack.containerName, "cat", CONFIG_FILE])).not.toContain("# edited");
    expect(smokeTestSummary).toMatch(/test build ok/);
    await expectHealthyAndClean();
  });
});

describe("npm run doctor", () => {
  it("reports the deployed stack healthy, then a stopped container as a failure with its fix; the fix works", async () => {
    const healthy = expectExit(doctor(), 0);
    expect(healthy).not.toMatch(/^FAIL/m);
    expect(healthy).toMatch(/^ok +container bk-it-dr-drift: healthy$/m);
    expect(healthy).toMatch(/^ok +buildctl --addr docker-container:\/\/bk-it-dr-drift debug workers: 1 worker/m);

    broken = true;
    mustRun("docker", ["stop", testStack.containerName]);
    const report = expectExit(doctor(), 1);
    expect(report).toMatch(/^FAIL +container bk-it-dr-drift: not running \(exited/m);
    expect(report).toContain("last 20 log lines of bk-it-dr-drift:");
    expect(report).toMatch(/^ +fix: docker start bk-it-dr-drift, or .*pulumi .*up --refresh --stack dr-drift$/m);

    mustRun("docker", ["start", testStack.containerName]);
    await waitFor("the daemon to report healthy", 90_000, () => inspect(testStack.containerName)?.State.Health?.Status === "healthy");
    expect(expectExit(doctor(), 0)).toMatch(/^healthy: stack dr-drift$/m);
    broken = false;
  });
});
