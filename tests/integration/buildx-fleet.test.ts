/**
 * A fleet of two hosts of different platforms behind one buildx builder, the
 * way a platform team offers multi-platform builds: deploy the fleet (Docker
 * 29 as the linux/amd64 host, Docker 28 as a host whose worker advertises
 * linux/arm64), each publishing buildkitd over TCP with mTLS; create the
 * builder with exactly the lines `npm run buildx` prints, using the real
 * buildx; build both platforms at once and show, from each daemon's own build
 * history, that each platform was built on the node of that platform; show
 * what an advertised platform the host cannot execute does to a RUN step;
 * remove the builder and destroy the fleet.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { buildxDockerConfig, createTestStack, DEPLOY_TIMEOUT_MS, makeCertificates, mustRun, repoRoot, run, TestStack, tlsSecretConfig, writeBuildContext } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const quiet = { onOutput: () => undefined };
const BUILDER = "bk-bx-fleet";
/** The two hosts: one engine each, a port of this test's range each, and the platforms their workers advertise. */
const HOSTS = [
  { name: "amd", dockerHost: "unix:///run/buildkit-stack/docker-29.sock", port: 18431, platforms: ["linux/amd64"] },
  { name: "arm", dockerHost: "unix:///run/buildkit-stack/docker-28.sock", port: 18432, platforms: ["linux/arm64"] },
] as const;
type Host = (typeof HOSTS)[number];
const containerOf = (host: Host) => `bk-bx-${host.name}`;
const engineEnv = (host: Host) => ({ ...process.env, DOCKER_HOST: host.dockerHost });

/** One record of a daemon's build history, as `buildctl debug histories --format json` prints it. */
interface HistoryRecord {
  Ref: string;
  FrontendAttrs?: Record<string, string>;
  error?: { message?: string };
}

/** The daemon's own record of every build it ran (not what buildx remembers). */
function daemonHistory(host: Host): HistoryRecord[] {
  const printed = mustRun("docker", ["exec", containerOf(host), "buildctl", "debug", "histories", "--format", "json"], { env: engineEnv(host) });
  return printed
    .split("\n")
    .filter((line) => line.trim().startsWith("{"))
    .map((line) => (JSON.parse(line) as { record: HistoryRecord }).record);
}

/** A 64-byte ELF header for aarch64: enough for the kernel to refuse it as another machine's binary. */
function arm64Executable(): Buffer {
  const header = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(header); // ELF, 64-bit, little-endian, version 1
  header.writeUInt16LE(2, 16); // ET_EXEC
  header.writeUInt16LE(183, 18); // EM_AARCH64
  header.writeUInt32LE(1, 20);
  header.writeUInt16LE(64, 52); // e_ehsize
  header.writeUInt16LE(56, 54); // e_phentsize
  header.writeUInt16LE(64, 58); // e_shentsize
  return header;
}

