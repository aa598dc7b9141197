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

describe("scripts/provision/buildx.sh: docker buildx from the Go module proxy, built once per version", () => {
  const made: string[] = [];
  const temp = (prefix: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    made.push(dir);
    return dir;
  };
  afterAll(() => {
    for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
  });
  const versions = fs.readFileSync(path.join(root, "scripts/versions.sh"), "utf8");
  const BUILDX_VERSION = /^BUILDX_VERSION="([^"]+)"/m.exec(versions)![1];

  /** A `go` that records its arguments and GOBIN, and "builds" buildx there. */
  function fakeGo(): { dir: string; calls: () => string[] } {
    const dir = temp("fake-go-");
    fs.writeFileSync(path.join(dir, "go"), `#!/bin/sh\necho "GOBIN=$GOBIN go $*" >> "${dir}/calls"\nprintf '#!/bin/sh\\necho fake buildx\\n' > "$GOBIN/buildx"\nchmod +x "$GOBIN/buildx"\n`, { mode: 0o755 });
    return { dir, calls: () => (fs.existsSync(path.join(dir, "calls")) ? fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n") : []) };
  }
  const step = (cache: string, go: { dir: string }) =>
    bash("bash scripts/provision/buildx.sh", [], { BUILDKIT_STACK_CACHE: cache, PATH: `${go.dir}:${process.env.PATH}` });

  it("builds the pinned version with go install into the cache, then never again", () => {
    const cache = temp("buildx-cache-");
    const go = fakeGo();
    const out = path.join(cache, "tools", `buildx-${BUILDX_VERSION}`);
    const first = step(cache, go);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(`[buildx] building buildx ${BUILDX_VERSION}`);
    expect(go.calls()).toEqual([expect.stringMatching(new RegExp(`^GOBIN=${out} go install -trimpath .*github.com/docker/buildx/cmd/buildx@${BUILDX_VERSION.replace(/\./g, "\\.")}$`))]);
    expect(fs.statSync(path.join(out, "docker-buildx")).mode & 0o111).not.toBe(0);
    const second = step(cache, go);
    expect(second.stderr).toContain(`[buildx] buildx ${BUILDX_VERSION} is built, up to date`);
    expect(go.calls()).toHaveLength(1);
  });

  it("reuses the build the bench's step made before (no go call) and leaves that one in place", () => {
    const cache = temp("buildx-cache-");
    const legacy = path.join(cache, "peers", `buildx-${BUILDX_VERSION}`);
    fs.mkdirSync(legacy, { recursive: true });
    fs.writeFileSync(path.join(legacy, "docker-buildx"), "#!/bin/sh\n", { mode: 0o755 });
    fs.writeFileSync(path.join(legacy, ".stamp"), BUILDX_VERSION);
    const go = fakeGo();
    const result = step(cache, go);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`[buildx] buildx ${BUILDX_VERSION} was built by the bench's step; reused from ${legacy}`);
    expect(go.calls()).toEqual([]);
    expect(fs.readFileSync(path.join(cache, "tools", `buildx-${BUILDX_VERSION}`, "docker-buildx"), "utf8")).toBe("#!/bin/sh\n");
    expect(fs.existsSync(path.join(legacy, "docker-buildx"))).toBe(true);
    expect(step(cache, go).stderr).toContain("is built, up to date");
  });

  it("rebuilds when the cached build is of another version", () => {
    const cache = temp("buildx-cache-");
    const out = path.join(cache, "tools", `buildx-${BUILDX_VERSION}`);
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, "docker-buildx"), "#!/bin/sh\n", { mode: 0o755 });
    fs.writeFileSync(path.join(out, ".stamp"), "v0.0.1");
    const go = fakeGo();
    expect(step(cache, go).stderr).toContain(`[buildx] built buildx ${BUILDX_VERSION}`);
    expect(go.calls()).toHaveLength(1);
  });

  it("is a step of regular provisioning, and the bench's peers step goes through it", () => {
    // provision.sh and peers.sh run in a copy of the scripts whose steps only record that they ran.
    const copy = temp("provision-steps-");
    fs.mkdirSync(path.join(copy, "scripts", "provision"), { recursive: true });
    for (const file of ["provision.sh", "lib.sh", "versions.sh"]) fs.copyFileSync(path.join(root, "scripts", file), path.join(copy, "scripts", file));
    fs.copyFileSync(path.join(root, "scripts/provision/peers.sh"), path.join(copy, "scripts/provision/peers.sh"));
    // package.json for versions.sh; node_modules as installed, so provision.sh does not run npm ci.
    fs.copyFileSync(path.join(root, "package.json"), path.join(copy, "package.json"));
    fs.symlinkSync(path.join(root, "node_modules"), path.join(copy, "node_modules"));
    const ran = path.join(copy, "ran");
    for (const name of fs.readdirSync(path.join(root, "scripts/provision")).filter((f) => f.endsWith(".sh") && f !== "peers.sh")) {
      fs.writeFileSync(path.join(copy, "scripts/provision", name), `echo ${name} >> "${ran}"\n`);
    }
    const cache = temp("provision-steps-cache-");
    const provision = bash(`bash "${copy}/scripts/provision.sh"`, [], { BUILDKIT_STACK_CACHE: cache });
    expect(provision.code).toBe(0);
    expect(fs.readFileSync(ran, "utf8").trim().split("\n")).toContain("buildx.sh");
    fs.rmSync(ran);
    // peers.sh then goes on to the Terraform provider, which a failing `go` stops at once: only that it
    // asked buildx.sh first matters here.
    const noGo = temp("no-go-");
    fs.writeFileSync(path.join(noGo, "go"), "#!/bin/sh\nexit 1\n", { mode: 0o755 });
    const peers = bash(`bash "${copy}/scripts/provision/peers.sh"`, [], { BUILDKIT_STACK_CACHE: cache, PATH: `${noGo}:${process.env.PATH}` });
    expect(peers.stderr).toContain("[peers] ERROR: go mod download");
    expect(fs.readFileSync(ran, "utf8").trim().split("\n")[0]).toBe("buildx.sh");
    expect(fs.readlinkSync(path.join(cache, "peers/docker-config/cli-plugins/docker-buildx"))).toBe(path.join(cache, "tools", `buildx-${BUILDX_VERSION}`, "docker-buildx"));
  });
});

