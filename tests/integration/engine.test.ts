/**
 * The engines are real: the provisioned Pulumi CLI and providers are the
 * pinned versions; the BuildKit images run real OCI workers that build through
 * the local registry mirror, privileged and rootless, on the default engine;
 * and each engine provisioning runs (Docker 29, 28 beside Debian's 20.10) is
 * the version it claims, with the containerd and runc it needs, isolated on
 * its own bridge, pulling through the mirror, reachable by containers at
 * host.docker.internal, and keeping (or, on 20.10, dropping) a healthcheck
 * start interval.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { buildctlBuild, containerMirror, mustRun, repoRoot, requireEngine, run, waitFor, writeBuildContext } from "./harness";

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };
const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const setting = (name: string) => new RegExp(`^${name}="([^"]+)"`, "m").exec(versions)![1];
const buildkitVersion = setting("BUILDKIT_VERSION");

/** "Docker 29.8.0 (API 1.56) at unix://…" as the engine at `host` reports itself, for titles. */
function engineTitle(host?: string): string {
  const env = host ? { ...process.env, DOCKER_HOST: host } : process.env;
  const version = run("docker", ["version", "--format", "Docker {{.Server.Version}} (API {{.Server.APIVersion}})"], { env });
  return `${version.code === 0 ? version.stdout.trim() : "no engine answering"} at ${host ?? process.env.DOCKER_HOST ?? "the default socket"}`;
}

jest.setTimeout(5 * 60 * 1000);

beforeAll(() => requireEngine());

describe("the Pulumi toolchain", () => {
  it("reports exactly the version of @pulumi/pulumi in package.json", () => {
    expect(mustRun("pulumi", ["version"]).trim()).toBe(`v${pkg.dependencies["@pulumi/pulumi"]}`);
  });

  it("has the docker and command providers installed at the pinned versions", () => {
    const plugins = JSON.parse(mustRun("pulumi", ["plugin", "ls", "--json"])) as { name: string; kind: string; version: string }[];
    const resources = plugins.filter((p) => p.kind === "resource").map((p) => `${p.name}@${p.version}`);
    expect(resources).toEqual(
      expect.arrayContaining([`docker@${pkg.dependencies["@pulumi/docker"]}`, `command@${pkg.dependencies["@pulumi/command"]}`]),
    );
  });

  it("ships the policy-pack analyzer launcher beside the CLI", () => {
    const launcher = mustRun("sh", ["-c", "command -v pulumi-analyzer-policy"]).trim();
    expect(path.dirname(launcher)).toBe(path.dirname(mustRun("sh", ["-c", "command -v pulumi"]).trim()));
  });
});

/** A daemon started the seed's way, with a config that trusts the plain-HTTP mirror. */
function startDaemon(name: string, image: string, flags: string[], daemonArgs: string[]): void {
  const configDir = fs.mkdtempSync(path.join(os.tmpdir(), "buildkitd-config-"));
  fs.chmodSync(configDir, 0o755);
  fs.writeFileSync(path.join(configDir, "buildkitd.toml"), `[registry."${containerMirror}"]\nhttp = true\ninsecure = true\n`, { mode: 0o644 });
  run("docker", ["rm", "-f", "-v", name]);
  mustRun("docker", [
    "run", "-d", "--name", name, "--add-host", "host.docker.internal:host-gateway",
    "-v", `${configDir}/buildkitd.toml:/etc/buildkit/buildkitd.toml:ro`,
    ...flags, image, "--config", "/etc/buildkit/buildkitd.toml", ...daemonArgs,
  ]);
}

async function expectBuildsWithRun(name: string): Promise<void> {
  await waitFor(`${name} to list its workers`, 60_000, () => run("buildctl", ["--addr", `docker-container://${name}`, "debug", "workers"]).code === 0 || undefined);
  const context = writeBuildContext(`FROM ${containerMirror}/library/busybox\nRUN echo "built by $(uname -s)" > /proof && cat /proof\n`);
  const build = buildctlBuild(`docker-container://${name}`, context);
  expect(build.stderr).toContain("built by Linux");
  expect(build.code).toBe(0);
}

