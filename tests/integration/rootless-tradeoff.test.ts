/**
 * What rootless protects and what it gives up, as docs/security.md states it,
 * on the engine: the daemon runs as uid 1000 on the host in a container that
 * is not privileged; with --oci-worker-no-process-sandbox a build step shares
 * the daemon's PID namespace — it sees buildkitd in /proc and may signal it
 * (kill -0 succeeds) — and seccomp and AppArmor are unconfined for it.
 */
import { buildctlBuild, createTestStack, DEPLOY_TIMEOUT_MS, mustRun, removeDockerObjects, requireEngine, TestStack, writeBuildContext } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const ID = "h18-rootless";
const NAME = "bk-h18-rootless";

describe("a rootless daemon", () => {
  let target: TestStack;

  beforeAll(async () => {
    requireEngine();
    removeDockerObjects(NAME, NAME, `${NAME}-cache`);
    target = await createTestStack(ID, { rootless: "true", containerName: NAME, networkName: NAME, cacheVolumeName: `${NAME}-cache` });
    const result = await target.stack.up({ onOutput: () => undefined });
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok/);
  });

  afterAll(async () => {
    try {
      await target?.cleanup();
    } finally {
      removeDockerObjects(NAME, NAME, `${NAME}-cache`);
    }
  });

  it("runs as uid 1000, unprivileged, with seccomp and AppArmor unconfined", () => {
    const hostConfig = JSON.parse(mustRun("docker", ["inspect", "-f", "{{json .HostConfig}}", NAME])) as { Privileged: boolean; SecurityOpt: string[] | null };
    expect(hostConfig.Privileged).toBe(false);
    expect([...(hostConfig.SecurityOpt ?? [])].sort()).toEqual(["apparmor=unconfined", "seccomp=unconfined"]);
    // The host's view of the container's processes: buildkitd's uid is 1000, not 0.
    // docker top needs the pid column to map its rows to the container.
    const top = mustRun("docker", ["top", NAME, "-eo", "pid,uid,args"]).trim().split("\n").slice(1);
    const daemon = top.find((line) => /buildkitd/.test(line) && !/rootlesskit/.test(line));
    expect(daemon).toBeDefined();
    expect(daemon!.trim().split(/\s+/)[1]).toBe("1000");
  });

  it("lets a build step see buildkitd's process and signal it (no process sandbox)", () => {
    const context = writeBuildContext(
      [
        "FROM busybox",
        // A fresh step every run (never served from cache), printing what it found.
        `RUN echo run ${Date.now()}; for p in /proc/[0-9]*; do if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^buildkitd'; then echo "sees buildkitd pid \${p#/proc/}"; kill -0 \${p#/proc/} && echo "can signal buildkitd"; fi; done`,
        "",
      ].join("\n"),
    );
    const build = buildctlBuild(`docker-container://${NAME}`, context);
    const output = build.stdout + build.stderr;
    expect(build.code).toBe(0);
    expect(output).toMatch(/sees buildkitd pid \d+/);
    expect(output).toMatch(/can signal buildkitd/);
  });
});