describe("a buildx builder over a fleet of two platforms", () => {
  let testStack: TestStack;
  let dockerConfig: string;
  let tlsDir: string;
  let printed: string;
  const buildx = (args: string[]) => run("docker", ["buildx", ...args], { env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
  const removeLeftovers = () => {
    for (const host of HOSTS) {
      run("docker", ["rm", "-f", containerOf(host)], { env: engineEnv(host) });
      run("docker", ["network", "rm", containerOf(host)], { env: engineEnv(host) });
      run("docker", ["volume", "rm", "-f", `${containerOf(host)}-cache`], { env: engineEnv(host) });
    }
  };

  beforeAll(async () => {
    for (const host of HOSTS) {
      const info = run("docker", ["info", "--format", "{{.ServerVersion}}"], { env: engineEnv(host) });
      if (info.code !== 0) throw new Error(`No Docker engine answers at ${host.dockerHost} (${info.stderr.trim()}). Run \`bash scripts/provision.sh\`, then re-run.`);
    }
    dockerConfig = buildxDockerConfig();
    tlsDir = fs.mkdtempSync(path.join(os.tmpdir(), "bk-bx-tls-"));
    removeLeftovers();

    // One server certificate for both daemons: config requires each container's name and the published address.
    const tls = makeCertificates([...HOSTS.map(containerOf), "127.0.0.1"]);
    testStack = await createTestStack("bx-fleet", {
      ...tlsSecretConfig(tls),
    });
    // The host list as the README writes it: structured config, platforms as a per-host override.
    const config: Record<string, { value: string }> = {};
    HOSTS.forEach((host, index) => {
      const fields: Record<string, string> = {
        name: host.name,
        dockerHost: host.dockerHost,
        containerName: containerOf(host),
        networkName: containerOf(host),
        cacheVolumeName: `${containerOf(host)}-cache`,
        tcpPort: String(host.port),
        "platforms[0]": host.platforms[0],
      };
      for (const [field, value] of Object.entries(fields)) config[`buildkit:hosts[${index}].${field}`] = { value };
    });
    await testStack.stack.setAllConfig(config, true);
  });

  afterAll(async () => {
    if (dockerConfig) buildx(["rm", "--force", BUILDER]);
    try {
      await testStack?.cleanup();
    } finally {
      removeLeftovers();
      for (const dir of [dockerConfig, tlsDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("deploys both hosts, each worker advertising its platform first, proven by a build", async () => {
    const result = await testStack.stack.up(quiet);
    for (const host of HOSTS) {
      // The smoke test's summary is the daemon's own worker list: the configured platform is its default.
      expect(result.outputs.fleetSmokeTests.value[host.name]).toMatch(new RegExp(`^worker \\S+ platforms ${host.platforms[0]}[,;]`));
      expect(mustRun("docker", ["inspect", "-f", "{{.State.Health.Status}}", containerOf(host)], { env: engineEnv(host) }).trim()).toBe("healthy");
    }
    // buildkitd keeps its host's own platforms after the configured ones: the arm64 host still offers amd64.
    expect(result.outputs.fleetSmokeTests.value.arm).toMatch(/^worker \S+ platforms linux\/arm64,(\S+,)?linux\/amd64[,;]/);
    console.log(`fleet smoke tests: ${JSON.stringify(result.outputs.fleetSmokeTests.value)}`);
    // The node list is secret: it carries the client key.
    expect(result.outputs.fleetBuildxNodes.secret).toBe(true);
  });

  it("creates the builder with exactly the lines `npm run buildx` prints, one node per host", () => {
    const cli = run("npm", ["run", "-s", "buildx", "--", "--stack", "bx-fleet", "--tls-dir", tlsDir, "--name", BUILDER], { cwd: repoRoot, env: testStack.env });
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(0);
    printed = cli.stdout;
    console.log(`npm run buildx printed:\n${printed}`);
    const lines = printed.trim().split("\n").filter((line) => !line.startsWith("#"));
    expect(lines).toEqual([
      `docker buildx create --name ${BUILDER} --driver remote --node amd --platform linux/amd64 --driver-opt cacert=${tlsDir}/amd/ca.pem,cert=${tlsDir}/amd/cert.pem,key=${tlsDir}/amd/key.pem,servername=bk-bx-amd tcp://127.0.0.1:18431`,
      `docker buildx create --append --name ${BUILDER} --driver remote --node arm --platform linux/arm64 --driver-opt cacert=${tlsDir}/arm/ca.pem,cert=${tlsDir}/arm/cert.pem,key=${tlsDir}/arm/key.pem,servername=bk-bx-arm tcp://127.0.0.1:18432`,
    ]);
    // Pasted into a shell, as a user does (comments included).
    const created = run("sh", ["-e", "-c", printed], { env: { ...process.env, DOCKER_CONFIG: dockerConfig } });
    expect(created.stderr).not.toMatch(/error/i);
    expect(created.code).toBe(0);

    // Both nodes answer over mTLS, each with the platform it was given first.
    const inspected = buildx(["inspect", BUILDER, "--bootstrap"]);
    console.log(`docker buildx inspect --bootstrap (nodes):\n${inspected.stdout.split("\n").filter((l) => /^(Name|Endpoint|Status|Platforms):/.test(l)).join("\n")}`);
    expect(inspected.code).toBe(0);
    const nodes = inspected.stdout.split(/\n(?=Name:\s)/).slice(1);
    expect(nodes.map((node) => /^Name:\s+(\S+)/.exec(node)![1])).toEqual(["amd", "arm"]);
    for (const [index, host] of HOSTS.entries()) {
      expect(nodes[index]).toMatch(new RegExp(`Endpoint:\\s+tcp://127\\.0\\.0\\.1:${host.port}\\n`));
      expect(nodes[index]).toMatch(/Status:\s+running\n/);
      expect(nodes[index]).toMatch(new RegExp(`Platforms:\\s+${host.platforms[0]}\\*`));
    }
  });

  it("builds linux/amd64 and linux/arm64 at once, each on the node of that platform", () => {
    const context = writeBuildContext("FROM scratch\nCOPY hello /hello\n", { hello: "hello from the fleet\n" });
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "bk-bx-out-"));
    const nonce = `bx-${Date.now()}`;
    try {
      const started = Date.now();
      const built = buildx([
        "build", "--builder", BUILDER, "--platform", "linux/amd64,linux/arm64", "--build-arg", `BX_RUN=${nonce}`,
        "--progress=plain", "--output", `type=local,dest=${out}`, context,
      ]);
      const seconds = (Date.now() - started) / 1000;
      expect(built.stderr).not.toMatch(/^ERROR/m);
      expect(built.code).toBe(0);
      console.log(`multi-platform build through the fleet builder: ${seconds.toFixed(1)} s`);
      // One result per platform.
      for (const dir of ["linux_amd64", "linux_arm64"]) expect(fs.readFileSync(path.join(out, dir, "hello"), "utf8")).toBe("hello from the fleet\n");

      // Each daemon's own history: the build of this run reached it for its own platform only.
      const reached = Object.fromEntries(
        HOSTS.map((host) => [host.name, daemonHistory(host).filter((r) => r.FrontendAttrs?.["build-arg:BX_RUN"] === nonce)]),
      );
      expect(Object.fromEntries(Object.entries(reached).map(([name, records]) => [name, records.map((r) => r.FrontendAttrs!.platform)]))).toEqual({
        amd: ["linux/amd64"],
        arm: ["linux/arm64"],
      });
      // And buildx files each of those records under the node it sent the platform to.
      const listed = buildx(["history", "ls", "--builder", BUILDER, "--format", "json"]);
      expect(listed.code).toBe(0);
      const refs = listed.stdout.split("\n").filter((l) => l.trim().startsWith("{")).map((l) => (JSON.parse(l) as { ref: string }).ref);
      for (const host of HOSTS) expect(refs).toContain(`${BUILDER}/${host.name}/${reached[host.name][0].Ref}`);
    } finally {
      for (const dir of [context, out]) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs no foreign binary: the arm64 host has no emulator, so a RUN of an arm64 executable fails there", () => {
    const context = writeBuildContext('FROM scratch\nCOPY hello-arm64 /hello\nRUN ["/hello"]\n');
    fs.writeFileSync(path.join(context, "hello-arm64"), arm64Executable(), { mode: 0o755 });
    const nonce = `bx-run-${Date.now()}`;
    try {
      const built = buildx(["build", "--builder", BUILDER, "--platform", "linux/arm64", "--build-arg", `BX_RUN=${nonce}`, "--progress=plain", context]);
      expect(built.code).not.toBe(0);
      expect(built.stderr).toContain("exec /hello: exec format error");
      console.log(`RUN of an arm64 binary on the arm64-advertising host: ${built.stderr.split("\n").filter((l) => /exec format error|ERROR/.test(l)).join(" | ")}`);
      const records = daemonHistory(HOSTS[1]).filter((r) => r.FrontendAttrs?.["build-arg:BX_RUN"] === nonce);
      expect(records.map((r) => [r.FrontendAttrs!.platform, Boolean(r.error)])).toEqual([["linux/arm64", true]]);
      expect(daemonHistory(HOSTS[0]).filter((r) => r.FrontendAttrs?.["build-arg:BX_RUN"] === nonce)).toEqual([]);
    } finally {
      fs.rmSync(context, { recursive: true, force: true });
    }
  });

  it("removes the builder, and destroys the fleet on both engines", async () => {
    expect(buildx(["rm", BUILDER]).code).toBe(0);
    expect(buildx(["ls"]).stdout).not.toContain(BUILDER);
    await testStack.stack.destroy(quiet);
    for (const host of HOSTS) {
      expect(run("docker", ["inspect", containerOf(host)], { env: engineEnv(host) }).code).not.toBe(0);
      expect(run("docker", ["volume", "inspect", `${containerOf(host)}-cache`], { env: engineEnv(host) }).code).not.toBe(0);
    }
  });
});
