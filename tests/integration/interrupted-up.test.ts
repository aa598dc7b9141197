/**
 * An interrupted `up`, as a CI runner timeout or a lost SSH session leaves it:
 * a real `pulumi up` that replaces the daemon (a new image) is killed with
 * SIGKILL — the whole process tree — the moment the new container is created,
 * after the old one is gone. Then: `pulumi up` fails on the stale lock (the
 * failure users met), `npm run drift` and `npm run doctor` name the
 * interruption and the one command that recovers it, `npm run drift -- --heal`
 * recovers, and afterwards the daemon builds (from the cache built before the
 * kill), a re-preview is clean, no lock or pending operation is left, and the
 * cache volume is the same volume.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";

import {
  buildctlBuild,
  cachedSteps,
  CommandResult,
  createTestStack,
  DEPLOY_TIMEOUT_MS,
  mustRun,
  removeDockerObjects,
  repoRoot,
  requireEngine,
  run,
  TestStack,
  waitFor,
  writeBuildContext,
} from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const ID = "h18-interrupted";
const NAME = "bk-h18-interrupted";
const VOLUME = `${NAME}-cache`;
const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const CURRENT = /BUILDKIT_VERSION="([^"]+)"/.exec(versions)![1];
const PREVIOUS = /BUILDKIT_PREVIOUS_VERSION="([^"]+)"/.exec(versions)![1];
const quiet = { onOutput: () => undefined };

function cli(script: "drift" | "doctor", target: TestStack, ...extra: string[]): CommandResult {
  return run("bash", ["scripts/run-ts.sh", `cli/${script}.ts`, "--stack", ID, "--cwd", target.workDir, ...extra], { env: target.env, cwd: repoRoot });
}

function expectExit(result: CommandResult, code: number): string {
  if (result.code !== code) throw new Error(`expected exit ${code}, got ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  return result.stdout;
}

function lockFiles(target: TestStack): string[] {
  const dir = path.join(target.backendUrl.slice("file://".length), ".pulumi", "locks", "organization", "buildkit", ID);
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
}

async function pendingOperations(target: TestStack): Promise<unknown[]> {
  const deployment = (await target.stack.exportStack()).deployment as { pending_operations?: unknown[] };
  return deployment.pending_operations ?? [];
}

/**
 * `pulumi up` in a process group of its own, SIGKILLed (the group: the CLI,
 * the language host, the providers) as soon as docker reports the new
 * container created: the old one is gone by then (the name is the same, so
 * the replacement deletes first). Resolves with the id docker reported.
 */
async function killUpAtCreate(target: TestStack): Promise<string> {
  const events = spawn("docker", ["events", "--filter", `container=${NAME}`, "--filter", "event=create", "--format", "{{.Actor.ID}}"], { env: target.env });
  const up = spawn("pulumi", ["up", "--yes", "--skip-preview", "--stack", ID], { cwd: target.workDir, env: target.env, detached: true, stdio: "ignore" });
  const upEnded = new Promise<number | null>((resolve) => up.on("close", (code, signal) => resolve(signal === "SIGKILL" ? null : code)));
  let created = "";
  events.stdout.on("data", (chunk: Buffer) => {
    if (created) return;
    created = chunk.toString().trim();
    process.kill(-up.pid!, "SIGKILL");
  });
  try {
    const ended = await Promise.race([upEnded, waitFor("the up's new container to be created", 5 * 60_000, () => created || undefined, 20).then(() => upEnded)]);
    if (ended !== null) throw new Error(`pulumi up ended by itself (exit ${ended}) before the new container was created: nothing interrupted`);
    return created;
  } finally {
    events.kill();
    if (up.exitCode === null && up.signalCode === null) process.kill(-up.pid!, "SIGKILL");
  }
}

