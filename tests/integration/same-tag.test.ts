/**
 * Same-tag updates, as a user meets them: a stack follows its image's tag at
 * the engine's registry mirror (buildkit:tagRegistry); someone pushes a rebuilt
 * image under the same tag; `npm run drift` and `pulumi preview` show the
 * container's replacement, `up` runs the new image on the same cache and proves
 * it with the smoke test, and the next preview is clean. A registry that does
 * not answer fails preview and up with a message naming the key, and nothing
 * deployed is touched.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import type { EngineEvent, OpType } from "@pulumi/pulumi/automation";

import { CommandResult, createTestStack, DEPLOY_TIMEOUT_MS, mustRun, repoRoot, run, TestStack } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const ID = "st-same-tag";
/** Our own tag in the shared mirror: no other test reads or writes it. */
const TAG = "st-same-tag";
const MIRROR = process.env.BUILDKIT_STACK_MIRROR ?? "127.0.0.1:5000";
/** A port on which nothing listens: the registry that does not answer. */
const DEAD_REGISTRY = "http://127.0.0.1:5999";
const LABEL = "org.buildkit-stack.test.same-tag";
const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const CURRENT = /BUILDKIT_VERSION="([^"]+)"/.exec(versions)![1];
const quiet = { onOutput: () => undefined };

/** Builds `moby/buildkit:<CURRENT>` with one label changed and pushes it to the mirror under our tag; returns the registry's digest for the tag. */
async function pushRebuilt(build: string): Promise<string> {
  const context = fs.mkdtempSync(path.join(os.tmpdir(), "st-same-tag-"));
  try {
    fs.writeFileSync(path.join(context, "Dockerfile"), `FROM moby/buildkit:${CURRENT}\nLABEL ${LABEL}=${build}\n`);
    mustRun("docker", ["build", "-q", "-t", `${MIRROR}/moby/buildkit:${TAG}`, context]);
    mustRun("docker", ["push", "-q", `${MIRROR}/moby/buildkit:${TAG}`]);
  } finally {
    fs.rmSync(context, { recursive: true, force: true });
  }
  return registryDigest();
}

/** What the mirror answers for our tag, asked as the docker provider asks (a HEAD with the manifest types it accepts). */
async function registryDigest(): Promise<string> {
  const response = await fetch(`http://${MIRROR}/v2/moby/buildkit/manifests/${TAG}`, {
    method: "HEAD",
    headers: {
      Accept: [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
      ].join(", "),
    },
  });
  const digest = response.headers.get("docker-content-digest");
  if (!response.ok || !digest) throw new Error(`the mirror answered ${response.status} for moby/buildkit:${TAG}, without a digest`);
  return digest;
}

/** The op preview (or up) plans for each of the stack's resources, by the suffix of its name. */
function opsRecorder() {
  const ops: Record<string, string> = {};
  const ran = new Set<string>();
  const suffixOf = (urn: string) => /-(image|daemon|smoke-test|cache|network|tag-registry)$/.exec(urn)?.[1];
  const onEvent = (event: EngineEvent) => {
    const step = event.resourcePreEvent?.metadata;
    const suffix = step && suffixOf(step.urn);
    if (step && suffix && step.op !== "same") {
      const op: OpType | "replace" = ["create-replacement", "delete-replaced", "replace"].includes(step.op) ? "replace" : step.op;
      if (ops[suffix] !== "replace") ops[suffix] = op;
    }
    const done = event.resOutputsEvent?.metadata;
    const doneSuffix = done && suffixOf(done.urn);
    if (done && doneSuffix && ["create", "update", "replace", "create-replacement"].includes(done.op)) ran.add(doneSuffix);
  };
  return { ops, ran, onEvent };
}

function changes(summary: Partial<Record<OpType, number>> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(summary ?? {}).filter(([op, count]) => op !== "same" && (count ?? 0) > 0)) as Record<string, number>;
}

/** `npm run drift` as a user types it, against the test stack's program copy and backend. */
function drift(target: TestStack): CommandResult {
  return run("bash", ["scripts/run-ts.sh", "cli/drift.ts", "--stack", ID, "--cwd", target.workDir], { env: target.env, cwd: repoRoot });
}

