/**
 * scripts/ci-docker-access.sh, the workflows' "Reach the Docker host" step,
 * against real remote engines (scripts/fleet-test-hosts.sh's two hosts): ssh
 * with the deploy key and a pinned host key, and tcp with Docker's TLS. The
 * step runs as GitHub runs it (RUNNER_TEMP, GITHUB_ENV, GITHUB_PATH); the
 * steps after it see what the runner would hand them, and `pulumi up` of the
 * real program then deploys through them (provider, engine probe and smoke
 * test), as the deploy workflow's next step does. A host key other than the
 * pinned one is refused at the step, naming the host.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { createTestStack, DEPLOY_TIMEOUT_MS, mustRun, repoRoot, requireEngine, run, TestStack } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const HOST_SCRIPT = path.join(repoRoot, "scripts/fleet-test-hosts.sh");
const ACCESS_SCRIPT = path.join(repoRoot, "scripts/ci-docker-access.sh");
const CACHE = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const STATE = path.join(CACHE, "fleet-hosts");

/** What `scripts/fleet-test-hosts.sh up` prints as `export NAME=value` lines. */
let hostEnv: Record<string, string>;
/** PATH without the fleet test's own ssh wrapper: the step must bring its own. */
const BASE_PATH = process.env.PATH!;

/** A job's runner files, fresh per test: RUNNER_TEMP, GITHUB_ENV, GITHUB_PATH. */
interface Runner {
  temp: string;
  githubEnv: string;
  githubPath: string;
}
const runners: string[] = [];
function newRunner(): Runner {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bkt-ci-runner-"));
  runners.push(dir);
  const runner = { temp: path.join(dir, "temp"), githubEnv: path.join(dir, "env"), githubPath: path.join(dir, "path") };
  fs.mkdirSync(runner.temp);
  fs.writeFileSync(runner.githubEnv, "");
  fs.writeFileSync(runner.githubPath, "");
  return runner;
}

/** Runs the step with the job's environment (DOCKER_HOST) and the step's secrets. */
function accessStep(runner: Runner, env: Record<string, string>) {
  return spawnSync("bash", [ACCESS_SCRIPT], {
    encoding: "utf8",
    env: { PATH: BASE_PATH, HOME: os.homedir(), RUNNER_TEMP: runner.temp, GITHUB_ENV: runner.githubEnv, GITHUB_PATH: runner.githubPath, ...env },
  });
}

/** The environment the runner gives the steps after it: GITHUB_PATH entries first on PATH, GITHUB_ENV lines set. */
function laterStepEnv(runner: Runner, jobEnv: Record<string, string>): Record<string, string> {
  const paths = fs.readFileSync(runner.githubPath, "utf8").split("\n").filter(Boolean).reverse();
  const set = Object.fromEntries(fs.readFileSync(runner.githubEnv, "utf8").split("\n").filter(Boolean).map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
  return { ...jobEnv, ...set, PATH: [...paths, BASE_PATH].join(":") };
}

const mode = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);

/** The engine's own version, asked on its local socket: what the remote path must reach. */
const versionAt = (socket: string) => mustRun("docker", ["-H", `unix://${socket}`, "version", "--format", "{{.Server.Version}}"]).trim();

/**
 * Deploys the real program to whatever the later steps' environment reaches
 * (no buildkit:dockerHost: the job's DOCKER_HOST, as in the workflows), checks
 * the daemon answers there, and destroys it.
 */
async function deployThrough(id: string, stepEnv: Record<string, string>, socket: string): Promise<string> {
  const saved = { ...process.env };
  Object.assign(process.env, stepEnv);
  let testStack: TestStack | undefined;
  try {
    testStack = await createTestStack(id, { cpus: "0.5", memory: "256m" });
    const result = await testStack.stack.up({ onOutput: () => undefined });
    // The container is on that engine (asked on its local socket, not through the step's access).
    expect(mustRun("docker", ["-H", `unix://${socket}`, "inspect", "-f", "{{.State.Running}}", testStack.containerName]).trim()).toBe("true");
    return result.outputs.smokeTestSummary.value as string;
  } finally {
    try {
      await testStack?.cleanup();
    } finally {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    }
  }
}

