/**
 * Provisioning's guards that need no engine: it refuses a Docker engine that
 * is not this machine's before building or starting anything, and the unit
 * suite (`npm test -- --selectProjects unit`) provisions only the tools unit
 * tests run, never the engine, the registry, the images or the Pulumi
 * toolchain. (Registry reach and image ownership are proven on the real
 * engine in tests/integration/provisioning.test.ts.)
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const root = path.resolve(__dirname, "..");

function bash(script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): { code: number; stderr: string; stdout: string } {
  const result = spawnSync("bash", ["-c", script, "bash", ...args], { cwd: root, encoding: "utf8", env: { ...process.env, ...env } });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** A directory whose `docker` records every call and fails, to prove a script never reached the engine. */
function recordingDocker(): { dir: string; calls: () => string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fake-docker-"));
  fs.writeFileSync(path.join(dir, "docker"), `#!/bin/sh\necho "docker $*" >> "${dir}/calls"\nexit 1\n`, { mode: 0o755 });
  return { dir, calls: () => (fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8") : "") };
}

describe("provisioning refuses an engine that is not this machine's", () => {
  const remote = ["tcp://192.0.2.10:2376", "ssh://deploy@build-host", "tcp://10.0.0.5:2375"];
  const local = ["unix:///var/run/docker.sock", "unix:///run/user/1000/docker.sock", "tcp://127.0.0.1:2375", "tcp://localhost:2376", "tcp://[::1]:2375"];

  it.each(remote)("refuses DOCKER_HOST=%s, naming it and the fix", (dockerHost) => {
    const result = bash('source scripts/lib.sh && require_local_engine', [], { DOCKER_HOST: dockerHost });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`ERROR: the Docker engine is ${dockerHost}, not this machine's`);
    expect(result.stderr).toContain("Unset DOCKER_HOST");
  });

  it.each(local)("accepts DOCKER_HOST=%s", (dockerHost) => {
    expect(bash('source scripts/lib.sh && require_local_engine', [], { DOCKER_HOST: dockerHost }).code).toBe(0);
  });

  it.each(["images.sh", "registry.sh"])("%s stops before it touches anything (no docker call, nothing cached)", (step) => {
    const docker = recordingDocker();
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), "refused-cache-"));
    try {
      const result = bash(`bash scripts/provision/${step}`, [], {
        DOCKER_HOST: "tcp://192.0.2.10:2376",
        PATH: `${docker.dir}:${process.env.PATH}`,
        BUILDKIT_STACK_CACHE: cache,
        BUILDKIT_STACK_REGISTRY_PORT: "5109",
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("ERROR: the Docker engine is tcp://192.0.2.10:2376, not this machine's");
      expect(docker.calls()).toBe("");
      expect(fs.readdirSync(cache)).toEqual([]);
    } finally {
      fs.rmSync(docker.dir, { recursive: true, force: true });
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });
});

describe("npm test -- --selectProjects unit", () => {
  it.each([
    [["--selectProjects", "unit"], true],
    [["--selectProjects=unit"], true],
    [["--json", "--selectProjects", "unit", "--outputFile=r.json"], true],
    // jest ignores a name that is no project: a path after the project names still selects unit alone.
    [["--selectProjects", "unit", "tests/workflows.test.ts"], true],
    [["--selectProjects", "unit", "integration"], false],
    [["--selectProjects=integration", "--selectProjects", "unit"], false],
    [["--selectProjects", "integration"], false],
    [[], false],
    [["tests/workflows.test.ts"], false],
  ])("jest arguments %j select the unit suite alone: %s", (args, unitOnly) => {
    expect(bash('source scripts/test.sh && selects_unit_only "$@"', args as string[]).code).toBe(unitOnly ? 0 : 1);
  });

  it("provisions only the unit suite's tools, never the engine, registry, images or Pulumi toolchain", () => {
    const docker = recordingDocker();
    try {
      // --listTests: the whole path of `npm test` up to jest, without running the suite again.
      const result = bash("bash scripts/test.sh --selectProjects unit --listTests", [], { PATH: `${docker.dir}:${process.env.PATH}` });
      expect(result.code).toBe(0);
      expect(result.stderr).toContain("[test] unit suite only: provisioning just its tools");
      expect(result.stderr).toMatch(/\[tools\] (building actionlint|actionlint v[\d.]+ is built)/);
      for (const step of ["[provision]", "[engine]", "[registry]", "[images]", "[pulumi]"]) expect(result.stderr).not.toContain(step);
      expect(docker.calls()).toBe("");
      expect(result.stdout).toContain(path.join(root, "tests", "provisioning.test.ts"));
      expect(result.stdout).not.toContain(path.join("tests", "integration"));
    } finally {
      fs.rmSync(docker.dir, { recursive: true, force: true });
    }
  }, 5 * 60 * 1000);
});
