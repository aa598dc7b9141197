/**
 * The lifecycle a platform team lives through, on the real engine: deploy and
 * build, re-preview with nothing to do, upgrade keeping the cache, survive a
 * crash, keep the cache under its ceiling, refuse concurrent updates, tear
 * down (keeping a precious cache), and the hardened and mTLS variants.
 */
import * as fs from "fs";
import * as path from "path";

import { EngineEvent, OpType } from "@pulumi/pulumi/automation";

import {
  buildctlBuild,
  cachedSteps,
  createTestStack,
  DEPLOY_TIMEOUT_MS,
  makeCertificates,
  mustRun,
  run,
  TestStack,
  tlsSecretConfig,
  waitFor,
  writeBuildContext,
} from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const versions = fs.readFileSync(path.join(__dirname, "../../scripts/versions.sh"), "utf8");
const CURRENT = /BUILDKIT_VERSION="([^"]+)"/.exec(versions)![1];
const PREVIOUS = /BUILDKIT_PREVIOUS_VERSION="([^"]+)"/.exec(versions)![1];
const quiet = { onOutput: () => undefined };

/** Every step of a preview or refresh summary other than "same" is a change. */
function changes(summary: Partial<Record<OpType, number>> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(summary ?? {}).filter(([op, count]) => op !== "same" && (count ?? 0) > 0)) as Record<string, number>;
}

/** A reference Dockerfile: several RUN steps that do real work, FROM the mirror's busybox. */
const REFERENCE_DOCKERFILE = [
  "FROM busybox",
  "RUN mkdir /data && for i in 1 2 3 4 5 6 7 8; do head -c 2000000 /dev/urandom > /data/blob$i; done",
  "RUN tar -czf /data.tgz /data && rm -rf /data",
  "RUN sha256sum /data.tgz > /data.sha256",
  "COPY note.txt /note.txt",
  "RUN cat /note.txt /data.sha256",
].join("\n");