describe("an up killed half-way through a daemon replacement", () => {
  let target: TestStack;

  beforeAll(async () => {
    requireEngine();
    removeDockerObjects(NAME, NAME, VOLUME);
    target = await createTestStack(ID, {
      image: `moby/buildkit:${PREVIOUS}`,
      containerName: NAME,
      networkName: NAME,
      cacheVolumeName: VOLUME,
      // The old daemon has no builds to drain: the replacement reaches its create quickly.
      stopGracePeriod: "5s",
    });
    const result = await target.stack.up(quiet);
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok/);
  });

  afterAll(async () => {
    try {
      // Whatever a failed step left: the lock, then the stack.
      if (target && lockFiles(target).length > 0) await target.stack.cancel();
      await target?.cleanup();
    } finally {
      removeDockerObjects(NAME, NAME, VOLUME);
    }
  });

  it("is named by drift and doctor, recovered by drift --heal, and the daemon then builds from the same cache", async () => {
    const context = writeBuildContext(`FROM busybox\nRUN echo interrupted-up-cache > /marker && sleep 1\n`);
    const firstBuild = buildctlBuild(`docker-container://${NAME}`, context);
    expect(firstBuild.stderr + firstBuild.stdout).not.toMatch(/ERROR/);
    expect(firstBuild.code).toBe(0);
    const volumeBefore = mustRun("docker", ["volume", "inspect", "-f", "{{.CreatedAt}} {{.Mountpoint}}", VOLUME]).trim();
    const oldId = mustRun("docker", ["inspect", "-f", "{{.Id}}", NAME]).trim();

    await target.stack.setConfig("buildkit:image", { value: `moby/buildkit:${CURRENT}` });
    const createdId = await killUpAtCreate(target);
    expect(createdId).not.toBe(oldId);
    expect(run("docker", ["inspect", oldId]).code).not.toBe(0);
    const leftover = mustRun("docker", ["inspect", "-f", "{{.Id}} {{.State.Status}}", NAME]).trim().split(" ");
    expect(leftover[0]).toBe(createdId);

    // What users met: every later up fails on the lock the killed process left.
    expect(lockFiles(target)).toHaveLength(1);
    await expect(target.stack.up(quiet)).rejects.toThrow(/locked/);

    const drift = expectExit(cli("drift", target), 2);
    expect(drift).toMatch(new RegExp(`^interrupted update in stack ${ID} `, "m"));
    expect(drift).toMatch(/^ {2}stack lock held by pid \d+ on host \S+ since \S+, a process that no longer runs: a stale lock/m);
    expect(drift).toContain(`  ${NAME}: the update stopped while it was creating it (pending create in the state)`);
    expect(drift).toContain(`  container ${NAME} (id ${createdId.slice(0, 12)}) was made by the interrupted update: `);
    expect(drift).toContain(`  npm run drift -- --stack ${ID} --heal (releases the stale lock`);
    expect(drift).not.toContain("replaced by hand");

    const doctor = expectExit(cli("doctor", target), 1);
    expect(doctor).toMatch(new RegExp(`^FAIL +stack ${ID}: an update was interrupted`, "m"));
    expect(doctor).toMatch(new RegExp(`^FAIL +container ${NAME}: made by the interrupted update \\(id ${createdId.slice(0, 12)}, `, "m"));
    expect(doctor).toContain(`fix: npm run drift -- --stack ${ID} --heal`);
    expect(doctor).not.toContain("replaced by hand");

    const healed = expectExit(cli("drift", target, "--heal"), 0);
    expect(healed).toMatch(new RegExp(`^heal: pulumi cancel --stack ${ID} \\(the lock's process, pid \\d+, is gone\\)$`, "m"));
    expect(healed).toMatch(new RegExp(`^heal: docker rm -f ${createdId.slice(0, 12)} \\(container ${NAME}, made by the interrupted update, not in the state\\)$`, "m"));
    expect(healed).toMatch(/^heal: pulumi up --refresh --policy-pack policy --policy-pack-config policy\/config\.json /m);
    expect(healed).toMatch(/^Policies:/m);
    expect(healed).toMatch(new RegExp(`^recovered: stack ${ID} `, "m"));
    expect(healed).toMatch(new RegExp(`^no drift: stack ${ID} matches the engine`, "m"));

    // Nothing of the interruption is left, the daemon runs the new image, and a second check is clean.
    expect(lockFiles(target)).toEqual([]);
    expect(await pendingOperations(target)).toEqual([]);
    const live = mustRun("docker", ["inspect", "-f", "{{.Id}} {{.State.Running}} {{index .Config.Labels \"org.opencontainers.image.version\"}}", NAME]).trim().split(" ");
    expect(live.slice(1)).toEqual(["true", CURRENT]);
    expect(String((await target.stack.outputs()).containerId?.value)).toBe(live[0]);
    expect(expectExit(cli("drift", target), 0)).toMatch(/^no drift/m);
    expect(expectExit(cli("doctor", target), 0)).toMatch(new RegExp(`^ok +stack ${ID}: no interrupted update`, "m"));
    const preview = await target.stack.preview(quiet);
    expect(Object.entries(preview.changeSummary).filter(([op, count]) => op !== "same" && count)).toEqual([]);

    // The same cache volume, and the build before the kill is served from it.
    expect(mustRun("docker", ["volume", "inspect", "-f", "{{.CreatedAt}} {{.Mountpoint}}", VOLUME]).trim()).toBe(volumeBefore);
    const rebuild = buildctlBuild(`docker-container://${NAME}`, context);
    expect(rebuild.code).toBe(0);
    expect(cachedSteps(rebuild.stderr + rebuild.stdout)).toBeGreaterThanOrEqual(1);
  });
});
