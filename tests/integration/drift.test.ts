/**
 * Out-of-band changes, as a user meets them: deploy, break the deployment with
 * the docker CLI, run `npm run drift` (and `npm run doctor`), check what it
 * says and the fix it prints, heal with `npm run drift -- --heal`, and check
 * that the next drift check and a preview are clean and the daemon healthy.
 * One stack per describe: each test leaves it healthy for the next.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { duTotal, humanBytes } from "../../cli/cache-usage";
import { CONTAINER_TYPE } from "../../components/resource-types";
import { CommandResult, createTestStack, DEPLOY_TIMEOUT_MS, makeCertificates, mustRun, repoRoot, requireEngine, run, TestStack, tlsSecretConfig, waitFor } from "./harness";

const ID = "c-drift";
const TLS_ID = "c-drift-tls";
/** Host port of the mTLS stack's listener (this file's range: 18340-18359). */
const TLS_PORT = 18341;
const CONFIG_FILE = "/etc/buildkit/buildkitd.toml";
const TLS_KEY_FILE = "/etc/buildkit/tls/key.pem";
jest.setTimeout(DEPLOY_TIMEOUT_MS);

/** `npm run drift` / `npm run doctor` as a user types them, against a test stack's own program copy and backend. */
function cli(script: "drift" | "doctor", target: TestStack, stackName: string, ...extra: string[]): CommandResult {
  return run("bash", ["scripts/run-ts.sh", `cli/${script}.ts`, "--stack", stackName, "--cwd", target.workDir, ...extra], { env: target.env, cwd: repoRoot });
}

