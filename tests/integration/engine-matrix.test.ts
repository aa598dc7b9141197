/**
 * The lifecycle path on every engine we support, each describe naming the
 * engine it ran on: deploy → build → clean re-preview → upgrade keeping the
 * cache → drift (found by `npm run drift`, healed by `up --refresh`) →
 * destroy. Docker 29 and 28 are the engines provisioning builds and runs on
 * their own sockets (scripts/provision/engines.sh); Debian's 20.10 stays on
 * the default socket as the compatibility engine. The engine is chosen the
 * way a user chooses it: DOCKER_HOST.
 */
import * as fs from "fs";
import * as path from "path";

import type { OpType } from "@pulumi/pulumi/automation";

import {
  buildctlBuild,
  cachedSteps,
  CommandResult,
  createTestStack,
  DEPLOY_TIMEOUT_MS,
  mustRun,
  repoRoot,
  requireEngine,
  run,
  TestStack,
  useDockerHost,
  writeBuildContext,
} from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const setting = (name: string) => new RegExp(`^${name}="([^"]+)"`, "m").exec(versions)![1];
const CURRENT = setting("BUILDKIT_VERSION");
const PREVIOUS = setting("BUILDKIT_PREVIOUS_VERSION");
const RUN_DIR = setting("ENGINES_RUN_DIR");
const quiet = { onOutput: () => undefined };

interface Engine {
  /** Short id for docker object names and the stack name (e- prefix: this file's own). */
  id: string;
  host: string;
  /** The major version this socket must answer as. */
  major: string;
  /** Whether the engine keeps a healthcheck start interval (API >= 1.44). */
  startInterval: boolean;
}

// Docker 29 is the default engine: the whole suite (lifecycle.test.ts, drift.test.ts, ...) already walks this path
// on it, so repeating it here would only cost CI minutes.
const ENGINES: Engine[] = [
  { id: "e-mx28", host: `unix://${RUN_DIR}/docker-28.sock`, major: "28", startInterval: true },
  { id: "e-mx20", host: "unix:///var/run/docker.sock", major: "20", startInterval: false },
];

/** "Docker 29.8.0 (API 1.56, unix://…)" as the engine itself reports, for the describe title. */
function engineTitle(engine: Engine): string {
  const version = run("docker", ["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"], { env: { ...process.env, DOCKER_HOST: engine.host } });
  const [server, api] = version.stdout.trim().split(" ");
  return version.code === 0 && server ? `Docker ${server} (API ${api}, ${engine.host})` : `Docker ${engine.major} (not answering on ${engine.host})`;
}

/** Every step of a preview or refresh summary other than "same" is a change. */
function changes(summary: Partial<Record<OpType, number>> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(summary ?? {}).filter(([op, count]) => op !== "same" && (count ?? 0) > 0)) as Record<string, number>;
}

const REFERENCE_DOCKERFILE = [
  "FROM busybox",
  "RUN mkdir /data && for i in 1 2 3 4; do head -c 2000000 /dev/urandom > /data/blob$i; done",
  "RUN tar -czf /data.tgz /data && rm -rf /data",
  "RUN sha256sum /data.tgz > /data.sha256",
  "COPY note.txt /note.txt",
  "RUN cat /note.txt /data.sha256",
].join("\n");