describe("what each command provisions", () => {
  /** provision.sh run in a copy of the scripts whose steps only record that they ran, and with which selection. */
  function stepsRun(profile: string[]): string[] {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), "provision-plan-"));
    try {
      fs.mkdirSync(path.join(copy, "scripts", "provision"), { recursive: true });
      for (const file of ["provision.sh", "lib.sh", "versions.sh"]) fs.copyFileSync(path.join(root, "scripts", file), path.join(copy, "scripts", file));
      fs.copyFileSync(path.join(root, "package.json"), path.join(copy, "package.json"));
      fs.symlinkSync(path.join(root, "node_modules"), path.join(copy, "node_modules"));
      const ran = path.join(copy, "ran");
      for (const name of fs.readdirSync(path.join(root, "scripts/provision")).filter((f) => f.endsWith(".sh"))) {
        fs.writeFileSync(path.join(copy, "scripts/provision", name), `echo "${name} \${BUILDKIT_STACK_ENGINES:-} \${BUILDKIT_STACK_IMAGES:-}" >> "${ran}"\n`);
      }
      const result = bash(`bash "${copy}/scripts/provision.sh" "$@"`, profile, { BUILDKIT_STACK_CACHE: path.join(copy, "cache") });
      expect(result.code).toBe(0);
      return fs.readFileSync(ran, "utf8").trim().split("\n").map((line) => line.trim());
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  }

  it("npm run up: the dev stack's engine (Docker 29), its images, the mirror and Pulumi, nothing for the tests", () => {
    expect(stepsRun(["up"])).toEqual(["engine.sh", "engine-bridges.sh", "registry.sh", "images.sh  dev", "pulumi.sh", "engines.sh 29"]);
    expect(fs.readFileSync(path.join(root, "scripts/up.sh"), "utf8")).toMatch(/^bash "\$BUILDKIT_STACK_ROOT\/scripts\/provision.sh" "\$profile"$/m);
  });

  it("npm test: every engine and image, the linters, buildx and the local cluster", () => {
    expect(stepsRun([])).toEqual(["engine.sh", "engine-bridges.sh", "registry.sh", "images.sh  all", "pulumi.sh", "engines.sh 29,28", "tools.sh", "buildx.sh", "cluster.sh"]);
  });

  it("npm run up picks the profile from the stack file: the local cluster's kubeconfig needs the cluster, anything else the dev engine", () => {
    const profileOf = (file: string) => bash('source scripts/up.sh && provision_profile "$1"', [file]).stdout.trim();
    expect(profileOf("Pulumi.cluster.yaml")).toBe("cluster");
    expect(profileOf("Pulumi.dev.yaml")).toBe("up");
    expect(profileOf("Pulumi.prod.yaml")).toBe("up");
    const own = path.join(os.tmpdir(), `Pulumi.own-cluster-${process.pid}.yaml`);
    fs.writeFileSync(own, "config:\n  buildkit:kubeconfig: /home/me/.kube/config\n");
    try {
      expect(profileOf(own)).toBe("up");
    } finally {
      fs.rmSync(own);
    }
  });

  it("npm run up -- cluster: the dev stack's needs, then the local cluster and its provider", () => {
    expect(stepsRun(["cluster"])).toEqual(["engine.sh", "engine-bridges.sh", "registry.sh", "images.sh  dev", "pulumi.sh", "engines.sh 29", "cluster.sh"]);
  });

  it("refuses a profile it does not know, before any step", () => {
    const result = bash('source scripts/provision.sh && provision_plan "$@"', ["everything"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("unknown profile 'everything': expected up (the dev stack), cluster (the cluster stack) or nothing (everything)");
  });
});

