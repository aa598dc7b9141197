/**
 * Provisioning is safe on a machine that is not ours. The registry mirror answers on
 * loopback and on the addresses containers reach it at, nowhere else, and
 * refuses DELETE, while a container on a user network still pulls through
 * host.docker.internal. Containers only read it: every push from them is
 * refused (405), while pushes from this machine (127.0.0.1) work, and a socat
 * forwarder an older provision.sh left on a gateway, which passed pushes
 * through, is replaced on the next run. scripts/provision/registry.sh is run for real, on a
 * port and cache of this test's own (the shared mirror is left alone), and
 * what it started is stopped by process id afterwards. images.sh untags only
 * the local copies it made, never a user's image under the same name.
 * docker buildx is provisioned at the pinned version, as a CLI plugin the
 * docker CLI runs, and its step is a no-op once built.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { buildxDockerConfig, buildxPlugin, containerMirror, mustRun, repoRoot, requireEngine, run, waitFor } from "./harness";

jest.setTimeout(5 * 60 * 1000);

const PORT = "5101";
/** An extra container-facing address, as engine provisioning would add one (127.0.0.2 is on lo: harmless). */
const EXTRA_GATEWAY = "127.0.0.2";
const NETWORK = "d-ci-registry-test";
/** A push's first request: open a blob upload (the issue's `wget --post-data=` got 202 Accepted through the socat forwarder). */
const UPLOAD_PATH = "/v2/bkt-trust/probe/blobs/uploads/";
const REPOSITORY = "d-ci-test/busybox";

let cache: string;
let env: NodeJS.ProcessEnv;

/** HTTP status of a request to the registry at `address`, or "refused" when nothing listens there. */
function status(address: string, method = "GET", urlPath = "/v2/", headers: string[] = []): string {
  const result = run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "-X", method, ...headers.flatMap((h) => ["-H", h]), `http://${address}:${PORT}${urlPath}`]);
  return result.code === 7 ? "refused" : result.stdout;
}

/**
 * Whether our registry answers at `address`: its /v2/ carries distribution's
 * API header. Refused, timed out, or another server (this sandbox answers some
 * unbound addresses with its own 404) all mean it does not.
 */
function registryAnswers(address: string): boolean {
  const result = run("curl", ["-s", "-i", "--max-time", "5", `http://${address}:${PORT}/v2/`]);
  return result.code === 0 && /^docker-distribution-api-version: registry\/2\.0/im.test(result.stdout);
}

function hostAddresses(): string[] {
  return mustRun("ip", ["-4", "-o", "addr"]).split("\n").filter(Boolean).map((line) => line.split(/\s+/)[3].split("/")[0]);
}

beforeAll(() => {
  requireEngine();
  cache = fs.mkdtempSync(path.join(os.tmpdir(), "d-ci-registry-"));
  env = { ...process.env, BUILDKIT_STACK_CACHE: cache, BUILDKIT_STACK_REGISTRY_PORT: PORT, BUILDKIT_STACK_CONTAINER_GATEWAYS: EXTRA_GATEWAY };
  if (registryAnswers("127.0.0.1") || status("127.0.0.1") !== "refused") throw new Error(`port ${PORT} is taken on 127.0.0.1; this test needs it free`);
  mustRun("bash", [path.join(repoRoot, "scripts/provision/registry.sh")], { env });
});

afterAll(() => {
  run("docker", ["network", "rm", NETWORK]);
  run("docker", ["rmi", `127.0.0.1:${PORT}/${REPOSITORY}:latest`]);
  if (!cache) return;
  const registryDir = path.join(cache, "registry");
  for (const pidFile of fs.existsSync(registryDir) ? fs.readdirSync(registryDir).filter((f) => f.endsWith(".pid")) : []) {
    const pid = Number(fs.readFileSync(path.join(registryDir, pidFile), "utf8"));
    try {
      process.kill(pid);
    } catch {
      // already gone
    }
  }
  fs.rmSync(cache, { recursive: true, force: true });
});

const gateways = (): string[] =>
  mustRun("bash", ["-c", `source "${repoRoot}/scripts/lib.sh" && container_gateways`], { env }).split("\n").filter(Boolean);