describe(`the BuildKit images in the mirror, on ${engineTitle()}`, () => {
  const privileged = "bk-engine-privileged";
  const rootless = "bk-engine-rootless";
  afterAll(() => {
    run("docker", ["rm", "-f", "-v", privileged]);
    run("docker", ["rm", "-f", "-v", rootless]);
  });

  it("pull by their Docker Hub names through the engine's mirror", () => {
    mustRun("docker", ["pull", "-q", `moby/buildkit:${buildkitVersion}`]);
    const digests = mustRun("docker", ["image", "inspect", "-f", "{{json .RepoDigests}}", `moby/buildkit:${buildkitVersion}`]);
    expect(digests).toMatch(/moby\/buildkit@sha256:[0-9a-f]{64}/);
  });

  it("run a privileged daemon whose OCI worker builds a Dockerfile with a RUN step", async () => {
    startDaemon(privileged, `moby/buildkit:${buildkitVersion}`, ["--privileged"], []);
    await expectBuildsWithRun(privileged);
  });

  it("run a rootless daemon without --privileged that builds the same", async () => {
    startDaemon(
      rootless,
      `moby/buildkit:${buildkitVersion}-rootless`,
      ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined"],
      ["--oci-worker-no-process-sandbox"],
    );
    expect(mustRun("docker", ["inspect", "-f", "{{.HostConfig.Privileged}} {{.Config.User}}", rootless]).trim()).toBe("false 1000:1000");
    await expectBuildsWithRun(rootless);
  });
});

interface ProvisionedEngine {
  major: string;
  host: string;
  /** What `docker version` lists as the server's components (exact versions we build or Debian ships). */
  components: Record<string, RegExp>;
  /** The bridge provisioning created for it and its gateway (where containers reach the mirror). */
  bridge: string;
  gateway: string;
  /** What `docker info` reports as its image store. */
  storage: RegExp;
}

const RUN_DIR = setting("ENGINES_RUN_DIR");
const PROVISIONED: ProvisionedEngine[] = [
  {
    major: "29",
    host: `unix://${RUN_DIR}/docker-29.sock`,
    components: { containerd: new RegExp(`^${setting("CONTAINERD_VERSION").slice(1)}`), runc: new RegExp(`^${setting("RUNC_VERSION").slice(1)}`) },
    bridge: setting("DOCKER29_BRIDGE"),
    gateway: setting("DOCKER29_BRIDGE_CIDR").split("/")[0],
    // Docker 29 stores images in containerd's snapshotter by default.
    storage: /io\.containerd\.snapshotter\.v1/,
  },
  {
    major: "28",
    host: `unix://${RUN_DIR}/docker-28.sock`,
    // Debian's containerd 1.6 and runc 1.1 (plain runc: privileged works on 28 without the 20.10 wrapper).
    components: { containerd: /^1\.6\./, runc: /^1\.1\./ },
    bridge: setting("DOCKER28_BRIDGE"),
    gateway: setting("DOCKER28_BRIDGE_CIDR").split("/")[0],
    storage: /overlay2/,
  },
];

