/**
 * The registry mirror as provisioning left it on this machine (127.0.0.1:5000,
 * the engines' Docker Hub mirror): containers only read it. On every engine a
 * container pulls an image through host.docker.internal but its push is
 * refused (405), and so is a push from a RUN step of a real build through a
 * deployed stack (issue 18: `wget --post-data=` from a build step got
 * `202 Accepted`, so a build could replace the moby/buildkit the next `up`
 * rolls out). This machine still pushes, on 127.0.0.1.
 * tests/integration/provisioning.test.ts runs the provisioning step itself on
 * a registry of its own; this file checks the one every stack here uses.
 */
import * as fs from "fs";
import * as path from "path";

import {
  buildctlBuild,
  containerMirror,
  createTestStack,
  DEPLOY_TIMEOUT_MS,
  mustRun,
  repoRoot,
  requireEngine,
  run,
  TestStack,
  writeBuildContext,
} from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const RUN_DIR = /^ENGINES_RUN_DIR="([^"]+)"/m.exec(versions)![1];
const HOST_MIRROR = containerMirror.replace("host.docker.internal", "127.0.0.1");
const PORT = containerMirror.split(":")[1];
/** A push's first request: open a blob upload in a repository of this test's own name. */
const UPLOAD_PATH = "/v2/bkt-mirror/probe/blobs/uploads/";
const MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json";

/** This machine's engines (scripts/env.sh, BUILDKIT_STACK_ENGINE): each has a bridge of its own, so a gateway of its own. */
const ENGINES = [
  { name: "29", host: `unix://${RUN_DIR}/docker-29.sock` },
  { name: "28", host: `unix://${RUN_DIR}/docker-28.sock` },
  { name: "20.10", host: "unix:///var/run/docker.sock" },
];

/**
 * A shell script for busybox: what a pull does (the manifest by tag, then a
 * layer by digest, its content hashed), then a push's first request, each
 * answered with the server's status line (`wget -S`; a refused request exits
 * non-zero, so each is allowed to fail and only its status line is kept).
 */
function probeScript(base: string): string {
  // wget's report goes to a file first: grep -m 1 on a pipe would exit at the status line and SIGPIPE wget before
  // it wrote the body. wget -S indents the server's headers: the status line is kept without its indent.
  const status = (args: string) => `{ wget -S ${args} >/tmp/wget.log 2>&1 || true; }; grep -m 1 "HTTP/" /tmp/wget.log | sed "s/^ *//"`;
  return [
    `echo "manifest: $(${status(`-O /tmp/manifest --header 'Accept: ${MANIFEST_V2}' ${base}/v2/library/busybox/manifests/latest`)})"`,
    `layer=$(grep -o 'sha256:[0-9a-f]*' /tmp/manifest | tail -n 1)`,
    `echo "layer: $layer $(${status(`-O /tmp/layer ${base}/v2/library/busybox/blobs/$layer`)}) sha256:$(sha256sum /tmp/layer | cut -d' ' -f1)"`,
    `echo "push: $(${status(`-O /dev/null --post-data= ${base}${UPLOAD_PATH}`)})"`,
  ].join("; ");
}

/** Checks the probe's output: the pull got the blob it asked for, the push was refused. */
function expectReadOnly(output: string): void {
  expect(output).toMatch(/^manifest: HTTP\/1\.1 200 OK$/m);
  const layer = /^layer: (sha256:[0-9a-f]{64}) HTTP\/1\.1 200 OK (sha256:[0-9a-f]{64})$/m.exec(output);
  expect(layer).not.toBeNull();
  // The blob's content hashes to the digest it was asked for: a real pull, not an error page.
  expect(layer![2]).toBe(layer![1]);
  expect(output).toMatch(/^push: HTTP\/1\.1 405 Method Not Allowed$/m);
}

beforeAll(() => requireEngine());

describe.each(ENGINES)("a container on Docker $name", (engine) => {
  const env = { ...process.env, DOCKER_HOST: engine.host };

  it("pulls from the mirror through host.docker.internal, and its push is refused (405)", () => {
    const answers = run("docker", ["version", "--format", "{{.Server.Version}}"], { env });
    if (answers.code !== 0) throw new Error(`Docker ${engine.name} does not answer at ${engine.host} (${answers.stderr.trim()}). Run \`bash scripts/provision.sh\`.`);
    const output = mustRun("docker", ["run", "--rm", "--add-host", "host.docker.internal:host-gateway", "busybox", "sh", "-c", probeScript(`http://${containerMirror}`)], { env });
    console.info(`Docker ${answers.stdout.trim()} (${engine.host}):\n${output}`);
    expectReadOnly(output);
  });
});

describe("a RUN step of a build through a deployed stack", () => {
  let testStack: TestStack;
  let buildkitHost: string;

  beforeAll(async () => {
    testStack = await createTestStack("bkt-mirror");
    const result = await testStack.stack.up({ onOutput: () => undefined });
    buildkitHost = result.outputs.buildkitHost.value;
  });
  afterAll(async () => testStack?.cleanup());

  it("pulls from the mirror at the daemon's host.docker.internal, and its push is refused (405)", () => {
    // What the daemon's container resolves host.docker.internal to (buildkit:extraHosts): a build step uses the address.
    const hosts = mustRun("docker", ["exec", testStack.containerName, "cat", "/etc/hosts"]);
    const gateway = /^(\S+)\s+host\.docker\.internal$/m.exec(hosts)?.[1];
    expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const context = writeBuildContext(["FROM busybox", `RUN ${probeScript(`http://${gateway}:${PORT}`)}`].join("\n"));
    try {
      // --no-cache: the step must run now, against the mirror as it is.
      const build = buildctlBuild(buildkitHost, context, ["--no-cache"]);
      if (build.code !== 0) throw new Error(`the build failed (${build.code}):\n${build.stderr}`);
      const lines = build.stderr.split("\n").map((line) => line.replace(/^#\d+ \d+\.\d+ /, ""));
      console.info(lines.filter((line) => /^(manifest|layer|push):/.test(line)).join("\n"));
      expectReadOnly(lines.join("\n"));
    } finally {
      fs.rmSync(context, { recursive: true, force: true });
    }
  });
});

describe("this machine", () => {
  it("still pushes to the mirror on 127.0.0.1 (the upload is opened, then cancelled)", () => {
    const opened = mustRun("curl", ["-s", "-i", "-X", "POST", `http://${HOST_MIRROR}${UPLOAD_PATH}`]);
    expect(opened).toMatch(/^HTTP\/1\.1 202 Accepted/);
    const location = /^location:\s*(\S+)/im.exec(opened)![1];
    const url = location.startsWith("http") ? location : `http://${HOST_MIRROR}${location}`;
    // Nothing is left behind: the open upload is cancelled.
    expect(mustRun("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", url])).toBe("204");
  });
});