describe("install_debian_packages: what a fresh machine lacks, from Debian, once", () => {
  /** Fake dpkg-query (knows INSTALLED) and apt-get (logs its calls; install fails until `update` ran when STALE). */
  function fakeApt(installed: string[], stale: boolean): { dir: string; calls: () => string[] } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fake-apt-"));
    const calls = path.join(dir, "calls");
    fs.writeFileSync(
      path.join(dir, "dpkg-query"),
      `#!/bin/sh\nfor p in ${installed.join(" ")}; do [ "$p" = "$4" ] && { printf 'install ok installed'; exit 0; }; done\nexit 1\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(
      path.join(dir, "apt-get"),
      [
        "#!/bin/sh",
        `echo "apt-get $*" >> "${calls}"`,
        `case "$*" in *update*) touch "${dir}/updated"; exit 0 ;; esac`,
        stale ? `[ -f "${dir}/updated" ] || exit 100` : "",
        "exit 0",
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    return { dir, calls: () => (fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").trim().split("\n") : []) };
  }

  function install(apt: { dir: string }, ...packages: string[]) {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), "apt-cache-"));
    try {
      return bash('STEP=t; source scripts/lib.sh && install_debian_packages "$@"', packages, {
        PATH: `${apt.dir}:${process.env.PATH}`,
        BUILDKIT_STACK_CACHE: cache,
      });
    } finally {
      fs.rmSync(cache, { recursive: true, force: true });
    }
  }

  it("installs only the missing packages, in one apt-get call, and says which", () => {
    const apt = fakeApt(["pkg-config"], false);
    try {
      const result = install(apt, "pkg-config", "libseccomp-dev");
      expect(result.code).toBe(0);
      expect(result.stderr).toContain("installing Debian's libseccomp-dev");
      expect(apt.calls()).toEqual(["apt-get install -y -qq libseccomp-dev"]);
    } finally {
      fs.rmSync(apt.dir, { recursive: true, force: true });
    }
  });

  it("does nothing when everything is installed", () => {
    const apt = fakeApt(["pkg-config", "libseccomp-dev"], false);
    try {
      expect(install(apt, "pkg-config", "libseccomp-dev").code).toBe(0);
      expect(apt.calls()).toEqual([]);
    } finally {
      fs.rmSync(apt.dir, { recursive: true, force: true });
    }
  });

  it("fetches the package lists once when a fresh machine has none, then installs", () => {
    const apt = fakeApt([], true);
    try {
      const result = install(apt, "libseccomp-dev");
      expect(result.code).toBe(0);
      expect(apt.calls()).toEqual(["apt-get install -y -qq libseccomp-dev", "apt-get update -qq", "apt-get install -y -qq libseccomp-dev"]);
    } finally {
      fs.rmSync(apt.dir, { recursive: true, force: true });
    }
  });

  it("runc's build step installs its cgo dependencies before it compiles", () => {
    // engine-builds.sh on a machine without them: a go that records `go install` and answers its version,
    // and nothing built yet. Only the order of the first calls matters; later steps fail on the fake go.
    const apt = fakeApt([], false);
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), "engine-builds-cache-"));
    fs.writeFileSync(
      path.join(apt.dir, "go"),
      `#!/bin/sh
case "$1 $2" in "env GOVERSION") echo go1.26.6 ;; install*) echo "go $*" >> "${apt.dir}/calls" ;; *) exit 1 ;; esac\n`,
      { mode: 0o755 },
    );
    // The release Docker 29 is stamped as, remembered as a warm machine has it: no module download.
    const versions = fs.readFileSync(path.join(root, "scripts/versions.sh"), "utf8");
    const docker29Module = /^DOCKER29_MODULE_VERSION="([^"]+)"/m.exec(versions)![1];
    fs.mkdirSync(path.join(cache, "engines"));
    fs.writeFileSync(path.join(cache, "engines", `docker29-release-${docker29Module}`), "29.8.0\n");
    try {
      bash("bash scripts/provision/engine-builds.sh", [], { PATH: `${apt.dir}:${process.env.PATH}`, BUILDKIT_STACK_CACHE: cache });
      const calls = apt.calls();
      expect(calls[0]).toBe("apt-get install -y -qq pkg-config libseccomp-dev");
      expect(calls[1]).toMatch(/^go install .*-tags seccomp .*github\.com\/opencontainers\/runc@/);
    } finally {
      fs.rmSync(apt.dir, { recursive: true, force: true });
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });
});