describe("the registry mirror's reach", () => {
  it("lists docker's default bridge gateway and the addresses engine provisioning adds as container-facing", () => {
    const bridge = mustRun("docker", ["network", "inspect", "bridge", "-f", '{{index .Options "com.docker.network.bridge.name"}}']).trim();
    const address = run("ip", ["-4", "-o", "addr", "show", "dev", bridge]);
    if (address.code !== 0) {
      throw new Error(`The engine's default bridge ${bridge} is missing on this host (${address.stderr.trim()}): containers cannot reach host.docker.internal. Restart that engine to recreate it.`);
    }
    // Besides these two, the gateways of the Docker 28/29 engines' bridges (scripts/versions.sh), each once.
    const listed = gateways();
    expect(listed).toEqual(expect.arrayContaining([address.stdout.split(/\s+/)[3].split("/")[0], EXTRA_GATEWAY]));
    expect(new Set(listed).size).toBe(listed.length);
  });

  it("answers on loopback and on every container-facing address", () => {
    expect(status("127.0.0.1")).toBe("200");
    for (const gateway of gateways()) expect({ gateway, answers: registryAnswers(gateway) }).toEqual({ gateway, answers: true });
  });

  it("does not answer on any other address of this machine (eth0 and every other bridge)", () => {
    const others = hostAddresses().filter((a) => !a.startsWith("127.") && !gateways().includes(a));
    expect(others.length).toBeGreaterThan(0);
    for (const address of others) expect({ address, answers: registryAnswers(address) }).toEqual({ address, answers: false });
  });

  it("survives a re-run unchanged (idempotent: nothing restarted, no second reader)", () => {
    const registryDir = path.join(cache, "registry");
    const pids = fs.readdirSync(registryDir).filter((f) => f.endsWith(".pid")).sort();
    const pidValues = pids.map((f) => fs.readFileSync(path.join(registryDir, f), "utf8"));
    const output = run("bash", [path.join(repoRoot, "scripts/provision/registry.sh")], { env });
    expect(output.code).toBe(0);
    expect(output.stderr).toContain(`registry already answers on 127.0.0.1:${PORT}`);
    for (const gateway of gateways()) expect(output.stderr).toContain(`containers read it at ${gateway}:${PORT} (read-only)`);
    expect(output.stderr).not.toContain("starting");
    expect(output.stderr).not.toContain("replacing");
    expect(fs.readdirSync(registryDir).filter((f) => f.endsWith(".pid")).sort()).toEqual(pids);
    expect(pids.map((f) => fs.readFileSync(path.join(registryDir, f), "utf8"))).toEqual(pidValues);
  });
});

