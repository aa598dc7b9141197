/**
 * What only the engine can judge is asked of it before anything is declared
 * there, in preview as in up (issue 18, items 9-12): more CPUs than it has, a
 * port another container or a host process holds, an address the host lacks,
 * a name another program's object holds, a followed tag whose registry does
 * not answer, two spellings of one engine in a fleet, and a docker context
 * that would have sent the smoke test to another engine than the provider.
 * Each is refused with nothing created; the context case deploys on the one
 * engine both talk to.
 */
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

import { createTestStack, DEPLOY_TIMEOUT_MS, makeCertificates, mustRun, run, TestStack, tlsSecretConfig } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);
const quiet = { onOutput: () => undefined };
const ENGINE = process.env.DOCKER_HOST ?? "unix:///var/run/docker.sock";

/** Every docker object this test's stacks would name (bk-it-j-*), as the engine lists them. */
function objects(prefix: string): string[] {
  return [
    ...run("docker", ["ps", "-a", "--format", "container {{.Names}}"]).stdout.split("\n"),
    ...run("docker", ["network", "ls", "--format", "network {{.Name}}"]).stdout.split("\n"),
    ...run("docker", ["volume", "ls", "--format", "volume {{.Name}}"]).stdout.split("\n"),
  ].filter((line) => line.includes(prefix));
}

/** The custom resources a stack's state holds besides providers: what an up created somewhere. */
function declared(testStack: TestStack): string[] {
  const state = JSON.parse(mustRun("pulumi", ["stack", "export", "--stack", testStack.stack.name], { cwd: testStack.workDir, env: testStack.env })) as {
    deployment: { resources?: { type: string; custom?: boolean }[] };
  };
  // Custom resources only: the BuildkitStack component registers as the program declares it, before the engine has been
  // asked; it is a name in the state with nothing under it, and the next up after the fix reuses it.
  return (state.deployment.resources ?? []).filter((r) => r.custom && !r.type.startsWith("pulumi:providers:")).map((r) => r.type);
}

/** The error of a preview or up that must fail, as one string. */
async function failure(operation: Promise<unknown>): Promise<string> {
  try {
    await operation;
  } catch (error) {
    return String(error);
  }
  throw new Error("expected the operation to be refused, and it succeeded");
}