/** Asserts the exit code, showing what the script printed when it is not the expected one. */
function expectExit(result: CommandResult, code: number): string {
  if (result.code !== code) throw new Error(`expected exit ${code}, got ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  return result.stdout;
}

interface ContainerState {
  Id: string;
  State: { Status: string; Running: boolean; Paused: boolean; Health?: { Status: string } };
  NetworkSettings: { Networks: Record<string, unknown> };
}

function inspect(name: string): ContainerState | undefined {
  const result = run("docker", ["container", "inspect", name]);
  return result.code === 0 ? (JSON.parse(result.stdout) as ContainerState[])[0] : undefined;
}

async function recordedContainerId(target: TestStack): Promise<string | undefined> {
  return (await target.stack.outputs()).containerId?.value as string | undefined;
}

async function containerUrnOf(target: TestStack): Promise<string> {
  const deployment = (await target.stack.exportStack()).deployment as { resources: { urn: string; type: string }[] };
  return deployment.resources.find((r) => r.type === CONTAINER_TYPE)!.urn;
}

function stateFile(target: TestStack, stackName: string): Buffer {
  return fs.readFileSync(path.join(target.backendUrl.slice("file://".length), ".pulumi", "stacks", "buildkit", `${stackName}.json`));
}

/** The `--replace <urn>` the drift summary tells the user to pass. */
function replaceArgument(summary: string): string {
  const match = /--replace '([^']+)'/.exec(summary) ?? /--replace (\S+)/.exec(summary);
  if (!match) throw new Error(`the drift summary names no --replace:\n${summary}`);
  return match[1];
}

/**
 * After a heal: `--heal` said so, a fresh drift check and a preview are
 * clean, the daemon is healthy and builds (the smoke test's summary).
 */
async function expectHealed(target: TestStack, stackName: string, healOutput: string): Promise<void> {
  expect(healOutput).toMatch(new RegExp(`^healed: stack ${stackName}$`, "m"));
  expect(expectExit(cli("drift", target, stackName), 0)).toMatch(new RegExp(`^no drift: stack ${stackName} matches the engine`, "m"));
  const preview = await target.stack.preview({ onOutput: () => undefined });
  expect(Object.entries(preview.changeSummary).filter(([op, count]) => op !== "same" && count)).toEqual([]);
  await waitFor("the daemon to report healthy", 90_000, () => inspect(target.containerName)?.State.Health?.Status === "healthy");
  expect(String((await target.stack.outputs()).smokeTestSummary?.value)).toMatch(/test build ok/);
}

/** Heals whatever a failed test left broken, so the next test starts from a healthy stack. */
async function repair(target: TestStack, urn: string): Promise<void> {
  const live = inspect(target.containerName);
  if (live?.State.Paused) run("docker", ["unpause", target.containerName]);
  if (live && live.Id !== (await recordedContainerId(target))) run("docker", ["rm", "-f", target.containerName]);
  await target.stack.refresh({ onOutput: () => undefined });
  // --replace names only what the state still holds: a container refresh found gone is simply re-created.
  const deployment = (await target.stack.exportStack()).deployment as { resources: { urn: string }[] };
  const present = deployment.resources.some((r) => r.urn === urn);
  await target.stack.up({ replace: present ? [urn] : [], onOutput: () => undefined });
}

describe("a plain stack (docker-container://)", () => {
  let testStack: TestStack;
  let containerUrn: string;
  /** Set while a test has the deployment broken; afterEach repairs it if the test stopped half-way. */
  let broken = false;
  const drift = (...extra: string[]) => cli("drift", testStack, ID, ...extra);
  const doctor = () => cli("doctor", testStack, ID);

  beforeAll(async () => {
    requireEngine();
    testStack = await createTestStack(ID);
    const result = await testStack.stack.up({ onOutput: () => undefined });
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok/);
    containerUrn = await containerUrnOf(testStack);
  });

  afterEach(async () => {
    if (!broken) return;
    broken = false;
    await repair(testStack, containerUrn);
  });

  afterAll(async () => {
    await testStack?.cleanup();
  });

  it("finds no drift on a fresh deployment (--heal then does nothing), and rejects bad arguments and unknown stacks with exit 1", () => {
    expect(expectExit(drift(), 0)).toMatch(/no drift/);
    const healClean = expectExit(drift("--heal"), 0);
    expect(healClean).toMatch(/^no drift/m);
    expect(healClean).not.toMatch(/^heal:/m);

    const noStack = run("bash", ["scripts/run-ts.sh", "cli/drift.ts", "--cwd", testStack.workDir], { env: testStack.env, cwd: repoRoot });
    expectExit(noStack, 1);
    expect(noStack.stderr).toMatch(/--stack NAME is required/);

    const unknown = cli("drift", testStack, "c-nope");
    expectExit(unknown, 1);
    expect(unknown.stderr).toMatch(/stack c-nope does not exist/);

    const healValue = drift("--heal=yes");
    expectExit(healValue, 1);
    expect(healValue.stderr).toMatch(/unknown argument "--heal=yes"/);
  });

  it("asks the pulumi CLI for its version and the state first (started with the process), previews without waiting for the state, never lists stacks", () => {
    // A pulumi on PATH that logs each call's start and end around the real one, and holds the state
    // export until a preview has started (a bounded poll, 30 s at most): a drift that waited for the
    // state before previewing would log the export's end before the preview's start.
    const shim = fs.mkdtempSync(path.join(os.tmpdir(), "drift-pulumi-shim-"));
    const log = path.join(shim, "calls.log");
    try {
      const real = mustRun("bash", ["-c", "command -v pulumi"], { env: testStack.env }).trim();
      const script = [
        "#!/bin/sh",
        `log=${JSON.stringify(log)}`,
        'echo "start $1 $2" >> "$log"',
        'if [ "$1 $2" = "stack export" ]; then',
        "  i=0",
        "  while [ $i -lt 300 ] && ! grep -q '^start preview' \"$log\"; do sleep 0.1; i=$((i + 1)); done",
        "fi",
        `${JSON.stringify(real)} "$@"`,
        "rc=$?",
        'echo "end $1 $2" >> "$log"',
        "exit $rc",
        "",
      ].join("\n");
      fs.writeFileSync(path.join(shim, "pulumi"), script, { mode: 0o755 });
      // node directly: scripts/run-ts.sh would put the provisioned pulumi first on PATH again.
      const traced = run("node", ["-r", "./runtime/preload.js", "cli/drift.ts", "--stack", ID, "--cwd", testStack.workDir], {
        env: { ...testStack.env, PATH: `${shim}:${testStack.env.PATH}` },
        cwd: repoRoot,
      });
      expect(expectExit(traced, 0)).toMatch(/no drift/);
      const events = fs.readFileSync(log, "utf8").trim().split("\n").map((line) => {
        const [edge, command, sub] = line.split(" ");
        return `${edge} ${command === "stack" ? `stack ${sub}` : command}`;
      });
      const starts = events.filter((e) => e.startsWith("start ")).map((e) => e.slice("start ".length));
      // Both started before the Automation API had loaded, in either order; the preview after them.
      expect(starts.slice(0, 2).sort()).toEqual(["stack export", "version"]);
      expect(starts[2]).toBe("preview");
      expect(events.indexOf("start preview")).toBeLessThan(events.indexOf("end stack export"));
      expect(starts.filter((call) => call === "stack export")).toHaveLength(1);
      expect(starts).not.toContain("stack ls");
    } finally {
      fs.rmSync(shim, { recursive: true, force: true });
    }
  });

  it("container removed: drift says it will be re-created, without touching the state; --heal re-creates it", async () => {
    broken = true;
    const before = await recordedContainerId(testStack);
    mustRun("docker", ["rm", "-f", testStack.containerName]);
    const state = stateFile(testStack, ID);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`container ${testStack.containerName}: deleted out of band → will be re-created`);
    expect(summary).toMatch(/pulumi .*up --refresh --target \S+ .*--stack c-drift/);
    expect(stateFile(testStack, ID).equals(state)).toBe(true);

    const healed = expectExit(drift("--heal"), 0);
    // Only what drifted, under the policy pack and configuration `npm run up` deploys through.
    expect(healed).toMatch(/^heal: pulumi up --refresh( --target '[^']+')+ --policy-pack policy --policy-pack-config policy\/config\.json --stack c-drift$/m);
    expect(healed).toMatch(/^Policies:/m);
    expect(healed).toMatch(/buildkit-stack@v0\.1\.0/);
    const now = inspect(testStack.containerName);
    expect(now?.Id).toBeDefined();
    expect(now?.Id).not.toBe(before);
    expect(await recordedContainerId(testStack)).toBe(now?.Id);
    await expectHealed(testStack, ID, healed);
    broken = false;
  });

  it("container stopped: drift says it will be started; --heal starts the same container", async () => {
    broken = true;
    const id = await recordedContainerId(testStack);
    mustRun("docker", ["stop", testStack.containerName]);

    const summary = expectExit(drift(), 2);
    expect(summary).toMatch(new RegExp(`container ${testStack.containerName}: stopped out of band .*→ will be started`));

    const healed = expectExit(drift("--heal"), 0);
    expect(inspect(testStack.containerName)?.Id).toBe(id);
    expect(inspect(testStack.containerName)?.State.Running).toBe(true);
    await expectHealed(testStack, ID, healed);
    broken = false;
  });

  it("container paused: drift and doctor both report it; --heal unpauses the same container without a deploy", async () => {
    broken = true;
    const id = await recordedContainerId(testStack);
    mustRun("docker", ["pause", testStack.containerName]);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`container ${testStack.containerName}: paused out of band`);
    expect(summary).toContain("→ pulumi up does not fix this: unpause it");
    expect(summary).toMatch(new RegExp(`^  docker unpause ${testStack.containerName}$`, "m"));
    expect(summary).not.toMatch(/pulumi .* up/);

    const report = expectExit(doctor(), 1);
    expect(report).toMatch(new RegExp(`^FAIL +container ${testStack.containerName}: paused \\(docker pause\\)`, "m"));
    expect(report).toMatch(new RegExp(`^ +fix: docker unpause ${testStack.containerName}$`, "m"));

    const healed = expectExit(drift("--heal"), 0);
    expect(healed).toMatch(new RegExp(`^heal: docker unpause ${testStack.containerName}$`, "m"));
    expect(healed).not.toMatch(/^heal: pulumi up/m);
    expect(inspect(testStack.containerName)?.Id).toBe(id);
    expect(inspect(testStack.containerName)?.State.Paused).toBe(false);
    await expectHealed(testStack, ID, healed);
    broken = false;
  });

  it("a pending program change beside out-of-band drift: --heal unpauses, and leaves the program's change to npm run up", async () => {
    broken = true;
    const id = await recordedContainerId(testStack);
    await testStack.stack.setConfig("buildkit:memory", { value: "768m" });
    try {
      mustRun("docker", ["pause", testStack.containerName]);
      const summary = expectExit(drift(), 2);
      expect(summary).toContain(`container ${testStack.containerName}: paused out of band`);
      expect(summary).toContain("pending program changes are not drift and --heal leaves them: deploy them with npm run up -- c-drift");

      const healed = expectExit(drift("--heal"), 0);
      expect(healed).toMatch(new RegExp(`^heal: docker unpause ${testStack.containerName}$`, "m"));
      expect(healed).toMatch(new RegExp(`^heal: left alone, not out of band: container ${testStack.containerName}: .*will be (replaced|updated in place) \\(.*memory`, "m"));
      expect(healed).not.toMatch(/^heal: pulumi up/m);
      expect(healed).toMatch(/^healed: stack c-drift \(nothing out of band is left; the program's pending changes wait for npm run up\)$/m);
      // The same container, unpaused, with the limit it had: the change waits for a reviewed deploy.
      expect(inspect(testStack.containerName)?.Id).toBe(id);
      expect(inspect(testStack.containerName)?.State.Paused).toBe(false);
      expect(mustRun("docker", ["inspect", "-f", "{{.HostConfig.Memory}}", testStack.containerName]).trim()).toBe(String(1024 * 1024 * 1024));
    } finally {
      await testStack.stack.setConfig("buildkit:memory", { value: "1g" });
    }
    expect(expectExit(drift(), 0)).toMatch(/^no drift/m);
    broken = false;
  });

  it("container replaced by hand under the same name: drift says to remove it; --heal refuses to, then heals once we have", async () => {
    broken = true;
    const image = mustRun("docker", ["inspect", "--format", "{{.Config.Image}}", testStack.containerName]).trim();
    mustRun("docker", ["rm", "-f", testStack.containerName]);
    const handMade = mustRun("docker", ["run", "-d", "--name", testStack.containerName, "--network", "none", "--memory", "256m", "--privileged", image]).trim();

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`container ${testStack.containerName}: replaced by hand: exists but was not created by this stack (id ${handMade.slice(0, 12)}`);
    expect(summary).toContain("memory 256 MiB");
    expect(summary).toContain(`remove it with \`docker rm -f ${testStack.containerName}\`, then run pulumi up --refresh`);

    // What the warning is about: up alone cannot take the name back (the engine preflight refuses it before anything
    // is touched, the state included: without --refresh, which would forget the deleted container).
    await expect(testStack.stack.up({ onOutput: () => undefined })).rejects.toThrow(/buildkit:containerName is "[^"]+" but a container of that name .* was not made by this program/);
    // --heal does not remove what the stack did not create.
    const refused = expectExit(drift("--heal"), 2);
    expect(refused).toContain(`heal: not removing container ${testStack.containerName} (id ${handMade.slice(0, 12)}): this stack did not create it`);
    expect(inspect(testStack.containerName)?.Id).toBe(handMade);

    mustRun("docker", ["rm", "-f", testStack.containerName]);
    const healed = expectExit(drift("--heal"), 0);
    expect(inspect(testStack.containerName)?.Id).not.toBe(handMade);
    await expectHealed(testStack, ID, healed);
    broken = false;
  });

  it("network removed (container disconnected first): drift names both and the replacement; --heal re-attaches it, which up --refresh alone does not", async () => {
    broken = true;
    const before = await recordedContainerId(testStack);
    // docker refuses to remove a network in use; a person disconnects the container first.
    mustRun("docker", ["network", "disconnect", testStack.networkName, testStack.containerName]);
    mustRun("docker", ["network", "rm", testStack.networkName]);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`network ${testStack.networkName}: deleted out of band → will be re-created`);
    expect(summary).toContain(`container ${testStack.containerName}: detached from network ${testStack.networkName}`);
    expect(summary).toMatch(/up --refresh --replace /);
    expect(replaceArgument(summary)).toBe(containerUrn);

    // The claim the README no longer makes: up --refresh re-creates the network but leaves the container off it.
    await testStack.stack.up({ refresh: true, onOutput: () => undefined });
    expect(Object.keys(inspect(testStack.containerName)?.NetworkSettings.Networks ?? {})).not.toContain(testStack.networkName);
    expect(expectExit(drift(), 2)).toContain(`container ${testStack.containerName}: detached from network ${testStack.networkName}`);

    const healed = expectExit(drift("--heal"), 0);
    expect(healed).toContain(`heal: pulumi up --refresh --replace '${containerUrn}' --target `);
    expect(healed).toMatch(/ --policy-pack policy --policy-pack-config policy\/config\.json --stack c-drift$/m);
    expect(inspect(testStack.containerName)?.Id).not.toBe(before);
    expect(Object.keys(inspect(testStack.containerName)?.NetworkSettings.Networks ?? {})).toEqual([testStack.networkName]);
    await expectHealed(testStack, ID, healed);
    broken = false;
  });

  it("cache volume removed (container removed first): drift warns the cache is lost; --heal re-creates both", async () => {
    broken = true;
    // docker refuses to remove a volume in use; the container has to go first.
    mustRun("docker", ["rm", "-f", testStack.containerName]);
    mustRun("docker", ["volume", "rm", testStack.cacheVolumeName]);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`volume ${testStack.cacheVolumeName}: deleted out of band → will be re-created (build cache lost)`);
    expect(summary).toContain(`container ${testStack.containerName}: deleted out of band → will be re-created`);

    const healed = expectExit(drift("--heal"), 0);
    mustRun("docker", ["volume", "inspect", testStack.cacheVolumeName]);
    expect(inspect(testStack.containerName)?.State.Running).toBe(true);
    await expectHealed(testStack, ID, healed);
    broken = false;
  });

  it("buildkitd.toml edited inside the container: drift sees what the provider cannot; --heal replaces the container", async () => {
    broken = true;
    mustRun("docker", ["exec", testStack.containerName, "sh", "-c", `echo "# edited" >> ${CONFIG_FILE}`]);

    const summary = expectExit(drift(), 2);
    expect(summary).toContain(`container ${testStack.containerName}: ${CONFIG_FILE} changed inside the container (+# edited)`);
    // Nothing else drifted, so no refresh is asked for: just the replacement.
    expect(summary).toMatch(/pulumi .*up --replace /);
    expect(replaceArgument(summary)).toBe(containerUrn);

    const healed = expectExit(drift("--heal"), 0);
    expect(healed).toContain(`--replace '${containerUrn}'`);
    expect(mustRun("docker", ["exec", testStack.containerName, "cat", CONFIG_FILE])).not.toContain("# edited");
    await expectHealed(testStack, ID, healed);
    broken = false;
  });

  it("doctor: reports the stack healthy with its cache use, then a stopped container as a failure with its fix; the fix works", async () => {
    const name = testStack.containerName;
    const healthy = expectExit(doctor(), 0);
    expect(healthy).not.toMatch(/^FAIL/m);
    expect(healthy).toMatch(new RegExp(`^ok +container ${name}: healthy$`, "m"));
    expect(healthy).toMatch(new RegExp(`^ok +buildctl --addr docker-container://${name} debug workers: 1 worker`, "m"));
    // The troubleshooting table's cache row: what buildctl du reports, against the GC ceiling (none set here) and the disk.
    const total = duTotal(mustRun("buildctl", ["--addr", `docker-container://${name}`, "du", "--format", "{{json .}}"]));
    expect(total).toBeDefined();
    expect(healthy).toMatch(/^ok +cache filling the disk: build cache \S+ [KMG]iB; no GC ceiling set: BuildKit's default applies; \d+ MiB free on its disk$/m);
    expect(healthy).toContain(`cache filling the disk: build cache ${humanBytes(total!)};`);

    broken = true;
    mustRun("docker", ["stop", name]);
    const report = expectExit(doctor(), 1);
    expect(report).toMatch(new RegExp(`^FAIL +container ${name}: not running \\(exited`, "m"));
    expect(report).toContain(`last 20 log lines of ${name}:`);
    expect(report).toMatch(new RegExp(`^ +fix: docker start ${name}, or .*pulumi .*up --refresh --stack c-drift$`, "m"));

    mustRun("docker", ["start", name]);
    await waitFor("the daemon to report healthy", 90_000, () => inspect(name)?.State.Health?.Status === "healthy");
    expect(expectExit(doctor(), 0)).toMatch(/^healthy: stack c-drift$/m);
    broken = false;
  });
});