describe("a development daemon, from first deploy through upgrade", () => {
  let testStack: TestStack;
  let buildkitHost: string;

  beforeAll(async () => {
    testStack = await createTestStack("life", {
      image: `moby/buildkit:${PREVIOUS}`,
      restartPolicy: "unless-stopped",
    });
  });
  afterAll(async () => testStack?.cleanup());

  it("deploys and outputs what a user pastes into a build client", async () => {
    const result = await testStack.stack.up(quiet);
    const outputs = Object.fromEntries(Object.entries(result.outputs).map(([key, output]) => [key, output.value]));
    buildkitHost = outputs.buildkitHost;
    expect(outputs).toMatchObject({
      buildkitHost: `docker-container://${testStack.containerName}`,
      containerName: testStack.containerName,
      cacheVolumeName: testStack.cacheVolumeName,
      networkName: testStack.networkName,
      imageRepoDigest: expect.stringMatching(/^moby\/buildkit@sha256:[0-9a-f]{64}$/),
    });
    expect(outputs.smokeTestSummary).toMatch(/^worker \S+ platforms linux\/amd64\S*; test build ok at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(mustRun("docker", ["inspect", "-f", "{{.State.Health.Status}} {{.HostConfig.Privileged}}", testStack.containerName]).trim()).toBe("healthy true");
  });

  it("builds a Dockerfile with RUN steps through buildkitHost", () => {
    const build = buildctlBuild(buildkitHost, writeBuildContext(REFERENCE_DOCKERFILE, { "note.txt": "reference build\n" }));
    expect(build.code).toBe(0);
    expect(build.stderr).toMatch(/reference build/);
  });

  it("shows no changes in three previews in a row, nor in a refresh", async () => {
    for (let i = 0; i < 3; i++) {
      const preview = await testStack.stack.preview(quiet);
      expect(changes(preview.changeSummary)).toEqual({});
    }
    const refresh = await testStack.stack.refresh(quiet);
    expect(changes(refresh.summary.resourceChanges)).toEqual({});
  });

  it("refuses a second update while one runs, and leaves the state intact", async () => {
    const first = testStack.stack.up({ ...quiet, refresh: true });
    // The lock exists once the first update has started; poll for it, bounded.
    const lockDir = path.join(new URL(testStack.backendUrl).pathname, ".pulumi", "locks");
    await waitFor("the first update to take the stack lock", 60_000, () => (fs.existsSync(lockDir) && fs.readdirSync(lockDir, { recursive: true }).some((f) => String(f).endsWith(".json"))) || undefined, 50);
    const second = run("pulumi", ["up", "--yes", "--skip-preview", "--stack", "life"], { cwd: testStack.workDir, env: testStack.env });
    expect(second.code).not.toBe(0);
    expect(second.stdout + second.stderr).toMatch(/currently locked/);
    await first;
    const preview = await testStack.stack.preview(quiet);
    expect(changes(preview.changeSummary)).toEqual({});
  });

  it("upgrades the image by replacing the container and keeps the cache volume", async () => {
    const before = mustRun("docker", ["inspect", "-f", "{{.Id}}", testStack.containerName]).trim();
    // A marker in the cache volume: if the volume survives the upgrade, so does the marker.
    const marker = `kept across ${PREVIOUS} → ${CURRENT} ${Date.now()}`;
    mustRun("docker", ["exec", testStack.containerName, "sh", "-c", `echo "${marker}" > /var/lib/buildkit/upgrade-marker`]);
    await testStack.stack.setConfig("buildkit:image", { value: `moby/buildkit:${CURRENT}` });
    const preview = await testStack.stack.preview(quiet);
    // The new image id reaches the container: a replacement, shown before anything happens.
    expect(preview.stdout).toMatch(/\+-\s+docker:index:Container\s+buildkit-daemon\s+replace/);
    expect(preview.stdout).toMatch(/\+-\s+command:local:Command\s+buildkit-smoke-test\s+replace/);
    expect(changes(preview.changeSummary).delete).toBeUndefined();

    // Downtime as a user feels it: old container stopping → smoke test passed on the new one.
    let stopping = 0;
    let proven = 0;
    const onEvent = (event: EngineEvent) => {
      const pre = event.resourcePreEvent?.metadata;
      if (pre?.type === "docker:index/container:Container" && pre.op === "delete-replaced" && !stopping) stopping = Date.now();
      const done = event.resOutputsEvent?.metadata;
      if (done?.type === "command:local:Command" && done.op.endsWith("replacement") === false && done.op !== "same") proven = Date.now();
    };
    const result = await testStack.stack.up({ ...quiet, onEvent });
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok at \S+$/);
    console.log(`upgrade ${PREVIOUS} → ${CURRENT}: downtime ${((proven - stopping) / 1000).toFixed(1)}s (old container stopping → smoke test passed)`);
    expect(stopping).toBeGreaterThan(0);
    expect(proven).toBeGreaterThan(stopping);

    expect(mustRun("docker", ["inspect", "-f", "{{.Id}}", testStack.containerName]).trim()).not.toBe(before);
    expect(mustRun("docker", ["exec", testStack.containerName, "cat", "/var/lib/buildkit/upgrade-marker"]).trim()).toBe(marker);
    expect(mustRun("docker", ["inspect", "-f", "{{.Config.Labels}}", testStack.containerName])).toContain(CURRENT);
  });

  it("serves the reference rebuild from the kept cache after the upgrade", () => {
    const build = buildctlBuild(buildkitHost, writeBuildContext(REFERENCE_DOCKERFILE, { "note.txt": "reference build\n" }));
    expect(build.code).toBe(0);
    // Every RUN and COPY step of the reference Dockerfile was cached by the build before the upgrade.
    expect(cachedSteps(build.stderr)).toBeGreaterThanOrEqual(5);
  });

  it("comes back healthy after buildkitd is killed, through the restart policy", async () => {
    const restartsBefore = Number(mustRun("docker", ["inspect", "-f", "{{.RestartCount}}", testStack.containerName]).trim());
    const pid = mustRun("docker", ["inspect", "-f", "{{.State.Pid}}", testStack.containerName]).trim();
    mustRun("kill", ["-KILL", pid]);
    await waitFor("the restart policy to restart buildkitd", 60_000, () =>
      Number(mustRun("docker", ["inspect", "-f", "{{.RestartCount}}", testStack.containerName]).trim()) > restartsBefore || undefined,
    );
    await waitFor("the healthcheck to report healthy again", 90_000, () =>
      mustRun("docker", ["inspect", "-f", "{{.State.Health.Status}}", testStack.containerName]).trim() === "healthy" || undefined,
    );
    expect(run("buildctl", ["--addr", buildkitHost, "debug", "workers"]).code).toBe(0);
  });

  it("removes everything it created on destroy", async () => {
    await testStack.stack.destroy(quiet);
    expect(run("docker", ["inspect", testStack.containerName]).code).not.toBe(0);
    expect(run("docker", ["network", "inspect", testStack.networkName]).code).not.toBe(0);
    expect(run("docker", ["volume", "inspect", testStack.cacheVolumeName]).code).not.toBe(0);
  });
});