describe("pushes to the registry mirror", () => {
  const registryDir = () => path.join(cache, "registry");
  /**
   * Whether `pid` still runs. A killed process whose parent is gone stays a zombie until this machine's init reaps
   * it, which not every init does promptly (this VM's does not): a zombie has stopped running.
   */
  const processAlive = (pid: number) => {
    try {
      return fs.readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0] !== "Z";
    } catch {
      return false;
    }
  };
  /** A process's command line as /proc shows it (the resolved interpreter, not the name typed). */
  const commandLine = (pid: string) => fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");

  it("are accepted from this machine on 127.0.0.1 (provisioning and the tests push there)", () => {
    expect(status("127.0.0.1", "POST", UPLOAD_PATH)).toBe("202");
  });

  it("are refused (405) on every address containers reach it at, which still serve reads", () => {
    for (const gateway of gateways()) {
      expect({ gateway, push: status(gateway, "POST", UPLOAD_PATH), read: status(gateway) }).toEqual({ gateway, push: "405", read: "200" });
    }
  });

  it("are refused (405) from a container, through host.docker.internal", () => {
    run("docker", ["network", "rm", NETWORK]);
    mustRun("docker", ["network", "create", NETWORK]);
    // busybox wget prints the server's status line with -S; a refused POST exits non-zero, hence `|| true`.
    const script = `wget -S -O /dev/null --post-data= "http://host.docker.internal:${PORT}${UPLOAD_PATH}" 2>&1 | grep -m 1 "HTTP/" || true`;
    const output = mustRun("docker", [
      "run", "--rm", "--network", NETWORK, "--add-host", "host.docker.internal:host-gateway",
      `${containerMirror.replace("host.docker.internal", "127.0.0.1")}/library/busybox:latest`, "sh", "-c", script,
    ]);
    expect(output.trim()).toBe("HTTP/1.1 405 Method Not Allowed");
  });

  /** Stops the reader on EXTRA_GATEWAY (by its pid file) and waits until nothing listens there. */
  async function stopReader(): Promise<void> {
    process.kill(Number(fs.readFileSync(path.join(registryDir(), `readonly-${EXTRA_GATEWAY}.pid`), "utf8")));
    await waitFor(`the reader on ${EXTRA_GATEWAY}:${PORT} to stop`, 10_000, () => status(EXTRA_GATEWAY) === "refused");
  }

  it("through a socat forwarder an older provision.sh started: replaced by a reader on the next run", async () => {
    // As provisioning before issue 18 left a gateway: socat to the writable registry, with its pid file.
    await stopReader();
    const socat = mustRun("bash", [
      "-c",
      `setsid nohup socat TCP-LISTEN:${PORT},bind=${EXTRA_GATEWAY},fork,reuseaddr TCP:127.0.0.1:${PORT} >/dev/null 2>&1 </dev/null & echo $!`,
    ]).trim();
    fs.writeFileSync(path.join(registryDir(), `forward-${EXTRA_GATEWAY}.pid`), socat);
    await waitFor(`the socat forwarder on ${EXTRA_GATEWAY}:${PORT}`, 10_000, () => registryAnswers(EXTRA_GATEWAY));
    // The hole issue 18 found: a push through the forwarder is accepted.
    expect(status(EXTRA_GATEWAY, "POST", UPLOAD_PATH)).toBe("202");

    const output = run("bash", [path.join(repoRoot, "scripts/provision/registry.sh")], { env });
    expect(output.code).toBe(0);
    expect(output.stderr).toContain(`replacing the socat forwarder on ${EXTRA_GATEWAY}:${PORT} (pid ${socat}, started by an older provision.sh): it let containers push`);
    expect(processAlive(Number(socat))).toBe(false);
    expect(fs.existsSync(path.join(registryDir(), `forward-${EXTRA_GATEWAY}.pid`))).toBe(false);
    expect({ push: status(EXTRA_GATEWAY, "POST", UPLOAD_PATH), read: status(EXTRA_GATEWAY) }).toEqual({ push: "405", read: "200" });
  });

  it("are never opened to something else listening on a gateway: provisioning stops, naming it", async () => {
    await stopReader();
    const other = mustRun("bash", ["-c", `setsid nohup python3 -m http.server ${PORT} --bind ${EXTRA_GATEWAY} >/dev/null 2>&1 </dev/null & echo $!`]).trim();
    try {
      await waitFor(`python's http.server on ${EXTRA_GATEWAY}:${PORT}`, 10_000, () => status(EXTRA_GATEWAY) !== "refused");
      const held = commandLine(other);
      expect(held).toMatch(new RegExp(`python3 -m http.server ${PORT} --bind ${EXTRA_GATEWAY.replace(/\./g, "\\.")}$`));
      const output = run("bash", [path.join(repoRoot, "scripts/provision/registry.sh")], { env });
      expect(output.code).toBe(1);
      expect(output.stderr).toContain(`[registry] ERROR: ${EXTRA_GATEWAY}:${PORT}, where containers reach the mirror, is held by pid ${other} (${held}), not by provisioning;`);
    } finally {
      process.kill(Number(other));
    }
    await waitFor(`python's http.server on ${EXTRA_GATEWAY}:${PORT} to stop`, 10_000, () => status(EXTRA_GATEWAY) === "refused");
    // Once it is gone, the next run serves the gateway read-only again.
    mustRun("bash", [path.join(repoRoot, "scripts/provision/registry.sh")], { env });
    expect(status(EXTRA_GATEWAY, "POST", UPLOAD_PATH)).toBe("405");
  });

  it("start readers that keep none of the caller's files: a run under flock leaves the lock free", async () => {
    // Provisioning runs under `flock /tmp/buildkit-stack-engine.lock …` on a shared machine: a daemon holding
    // that descriptor would hold the engine lock for as long as it lives.
    await stopReader();
    const lock = path.join(cache, "caller.lock");
    fs.writeFileSync(lock, "");
    mustRun("flock", [lock, "bash", path.join(repoRoot, "scripts/provision/registry.sh")], { env });
    expect(status(EXTRA_GATEWAY, "POST", UPLOAD_PATH)).toBe("405");
    expect(run("flock", ["-n", lock, "true"]).code).toBe(0);
  });
});