describe("values only the engine can judge, refused before anything is created", () => {
  const stacks: TestStack[] = [];
  const cleanups: (() => void)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups) cleanup();
    for (const testStack of stacks) await testStack.cleanup();
  });
  async function stackWith(id: string, config: Parameters<typeof createTestStack>[1]): Promise<TestStack> {
    const testStack = await createTestStack(id, config);
    stacks.push(testStack);
    return testStack;
  }

  it("more CPUs than the engine has: preview and up refuse with the engine's count, nothing is created", async () => {
    const cpus = Number(mustRun("docker", ["info", "--format", "{{.NCPU}}"]).trim());
    const testStack = await stackWith("j-cpus", { cpus: "64" });
    const previewed = await failure(testStack.stack.preview(quiet));
    expect(previewed).toContain(`buildkit:cpus is 64 but the Docker engine at ${ENGINE} has ${cpus} CPU`);
    const upped = await failure(testStack.stack.up(quiet));
    expect(upped).toContain("Refused before anything was created on the engine");
    expect(objects("bk-it-j-cpus")).toEqual([]);
    expect(declared(testStack)).toEqual([]);
  });

  it("a port another container publishes, or a host process listens on, or an address the host lacks", async () => {
    const certificates = makeCertificates(["bk-it-j-port", "127.0.0.1", "10.255.255.7"]);
    mustRun("docker", ["run", "-d", "--name", "bk-it-j-web", "-p", "127.0.0.1:18461:80", "busybox", "sleep", "600"]);
    cleanups.push(() => run("docker", ["rm", "-f", "bk-it-j-web"]));
    const held = await stackWith("j-port", { tcpPort: "18461", ...tlsSecretConfig(certificates) });
    expect(await failure(held.stack.preview(quiet))).toContain(`buildkit:tcpPort is 18461 but container "bk-it-j-web" on the Docker engine at ${ENGINE} already publishes it (on 127.0.0.1)`);

    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(18462, "127.0.0.1", resolve));
    cleanups.push(() => server.close());
    await held.stack.setConfig("buildkit:tcpPort", { value: "18462" });
    expect(await failure(held.stack.up(quiet))).toContain(
      `buildkit:tcpPort is 18462 but something on the Docker host at ${ENGINE} (not a container) already listens on 127.0.0.1:18462`,
    );

    await held.stack.setConfig("buildkit:tcpPort", { value: "18463" });
    await held.stack.setConfig("buildkit:tcpAddress", { value: "10.255.255.7" });
    expect(await failure(held.stack.up(quiet))).toContain(`buildkit:tcpAddress is "10.255.255.7" but the Docker host at ${ENGINE} has no such address`);
    expect(objects("bk-it-j-port")).toEqual([]);
    expect(declared(held)).toEqual([]);
  });

  it("a container or network name another program holds", async () => {
    const testStack = await stackWith("j-names", {});
    // Made after the stack (whose setup clears its names), by another program: no label of ours.
    mustRun("docker", ["network", "create", "bk-it-j-names"]);
    cleanups.push(() => run("docker", ["network", "rm", "bk-it-j-names"]));
    const refused = await failure(testStack.stack.up(quiet));
    expect(refused).toContain(
      `buildkit:networkName is "bk-it-j-names" but a network of that name on the Docker engine at ${ENGINE} was not made by this program (no org.buildkit-stack.managed-by label)`,
    );
    expect(objects("bk-it-j-names")).toEqual(["network bk-it-j-names"]);
    expect(declared(testStack)).toEqual([]);
  });

  it("a followed tag whose registry does not answer: on a new stack nothing is created, the cache guard included", async () => {
    const testStack = await stackWith("j-tagreg", { tagRegistry: "http://registry.invalid:5000" });
    const refused = await failure(testStack.stack.up(quiet));
    expect(refused).toContain('buildkit:tagRegistry is "http://registry.invalid:5000", but the current digest of moby/buildkit:v0.32.2 could not be read there');
    expect(objects("bk-it-j-tagreg")).toEqual([]);
    expect(declared(testStack)).toEqual([]);
  });

  it("two spellings of one engine in a fleet claiming one container", async () => {
    const spelt = ENGINE.replace(/\/([^/]+)$/, "//$1");
    expect(spelt).not.toBe(ENGINE);
    const hosts = [
      { name: "one", dockerHost: ENGINE, containerName: "bk-it-j-fleet", networkName: "bk-it-j-fleet-1", cacheVolumeName: "bk-it-j-fleet-1-cache" },
      { name: "two", dockerHost: spelt, containerName: "bk-it-j-fleet", networkName: "bk-it-j-fleet-2", cacheVolumeName: "bk-it-j-fleet-2-cache" },
    ];
    const testStack = await stackWith("j-fleet", { hosts: JSON.stringify(hosts) });
    const refused = await failure(testStack.stack.preview(quiet));
    expect(refused).toContain("Refused before anything was created: two hosts reach one engine");
    expect(refused).toMatch(/host "two": its container "bk-it-j-fleet" on unix:\/\/\/\S+ \(engine \S+, by docker info\) is already host "one"'s/);
    expect(objects("bk-it-j-fleet")).toEqual([]);
  });
});

describe("an active docker context without DOCKER_HOST", () => {
  const contextEngine = "unix:///run/buildkit-stack/docker-28.sock";
  let testStack: TestStack;
  let restore: () => void;

  beforeAll(async () => {
    // The user's shell: a docker context selected, no DOCKER_HOST.
    const dockerConfig = fs.mkdtempSync(path.join(os.tmpdir(), "bk-it-j-context-"));
    const ambient = { DOCKER_HOST: process.env.DOCKER_HOST, DOCKER_CONFIG: process.env.DOCKER_CONFIG };
    mustRun("docker", ["context", "create", "bk-it-j", "--docker", `host=${contextEngine}`], { env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
    mustRun("docker", ["context", "use", "bk-it-j"], { env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
    process.env.DOCKER_CONFIG = dockerConfig;
    delete process.env.DOCKER_HOST;
    restore = () => {
      for (const [key, value] of Object.entries(ambient)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
      fs.rmSync(dockerConfig, { recursive: true, force: true });
    };
    testStack = await createTestStack("j-context");
  });
  afterAll(async () => {
    try {
      await testStack?.cleanup();
    } finally {
      restore?.();
    }
  });

  it("deploys on the context's engine, provider and smoke test alike", async () => {
    const result = await testStack.stack.up(quiet);
    expect(result.outputs.smokeTestSummary.value).toMatch(/test build ok at /);
    const onContextEngine = run("docker", ["inspect", "-f", "{{.State.Running}}", testStack.containerName], { env: { ...process.env, DOCKER_HOST: contextEngine } });
    expect(onContextEngine.stdout.trim()).toBe("true");
    expect(run("docker", ["inspect", testStack.containerName], { env: { ...process.env, DOCKER_HOST: "unix:///var/run/docker.sock" } }).code).not.toBe(0);
  });
});