beforeAll(() => {
  requireEngine();
  const up = run("bash", [HOST_SCRIPT, "up"]);
  if (up.code !== 0) throw new Error(`scripts/fleet-test-hosts.sh up failed (run it by hand to see why):\n${up.stderr}`);
  hostEnv = Object.fromEntries([...up.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
});

afterAll(() => {
  for (const dir of runners) {
    // The step's ssh keeps a shared connection open for a while: end it, so nothing outlives the test.
    const config = path.join(dir, "temp", "docker-access", "config");
    if (fs.existsSync(config)) run("ssh", ["-F", config, "-O", "exit", "-p", hostEnv.FLEET_SSH_DOCKER_HOST.split(":").pop()!, "127.0.0.1"]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe("ssh://, with the deploy key and the pinned host key", () => {
  const secrets = () => ({
    DOCKER_HOST: hostEnv.FLEET_SSH_DOCKER_HOST,
    DOCKER_SSH_KEY: fs.readFileSync(path.join(STATE, "ssh-client", "id_ed25519"), "utf8"),
    DOCKER_SSH_KNOWN_HOSTS: fs.readFileSync(path.join(STATE, "ssh-client", "known_hosts"), "utf8"),
  });

  it("reaches the engine, writes the key 0600 in a 0700 directory, and the next steps deploy through it", async () => {
    const runner = newRunner();
    const step = accessStep(runner, secrets());
    if (step.status !== 0) throw new Error(`the step failed (${step.status}):\n${step.stderr}`);
    const version = versionAt(hostEnv.FLEET_SSH_SOCKET);
    expect(step.stderr).toContain(`[docker-access] the engine at ${hostEnv.FLEET_SSH_DOCKER_HOST} answers: Docker ${version}`);
    const dir = path.join(runner.temp, "docker-access");
    expect({ dir: mode(dir), key: mode(path.join(dir, "id")), knownHosts: mode(path.join(dir, "known_hosts")) }).toEqual({ dir: "700", key: "600", knownHosts: "600" });
    // The key is never echoed.
    expect(step.stdout + step.stderr).not.toContain("PRIVATE KEY");

    const later = laterStepEnv(runner, { DOCKER_HOST: hostEnv.FLEET_SSH_DOCKER_HOST });
    expect(mustRun("docker", ["version", "--format", "{{.Server.Version}}"], { env: later }).trim()).toBe(version);
    expect(await deployThrough("bkt-ci-ssh", later, hostEnv.FLEET_SSH_SOCKET)).toMatch(/test build ok/);
  });

  it("refuses a host whose key is not the pinned one", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bkt-ci-otherkey-"));
    runners.push(dir);
    mustRun("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "other")]);
    const port = hostEnv.FLEET_SSH_DOCKER_HOST.split(":").pop();
    const other = `[127.0.0.1]:${port} ${fs.readFileSync(path.join(dir, "other.pub"), "utf8").split(" ").slice(0, 2).join(" ")}\n`;
    const step = accessStep(newRunner(), { ...secrets(), DOCKER_SSH_KNOWN_HOSTS: other });
    expect(step.status).toBe(1);
    expect(step.stderr).toContain(`[docker-access] ERROR: the Docker engine at ${hostEnv.FLEET_SSH_DOCKER_HOST} does not answer with these secrets:`);
    expect(step.stderr).toContain("Host key verification failed");
  });
});

describe("tcp://, with Docker's TLS", () => {
  const certificate = (name: string) => fs.readFileSync(path.join(hostEnv.FLEET_TLS_CERT_DIR, name), "utf8");

  it("reaches the engine with the certificates written 0600 in a 0700 directory, and the next steps deploy through it", async () => {
    const runner = newRunner();
    const step = accessStep(runner, {
      DOCKER_HOST: hostEnv.FLEET_TLS_DOCKER_HOST,
      DOCKER_TLS_CA: certificate("ca.pem"),
      DOCKER_TLS_CERT: certificate("cert.pem"),
      DOCKER_TLS_KEY: certificate("key.pem"),
    });
    if (step.status !== 0) throw new Error(`the step failed (${step.status}):\n${step.stderr}`);
    const version = versionAt(hostEnv.FLEET_TLS_SOCKET);
    expect(step.stderr).toContain(`[docker-access] the engine at ${hostEnv.FLEET_TLS_DOCKER_HOST} answers: Docker ${version}`);
    const tls = path.join(runner.temp, "docker-access", "tls");
    expect([mode(path.dirname(tls)), mode(tls), ...["ca.pem", "cert.pem", "key.pem"].map((f) => mode(path.join(tls, f)))]).toEqual(["700", "700", "600", "600", "600"]);
    expect(fs.readFileSync(runner.githubEnv, "utf8")).toBe(`DOCKER_CERT_PATH=${tls}\nDOCKER_TLS_VERIFY=1\n`);

    const later = laterStepEnv(runner, { DOCKER_HOST: hostEnv.FLEET_TLS_DOCKER_HOST });
    expect(mustRun("docker", ["version", "--format", "{{.Server.Version}}"], { env: later }).trim()).toBe(version);
    expect(await deployThrough("bkt-ci-tls", later, hostEnv.FLEET_TLS_SOCKET)).toMatch(/test build ok/);
  });

  it("refuses the same engine's address without the TLS secrets, before any connection", () => {
    const step = accessStep(newRunner(), { DOCKER_HOST: hostEnv.FLEET_TLS_DOCKER_HOST });
    expect(step.status).toBe(1);
    expect(step.stderr).toContain(`DOCKER_HOST is ${hostEnv.FLEET_TLS_DOCKER_HOST}, a TCP API, but the DOCKER_TLS_CA DOCKER_TLS_CERT DOCKER_TLS_KEY secret(s) are empty: a plaintext Docker API is refused`);
  });
});