describe.each(ENGINES.map((engine) => [engineTitle(engine), engine] as const))("the lifecycle on %s", (_title, engine) => {
  let testStack: TestStack;
  let buildkitHost: string;
  let restoreDockerHost = () => undefined as void;

  beforeAll(async () => {
    restoreDockerHost = useDockerHost(engine.host);
    const answers = run("docker", ["version", "--format", "{{.Server.Version}}"]);
    if (answers.code !== 0) {
      throw new Error(`Docker ${engine.major} does not answer on ${engine.host} (${answers.stderr.trim()}). Run \`bash scripts/provision.sh\` (it builds and starts the engines), then re-run.`);
    }
    requireEngine();
    testStack = await createTestStack(engine.id, { image: `moby/buildkit:${PREVIOUS}` });
  });
  afterAll(async () => {
    try {
      await testStack?.cleanup();
    } finally {
      restoreDockerHost();
    }
  });

  it(`answers as Docker ${engine.major}`, () => {
    expect(mustRun("docker", ["version", "--format", "{{.Server.Version}}"]).trim()).toMatch(new RegExp(`^${engine.major}\\.`));
  });

  it("deploys: healthy, privileged, smoke-tested, with the healthcheck the engine keeps", async () => {
    const result = await testStack.stack.up(quiet);
    buildkitHost = result.outputs.buildkitHost.value;
    expect(buildkitHost).toBe(`docker-container://${testStack.containerName}`);
    expect(result.outputs.imageRepoDigest.value).toMatch(/^moby\/buildkit@sha256:[0-9a-f]{64}$/);
    expect(result.outputs.smokeTestSummary.value).toMatch(/^worker \S+ platforms linux\/amd64\S*; test build ok at \S+$/);
    expect(mustRun("docker", ["inspect", "-f", "{{.State.Health.Status}} {{.HostConfig.Privileged}}", testStack.containerName]).trim()).toBe("healthy true");
    // Nanoseconds as the engine stores them: 1 s start interval where the API keeps it, none elsewhere.
    const healthcheck = JSON.parse(mustRun("docker", ["inspect", "-f", "{{json .Config.Healthcheck}}", testStack.containerName])) as Record<string, unknown>;
    if (engine.startInterval) expect(healthcheck).toMatchObject({ StartPeriod: 30e9, StartInterval: 1e9 });
    else expect(healthcheck).toMatchObject({ StartPeriod: 2e9 });
    if (!engine.startInterval) expect(healthcheck.StartInterval ?? 0).toBe(0);
  });

  it("builds a Dockerfile with RUN steps FROM the mirror's busybox through buildkitHost", () => {
    const build = buildctlBuild(buildkitHost, writeBuildContext(REFERENCE_DOCKERFILE, { "note.txt": `matrix ${engine.id}\n` }));
    expect(build.code).toBe(0);
    expect(build.stderr).toContain(`matrix ${engine.id}`);
  });

  it("re-previews and refreshes with no changes (no perpetual diff on this engine)", async () => {
    for (let i = 0; i < 2; i++) expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
    expect(changes((await testStack.stack.refresh(quiet)).summary.resourceChanges)).toEqual({});
    expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
  });

  it(`upgrades ${PREVIOUS} → ${CURRENT} by replacing the container, keeping the cache volume`, async () => {
    const before = mustRun("docker", ["inspect", "-f", "{{.Id}}", testStack.containerName]).trim();
    const marker = `kept on ${engine.id} ${Date.now()}`;
    mustRun("docker", ["exec", testStack.containerName, "sh", "-c", `echo "${marker}" > /var/lib/buildkit/upgrade-marker`]);
    await testStack.stack.setConfig("buildkit:image", { value: `moby/buildkit:${CURRENT}` });
    const preview = await testStack.stack.preview(quiet);
    expect(preview.stdout).toMatch(/\+-\s+docker:index:Container\s+buildkit-daemon\s+replace/);
    expect(changes(preview.changeSummary).delete).toBeUndefined();
    const result = await testStack.stack.up(quiet);
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok at \S+$/);
    expect(mustRun("docker", ["inspect", "-f", "{{.Id}}", testStack.containerName]).trim()).not.toBe(before);
    expect(mustRun("docker", ["exec", testStack.containerName, "cat", "/var/lib/buildkit/upgrade-marker"]).trim()).toBe(marker);
    // The rebuild is served from the kept cache: every RUN and COPY step.
    const rebuild = buildctlBuild(buildkitHost, writeBuildContext(REFERENCE_DOCKERFILE, { "note.txt": `matrix ${engine.id}\n` }));
    expect(rebuild.code).toBe(0);
    expect(cachedSteps(rebuild.stderr)).toBeGreaterThanOrEqual(5);
    expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
  });

  it("reports a container removed out of band as drift, and up --refresh heals it", async () => {
    const drift = (): CommandResult =>
      run("bash", ["scripts/run-ts.sh", "cli/drift.ts", "--stack", engine.id, "--cwd", testStack.workDir], { env: testStack.env, cwd: repoRoot });
    const clean = drift();
    expect({ code: clean.code, out: clean.stdout + clean.stderr }).toMatchObject({ code: 0 });
    mustRun("docker", ["rm", "-f", testStack.containerName]);
    const drifted = drift();
    expect({ code: drifted.code, out: drifted.stdout }).toMatchObject({ code: 2, out: expect.stringContaining(testStack.containerName) });
    const healed = await testStack.stack.up({ ...quiet, refresh: true });
    expect(healed.outputs.smokeTestSummary.value).toMatch(/test build ok at \S+$/);
    expect(mustRun("docker", ["inspect", "-f", "{{.State.Health.Status}}", testStack.containerName]).trim()).toBe("healthy");
    expect(drift().code).toBe(0);
  });

  it("removes everything it created on destroy", async () => {
    await testStack.stack.destroy(quiet);
    expect(run("docker", ["inspect", testStack.containerName]).code).not.toBe(0);
    expect(run("docker", ["network", "inspect", testStack.networkName]).code).not.toBe(0);
    expect(run("docker", ["volume", "inspect", testStack.cacheVolumeName]).code).not.toBe(0);
  });
});