describe("a new image behind the same tag", () => {
  let testStack: TestStack;
  let first: string;
  let second: string;
  const containerImage = () => mustRun("docker", ["inspect", "-f", "{{.Config.Image}}", testStack.containerName]).trim();
  const containerLabel = () => mustRun("docker", ["inspect", "-f", `{{index .Config.Labels "${LABEL}"}}`, testStack.containerName]).trim();
  const containerId = () => mustRun("docker", ["inspect", "-f", "{{.Id}}", testStack.containerName]).trim();
  let marker: string;

  beforeAll(async () => {
    first = await pushRebuilt(`first-${Date.now()}`);
    testStack = await createTestStack(ID, { image: `moby/buildkit:${TAG}`, tagRegistry: `http://${MIRROR}` });
  });
  afterAll(async () => {
    await testStack?.cleanup();
    // Local copies of our builds (kept locally by the stack, as every image is); the mirror keeps the tag.
    for (const digest of [first, second].filter(Boolean)) run("docker", ["rmi", `moby/buildkit@${digest}`]);
    run("docker", ["rmi", `${MIRROR}/moby/buildkit:${TAG}`]);
  });

  it("deploys the image the tag points at now, by digest", async () => {
    await testStack.stack.up(quiet);
    expect(containerImage()).toBe(`moby/buildkit@${first}`);
    expect(containerLabel()).toMatch(/^first-/);
    marker = `same-tag marker ${Date.now()}`;
    mustRun("docker", ["exec", testStack.containerName, "sh", "-c", `echo "${marker}" > /var/lib/buildkit/same-tag-marker`]);
    const again = await testStack.stack.preview(quiet);
    expect(changes(again.changeSummary)).toEqual({});
    const clean = drift(testStack);
    expect({ code: clean.code, stdout: clean.stdout }).toEqual({ code: 0, stdout: expect.stringMatching(/^no drift/m) });
  });

  it("shows a rebuilt image pushed under the same tag as a pending container replacement, in drift and preview", async () => {
    second = await pushRebuilt(`second-${Date.now()}`);
    expect(second).not.toBe(first);

    const found = drift(testStack);
    console.log(`npm run drift after the push (exit ${found.code}):\n${found.stdout}${found.stderr}`);
    expect(found.code).toBe(2);
    expect(found.stdout).toContain(`moby/buildkit@${second}`);
    expect(found.stdout).toMatch(/^ {2}container .*will be replaced/m);

    const previewed = opsRecorder();
    await testStack.stack.preview({ ...quiet, onEvent: previewed.onEvent });
    expect(previewed.ops).toEqual({ image: "replace", daemon: "replace", "smoke-test": "replace" });
  });

  it("rolls to it on up, keeping the cache, and the smoke test proves the new daemon", async () => {
    const before = containerId();
    const applied = opsRecorder();
    await testStack.stack.up({ ...quiet, onEvent: applied.onEvent });
    expect(applied.ops).toEqual({ image: "replace", daemon: "replace", "smoke-test": "replace" });
    expect(applied.ran.has("smoke-test")).toBe(true);
    expect(containerId()).not.toBe(before);
    expect(containerImage()).toBe(`moby/buildkit@${second}`);
    expect(containerLabel()).toMatch(/^second-/);
    expect(mustRun("docker", ["exec", testStack.containerName, "cat", "/var/lib/buildkit/same-tag-marker"]).trim()).toBe(marker);
    expect(String((await testStack.stack.outputs()).imageRepoDigest?.value)).toContain(second);

    const again = await testStack.stack.preview(quiet);
    expect(changes(again.changeSummary)).toEqual({});
    expect(drift(testStack).code).toBe(0);
  });

  it("fails preview and up with a message naming buildkit:tagRegistry when the registry does not answer, and touches nothing", async () => {
    const before = containerId();
    await testStack.stack.setConfig("buildkit:tagRegistry", { value: DEAD_REGISTRY });
    try {
      let previewLog = "";
      await expect(testStack.stack.preview({ onOutput: (line) => (previewLog += line) })).rejects.toThrow();
      let upLog = "";
      await expect(testStack.stack.up({ onOutput: (line) => (upLog += line) })).rejects.toThrow();
      const said = upLog.split("\n").filter((line) => /error/i.test(line)).join("\n");
      console.log(`up with a registry that does not answer said:\n${said}`);
      for (const log of [previewLog, upLog]) {
        expect(log).toContain(`buildkit:tagRegistry is "${DEAD_REGISTRY}"`);
        expect(log).toContain(`127.0.0.1:5999/moby/buildkit:${TAG}`);
        expect(log).toMatch(/connection refused/);
      }
      expect(containerId()).toBe(before);
      expect(mustRun("docker", ["inspect", "-f", "{{.State.Health.Status}}", testStack.containerName]).trim()).toBe("healthy");
    } finally {
      await testStack.stack.setConfig("buildkit:tagRegistry", { value: `http://${MIRROR}` });
    }
    // The failed up recorded the look-up provider's new address, nothing else: back, only it changes.
    const restored = opsRecorder();
    await testStack.stack.preview({ ...quiet, onEvent: restored.onEvent });
    expect(restored.ops).toEqual({ "tag-registry": "update" });
    await testStack.stack.up(quiet);
    expect(containerId()).toBe(before);
    const again = await testStack.stack.preview(quiet);
    expect(changes(again.changeSummary)).toEqual({});
  });
});