describe.each(PROVISIONED.map((engine) => [engineTitle(engine.host), engine] as const))("the provisioned engine %s", (_title, engine) => {
  const env = { ...process.env, DOCKER_HOST: engine.host };
  const docker = (...args: string[]) => mustRun("docker", args, { env });
  const probe = `e-engine-probe-${engine.major}`;
  afterAll(() => run("docker", ["rm", "-f", probe], { env }));

  beforeAll(() => {
    const answers = run("docker", ["version"], { env });
    if (answers.code !== 0) {
      throw new Error(`Docker ${engine.major} does not answer on ${engine.host} (${answers.stderr.trim()}). Run \`bash scripts/provision.sh\` (it builds and starts the engines), then re-run.`);
    }
  });

  it(`is Docker ${engine.major} with an API that keeps healthcheck start intervals (>= 1.44)`, () => {
    const [version, api] = docker("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}").trim().split(" ");
    expect(version).toMatch(new RegExp(`^${engine.major}\\.\\d+\\.\\d+$`));
    expect(api.split(".").map(Number)[1]).toBeGreaterThanOrEqual(44);
  });

  it("runs the containerd and runc it needs", () => {
    const components = JSON.parse(docker("version", "--format", "{{json .Server.Components}}")) as { Name: string; Version: string }[];
    const found = Object.fromEntries(components.map((c) => [c.Name.replace(/-.*/, ""), c.Version]));
    for (const [name, expected] of Object.entries(engine.components)) expect(found[name]).toMatch(expected);
  });

  it("is isolated: its own bridge and data root, with the image store it defaults to", () => {
    const info = JSON.parse(docker("info", "--format", "{{json .}}")) as { DockerRootDir: string; DriverStatus: string[][]; Driver: string; CgroupDriver: string };
    expect(info.DockerRootDir).toContain(`engines/data/docker${engine.major}`);
    expect(JSON.stringify([info.Driver, info.DriverStatus])).toMatch(engine.storage);
    const gateway = docker("network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}} {{index .Options \"com.docker.network.bridge.name\"}}").trim();
    expect(gateway).toBe(`${engine.gateway} ${engine.bridge}`);
  });

  it("pulls Docker Hub names through the registry mirror, and its containers reach the mirror at host.docker.internal", () => {
    docker("pull", "-q", "busybox");
    const catalog = docker("run", "--rm", "--add-host", "host.docker.internal:host-gateway", "busybox", "wget", "-qO-", `http://${containerMirror}/v2/_catalog`);
    expect(catalog).toContain("moby/buildkit");
  });

  it("lets containers on one network talk over TCP (FORWARD is DROP on this host; provisioning's chain accepts it)", () => {
    const network = `e-engine-net-${engine.major}`;
    const server = `e-engine-server-${engine.major}`;
    try {
      run("docker", ["network", "create", network], { env });
      docker("run", "-d", "--name", server, "--network", network, "busybox", "sh", "-c", "mkdir /www && echo reached > /www/index.html && httpd -f -p 8080 -h /www");
      // Bounded by busybox's timeout: without the rule the connection hangs (wget's own -T crashes Debian's static busybox).
      expect(docker("run", "--rm", "--network", network, "busybox", "timeout", "20", "wget", "-qO-", `http://${server}:8080/`).trim()).toBe("reached");
    } finally {
      run("docker", ["rm", "-f", server], { env });
      run("docker", ["network", "rm", network], { env });
    }
  });

  it("runs privileged containers with plain runc", () => {
    expect(docker("info", "--format", "{{.DefaultRuntime}}").trim()).toBe("runc");
    expect(docker("run", "--rm", "--privileged", "busybox", "sh", "-c", "grep CapEff /proc/self/status").trim()).toMatch(/^CapEff:\s+[0-9a-f]+$/);
  });

  it("keeps a healthcheck's 1 s start interval, and is healthy once the check passes", async () => {
    run("docker", ["rm", "-f", probe], { env });
    docker("run", "-d", "--name", probe, "--health-cmd", "true", "--health-interval", "30s", "--health-start-period", "30s", "--health-start-interval", "1s", "busybox", "sleep", "300");
    expect(JSON.parse(docker("inspect", "-f", "{{json .Config.Healthcheck}}", probe))).toMatchObject({ StartPeriod: 30e9, StartInterval: 1e9, Interval: 30e9 });
    // With a 30 s interval and no start interval the first probe would come after 30 s; the bound says it came from the start interval.
    await waitFor(`${probe} to turn healthy`, 20_000, () => docker("inspect", "-f", "{{.State.Health.Status}}", probe).trim() === "healthy" || undefined);
  });
});