describe("an mTLS stack on TCP", () => {
  let testStack: TestStack;
  let containerUrn: string;
  let broken = false;
  const drift = (...extra: string[]) => cli("drift", testStack, TLS_ID, ...extra);
  const doctor = () => cli("doctor", testStack, TLS_ID);

  beforeAll(async () => {
    requireEngine();
    const tls = makeCertificates([`bk-it-${TLS_ID}`, "127.0.0.1"]);
    testStack = await createTestStack(TLS_ID, {
      tcpPort: String(TLS_PORT),
      cacheMaxUsedSpace: "2g",
      ...tlsSecretConfig(tls),
    });
    fs.rmSync(tls.dir, { recursive: true, force: true });
    const result = await testStack.stack.up({ onOutput: () => undefined });
    expect(result.outputs.buildkitHost.value).toBe(`tcp://127.0.0.1:${TLS_PORT}`);
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok/);
    containerUrn = await containerUrnOf(testStack);
  });

  afterEach(async () => {
    if (!broken) return;
    broken = false;
    await repair(testStack, containerUrn);
  });

  afterAll(async () => {
    await testStack?.cleanup();
  });

  it("drift: clean exits 0 (its secrets are read with Pulumi's own signature)", () => {
    expect(expectExit(drift(), 0)).toMatch(/^no drift: stack c-drift-tls matches the engine/m);
  });

  it("doctor: healthy, dialling the listener with the stack's client certificate", () => {
    const report = expectExit(doctor(), 0);
    expect(report).not.toMatch(/^FAIL/m);
    expect(report).toMatch(new RegExp(`^ok +buildctl --addr tcp://127.0.0.1:${TLS_PORT} debug workers \\(client certificate from the stack's config\\): 1 worker`, "m"));
    expect(report).toMatch(/^ok +cache filling the disk: build cache \S+ [KMG]iB; GC ceiling 2048 MiB \(buildkit:cacheMaxUsedSpace\); \d+ MiB free on its disk$/m);
    expect(report).toMatch(/^healthy: stack c-drift-tls$/m);
  });

  it("drift: the server key edited inside the container exits 2 without showing the secret; --heal replaces the container", async () => {
    broken = true;
    mustRun("docker", ["exec", testStack.containerName, "sh", "-c", `echo "tampered" >> ${TLS_KEY_FILE}`]);

    const summary = expectExit(drift(), 2);
    expect(summary).toMatch(new RegExp(`container ${testStack.containerName}: ${TLS_KEY_FILE} changed inside the container \\(the provider cannot see this\\)`));
    expect(summary).not.toContain("tampered");
    expect(summary).not.toContain("PRIVATE KEY");
    expect(replaceArgument(summary)).toBe(containerUrn);

    const healed = expectExit(drift("--heal"), 0);
    expect(mustRun("docker", ["exec", testStack.containerName, "cat", TLS_KEY_FILE])).not.toContain("tampered");
    await expectHealed(testStack, TLS_ID, healed);
    broken = false;
  });

  it("paused: doctor and drift report it; --heal unpauses and the doctor is healthy again", async () => {
    broken = true;
    mustRun("docker", ["pause", testStack.containerName]);

    expect(expectExit(doctor(), 1)).toMatch(new RegExp(`^FAIL +container ${testStack.containerName}: paused`, "m"));
    expect(expectExit(drift(), 2)).toContain(`container ${testStack.containerName}: paused out of band`);

    const healed = expectExit(drift("--heal"), 0);
    await expectHealed(testStack, TLS_ID, healed);
    expect(expectExit(doctor(), 0)).toMatch(/^healthy: stack c-drift-tls$/m);
    broken = false;
  });
});
