/**
 * The engine is real: the provisioned Pulumi CLI and providers are the pinned
 * versions, and the BuildKit images run real OCI workers that build through
 * the local registry mirror, privileged and rootless.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { buildctlBuild, containerMirror, mustRun, repoRoot, requireEngine, run, waitFor, writeBuildContext } from "./harness";

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { dependencies: Record<string, string> };
const buildkitVersion = /BUILDKIT_VERSION="([^"]+)"/.exec(fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8"))![1];

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

describe("the BuildKit images in the mirror", () => {
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
