/**
 * `npm run up -- STACK` runs the policy pack: a stack the config accepts but
 * policy refuses (a production cache left unprotected) is refused with nothing
 * created on the engine, and the same stack made conforming deploys. A stack
 * of this test's own (never dev or prod), its stack file written into the
 * repository for the run and removed after, its state in a temporary backend.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { containerMirror, DEPLOY_TIMEOUT_MS, mustRun, removeDockerObjects, repoRoot, requireEngine, run } from "./harness";

const STACK = "d-ci-up-policy";
const NAME = "d-ci-up-policy";
const stackFile = path.join(repoRoot, `Pulumi.${STACK}.yaml`);

let backendDir: string;
let env: NodeJS.ProcessEnv;

/** Docker objects named like the stack's, as `docker ps -a` / `network ls` / `volume ls` list them. */
function dockerObjects(): string[] {
  return [
    ...run("docker", ["ps", "-a", "--format", "container {{.Names}}"]).stdout.split("\n"),
    ...run("docker", ["network", "ls", "--format", "network {{.Name}}"]).stdout.split("\n"),
    ...run("docker", ["volume", "ls", "--format", "volume {{.Name}}"]).stdout.split("\n"),
  ].filter((line) => line.includes(NAME));
}

function writeStackFile(cacheProtected: boolean): void {
  fs.writeFileSync(
    stackFile,
    [
      "# Written by tests/integration/up.test.ts for one run; removed afterwards.",
      "config:",
      "  buildkit:production: true",
      "  buildkit:allowPrivileged: true",
      "  buildkit:image: moby/buildkit:v0.32.2",
      "  buildkit:memory: 1g",
      '  buildkit:cpus: "1"',
      "  buildkit:cacheMaxUsedSpace: 5g",
      `  buildkit:cacheProtected: ${cacheProtected}`,
      `  buildkit:containerName: ${NAME}`,
      `  buildkit:networkName: ${NAME}`,
      `  buildkit:cacheVolumeName: ${NAME}-cache`,
      "  buildkit:registryMirrors:",
      `    - http://${containerMirror}`,
      "  buildkit:extraHosts:",
      "    - host.docker.internal:host-gateway",
      "",
    ].join("\n"),
  );
}

const npmRunUp = () => run("npm", ["run", "up", "--", STACK], { cwd: repoRoot, env });

beforeAll(() => {
  requireEngine();
  if (fs.existsSync(stackFile)) throw new Error(`${stackFile} exists; this test writes and removes it`);
  backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "d-ci-up-state-"));
  env = { ...process.env, PULUMI_BACKEND_URL: `file://${backendDir}`, PULUMI_CONFIG_PASSPHRASE: "" };
  removeDockerObjects(NAME, NAME, `${NAME}-cache`);
});

afterAll(() => {
  if (!backendDir) return;
  try {
    if (fs.existsSync(stackFile)) {
      run("pulumi", ["state", "unprotect", "--all", "--yes", "--stack", STACK], { cwd: repoRoot, env });
      run("pulumi", ["destroy", "--yes", "--skip-preview", "--stack", STACK], { cwd: repoRoot, env });
      run("pulumi", ["stack", "rm", "--yes", "--force", STACK], { cwd: repoRoot, env });
    }
  } finally {
    removeDockerObjects(NAME, NAME, `${NAME}-cache`);
    fs.rmSync(stackFile, { force: true });
    fs.rmSync(backendDir, { recursive: true, force: true });
  }
}, DEPLOY_TIMEOUT_MS);

describe("npm run up", () => {
  it("refuses a stack that breaks a mandatory policy, before anything exists on the engine", () => {
    writeStackFile(false);
    const before = dockerObjects();
    const result = npmRunUp();
    const output = result.stdout + result.stderr;
    expect(result.code).not.toBe(0);
    expect(output).toMatch(/\[mandatory\]\s+production-cache-protected/);
    expect(output).toContain(`Production cache volume ${NAME}-cache is not protected; set buildkit:cacheProtected to true.`);
    expect(before).toEqual([]);
    expect(dockerObjects()).toEqual([]);
  }, DEPLOY_TIMEOUT_MS);

  it("deploys the same stack once it conforms, with the pack passing", () => {
    writeStackFile(true);
    const result = npmRunUp();
    const output = result.stdout + result.stderr;
    if (result.code !== 0) throw new Error(`npm run up failed (${result.code}):\n${output}`);
    expect(output).toContain("✅ buildkit-stack@v0.1.0");
    expect(output).not.toContain("[mandatory]");
    expect(mustRun("docker", ["inspect", "-f", "{{.State.Running}}", NAME]).trim()).toBe("true");
    expect(mustRun("pulumi", ["stack", "output", "smokeTestSummary", "--stack", STACK], { cwd: repoRoot, env })).toContain("test build ok");
  }, DEPLOY_TIMEOUT_MS);
});