describe("a cache with a ceiling", () => {
  let testStack: TestStack;
  const ceilingBytes = 96 * 1024 * 1024;

  beforeAll(async () => {
    testStack = await createTestStack("gc", { cacheMaxUsedSpace: "96m", cacheReservedSpace: "16m", smokeTest: "false" });
    await testStack.stack.up(quiet);
  });
  afterAll(async () => testStack?.cleanup());

  it("shows the configured policy in the worker's GC rules", () => {
    const workers = mustRun("buildctl", ["--addr", `docker-container://${testStack.containerName}`, "debug", "workers", "-v"]);
    expect(workers).toMatch(/GC Policy rule/);
    // The catch-all rule carries the stack's floor and ceiling (BuildKit prints decimal MB: 16 MiB, 96 MiB).
    expect(workers).toMatch(/All:\s+true\s+Reserved space:\s+16\.777216MB\s+Maximum used space:\s+100\.663296MB/);
  });

  it("prunes back under the ceiling after builds write well past it", async () => {
    const host = `docker-container://${testStack.containerName}`;
    for (let i = 0; i < 4; i++) {
      // 48 MB of fresh layers per build: 192 MB in all, twice the ceiling.
      const context = writeBuildContext(`FROM busybox\nRUN head -c 48000000 /dev/urandom > /blob-${i}-${Date.now()}\n`);
      expect(buildctlBuild(host, context).code).toBe(0);
    }
    const usage = () => {
      const du = mustRun("buildctl", ["--addr", host, "du"]);
      const total = /Total:\s+([\d.]+)\s*([KMG]?B)/.exec(du);
      if (!total) throw new Error(`no total in buildctl du:\n${du}`);
      return Number(total[1]) * { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[total[2] as "B" | "KB" | "MB" | "GB"];
    };
    const settled = await waitFor("buildkitd's GC to prune the cache under its ceiling", 120_000, () => {
      const used = usage();
      return used <= ceilingBytes ? used : undefined;
    }, 2000);
    console.log(`cache after 192 MB of builds with a 96 MiB ceiling: ${(settled / 1e6).toFixed(1)} MB`);
    expect(settled).toBeLessThanOrEqual(ceilingBytes);
  });
});

describe("a production-like stack", () => {
  let testStack: TestStack;

  beforeAll(async () => {
    testStack = await createTestStack("prodlike", {
      production: "true",
      allowPrivileged: "true",
      image: `moby/buildkit:${CURRENT}`,
      cacheMaxUsedSpace: "2g",
      smokeTest: "false",
    });
    await testStack.stack.up(quiet);
  });
  afterAll(async () => testStack?.cleanup());

  it("refuses to destroy its protected cache, and keeps it when destroyed deliberately", async () => {
    await expect(testStack.stack.destroy(quiet)).rejects.toThrow(/protected/);
    mustRun("pulumi", ["state", "unprotect", "--all", "--yes", "--stack", "prodlike"], { cwd: testStack.workDir, env: testStack.env });
    let log = "";
    await testStack.stack.destroy({ onOutput: (line) => (log += line) });
    expect(run("docker", ["inspect", testStack.containerName]).code).not.toBe(0);
    expect(mustRun("docker", ["volume", "inspect", "-f", "{{.Name}}", testStack.cacheVolumeName]).trim()).toBe(testStack.cacheVolumeName);
    expect(log).toMatch(/retain/i);
  });
});

describe("a hardened (rootless) daemon", () => {
  let testStack: TestStack;

  beforeAll(async () => {
    testStack = await createTestStack("rootless", { rootless: "true" });
  });
  afterAll(async () => testStack?.cleanup());

  it("deploys without --privileged and passes its smoke test", async () => {
    const result = await testStack.stack.up(quiet);
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok at \S+$/);
    expect(mustRun("docker", ["inspect", "-f", "{{.HostConfig.Privileged}} {{.Config.User}} {{.HostConfig.SecurityOpt}}", testStack.containerName]).trim()).toBe(
      "false 1000:1000 [seccomp=unconfined apparmor=unconfined]",
    );
    const build = buildctlBuild(result.outputs.buildkitHost.value, writeBuildContext("FROM busybox\nRUN echo rootless build > /out && cat /out\n"));
    expect(build.code).toBe(0);
    expect(build.stderr).toContain("rootless build");
  });
});

describe("a daemon on TCP with mTLS", () => {
  let testStack: TestStack;
  let tls: ReturnType<typeof makeCertificates>;
  const port = 18234;

  beforeAll(async () => {
    tls = makeCertificates(["bk-it-mtls", "127.0.0.1"]);
    testStack = await createTestStack("mtls", {
      tcpPort: String(port),
      ...tlsSecretConfig(tls),
    });
  });
  afterAll(async () => testStack?.cleanup());

  it("deploys, and its smoke test connects with the client certificate", async () => {
    const result = await testStack.stack.up(quiet);
    expect(result.outputs.buildkitHost.value).toBe(`tcp://127.0.0.1:${port}`);
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok at \S+$/);
  });

  it("builds for a client with the certificate", () => {
    const context = writeBuildContext("FROM busybox\nRUN echo over mtls > /out && cat /out\n");
    const certificate = ["--tlscacert", path.join(tls.dir, "ca.pem"), "--tlscert", path.join(tls.dir, "client.pem"), "--tlskey", path.join(tls.dir, "client.key")];
    const build = run("buildctl", [
      "--addr", `tcp://127.0.0.1:${port}`, ...certificate,
      "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${context}`, "--local", `dockerfile=${context}`,
    ]);
    expect(build.code).toBe(0);
    expect(build.stderr).toContain("over mtls");
  });

  it("refuses a client without a certificate", () => {
    const noCert = run("buildctl", ["--addr", `tcp://127.0.0.1:${port}`, "--tlscacert", path.join(tls.dir, "ca.pem"), "debug", "workers"]);
    expect(noCert.code).not.toBe(0);
    expect(noCert.stderr).toMatch(/certificate|tls|handshake/i);
  });
});