describe("images in the registry mirror", () => {
  const manifestV2 = "Accept: application/vnd.docker.distribution.manifest.v2+json";
  let digest: string;

  beforeAll(() => {
    // The provisioned busybox, through the engine's mirror, pushed to this test's registry.
    mustRun("docker", ["pull", "-q", `${containerMirror.replace("host.docker.internal", "127.0.0.1")}/library/busybox:latest`]);
    mustRun("docker", ["tag", `${containerMirror.replace("host.docker.internal", "127.0.0.1")}/library/busybox:latest`, `127.0.0.1:${PORT}/${REPOSITORY}:latest`]);
    mustRun("docker", ["push", "-q", `127.0.0.1:${PORT}/${REPOSITORY}:latest`]);
    digest = run("curl", ["-sI", "-H", manifestV2, `http://127.0.0.1:${PORT}/v2/${REPOSITORY}/manifests/latest`]).stdout.match(/docker-content-digest:\s*(\S+)/i)![1];
  });

  it("cannot be deleted: DELETE of a manifest is refused and the image stays", () => {
    expect(status("127.0.0.1", "DELETE", `/v2/${REPOSITORY}/manifests/${digest}`)).toBe("405");
    expect(status("127.0.0.1", "GET", `/v2/${REPOSITORY}/manifests/latest`, [manifestV2])).toBe("200");
  });

  it("are pulled by a container on a user network through host.docker.internal", () => {
    run("docker", ["network", "rm", NETWORK]);
    mustRun("docker", ["network", "create", NETWORK]);
    // What a pull does: the manifest by tag, then its blobs by digest.
    const script = [
      `base=http://host.docker.internal:${PORT}/v2/${REPOSITORY}`,
      `wget -q -O /tmp/manifest --header '${manifestV2}' "$base/manifests/latest"`,
      `layer=$(grep -o 'sha256:[0-9a-f]*' /tmp/manifest | tail -n 1)`,
      `wget -q -O /tmp/layer "$base/blobs/$layer" && sha256sum /tmp/layer && echo "$layer"`,
    ].join(" && ");
    const pulled = mustRun("docker", [
      "run", "--rm", "--network", NETWORK, "--add-host", "host.docker.internal:host-gateway",
      `127.0.0.1:${PORT}/${REPOSITORY}:latest`, "sh", "-c", script,
    ]);
    const [sum, layer] = pulled.trim().split("\n");
    // The blob's content hashes to the digest it was asked for: a real pull, not an error page.
    expect(`sha256:${sum.split(/\s+/)[0]}`).toBe(layer);
  });
});

describe("images.sh and tags under Docker Hub names", () => {
  const ours = "d-ci-test/ours:1";
  const users = "d-ci-test/users:1";
  const lookalike = "d-ci-test/lookalike:1";
  const tiny = (): string => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "d-ci-image-"));
    fs.writeFileSync(path.join(dir, "hello"), "hello\n");
    return dir;
  };
  const importImage = (tag: string, changes: string[]): string => {
    const dir = tiny();
    try {
      return mustRun("sh", ["-c", `tar -C "${dir}" -c . | docker import ${changes.map((c) => `-c '${c}'`).join(" ")} - ${tag}`]).trim();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const untag = (reference: string) =>
    run("bash", ["-c", `source "${repoRoot}/scripts/provision/images.sh" && untag_if_ours "$1"`, "untag", reference], { env });
  const imageId = (reference: string) => run("docker", ["image", "inspect", "-f", "{{.Id}}", reference]).stdout.trim();

  afterAll(() => {
    for (const tag of [ours, users, lookalike]) run("docker", ["rmi", tag]);
  });

  it("untags a copy it made (carrying its label)", () => {
    importImage(ours, ["LABEL org.buildkit-stack.provisioned-by=scripts/provision/images.sh"]);
    const result = untag(ours);
    expect(result.code).toBe(0);
    expect(imageId(ours)).toBe("");
  });

  it("leaves a tag it did not make exactly as it is, and says so", () => {
    for (const [tag, changes] of [[users, []], [lookalike, ["LABEL org.buildkit-stack.provisioned-by=someone-else"]]] as const) {
      const id = importImage(tag, [...changes]);
      const result = untag(tag);
      expect(result.code).toBe(0);
      expect(imageId(tag)).toBe(id);
      expect(result.stderr).toContain(`[images] ${tag} on this engine was not made by provisioning (no org.buildkit-stack.provisioned-by label): left as is.`);
    }
  });
});

describe("docker buildx, as provisioning leaves it", () => {
  it("is github.com/docker/buildx at the version scripts/versions.sh pins, and runs as the docker CLI's plugin", () => {
    const plugin = buildxPlugin();
    // What go install built it from (the binary's own `version` string depends on link flags; the module does not).
    expect(mustRun("go", ["version", "-m", plugin.path])).toMatch(new RegExp(`^\\tmod\\tgithub\\.com/docker/buildx\\t${plugin.version.replace(/\./g, "\\.")}\\t`, "m"));
    const dockerConfig = buildxDockerConfig();
    try {
      expect(mustRun("docker", ["buildx", "version"], { env: { ...process.env, DOCKER_CONFIG: dockerConfig } })).toMatch(/^github\.com\/docker\/buildx /);
    } finally {
      fs.rmSync(dockerConfig, { recursive: true, force: true });
    }
  });

  it("is not built again by a second run of its step", () => {
    const started = Date.now();
    const again = run("bash", [path.join(repoRoot, "scripts/provision/buildx.sh")]);
    expect(again.code).toBe(0);
    expect(again.stderr.trim()).toBe(`[buildx] buildx ${buildxPlugin().version} is built, up to date`);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
