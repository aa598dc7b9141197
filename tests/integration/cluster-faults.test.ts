/**
 * Faults of a cluster stack on the local cluster, each failing `up` at once
 * (not at a provider timeout or the roll's bound) with what is wrong and the
 * fix, and leaving nothing a second `up` with the config corrected cannot
 * finish (it proves the replica, and a preview after it is clean):
 * - an image the node cannot pull: the replica named, the reason, the fix;
 * - a StorageClass that does not exist: the replica, its cache volume, the
 *   class, the cluster's classes and the fix; the corrected up replaces the
 *   StatefulSet and is not held back by the claim of the missing class, even
 *   where a protected cache keeps its claims;
 * - an API server that does not answer (nothing listens; or it takes the
 *   connection and never answers, bounded): preview and up refused before
 *   anything is declared, naming buildkit:kubeconfig, the context, the server
 *   and the fix (a context the file lacks: the contexts it has); `npm run drift` of a deployed stack whose config names such a
 *   cluster reports that refusal as its preview's error.
 */
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

import type { EngineEvent } from "@pulumi/pulumi/automation";

import { createTestStack, repoRoot, run, TestStack } from "./harness";

jest.setTimeout(15 * 60 * 1000);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const CURRENT = `moby/buildkit:${/^BUILDKIT_VERSION="([^"]+)"/m.exec(versions)![1]}`;
const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const kubeconfig = path.join(cache, "cluster", "kubeconfig");
const env = { ...process.env, KUBECONFIG: kubeconfig };
const suffix = process.pid.toString(36);
const quiet = { onOutput: () => undefined };
const stacks: TestStack[] = [];
const namespaces: string[] = [];

/**
 * A stack of the repo's Pulumi.cluster.yaml in a namespace of its own, one replica of a quarter CPU: other test
 * files deploy to the same 2-core node at the same time.
 */
async function faultStack(id: string, config: Record<string, string>): Promise<{ testStack: TestStack; namespace: string }> {
  const namespace = `bkc-it-faults-${id}-${suffix}`;
  namespaces.push(namespace);
  const testStack = await createTestStack(`bkc-it-faults-${id}`, { namespace, replicas: "1", cpus: "0.25", ...config }, { fromStackFile: "cluster" });
  stacks.push(testStack);
  return { testStack, namespace };
}

/** Destroys a stack once its test is done, so the next one has the node's CPU. */
async function tearDown(testStack: TestStack, namespace: string): Promise<void> {
  stacks.splice(stacks.indexOf(testStack), 1);
  try {
    await testStack.cleanup();
  } finally {
    run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
  }
}

/** `up`'s failure (the Automation API's error: the CLI's output), with how long it took and what it said logged. */
async function failedUp(testStack: TestStack, what: string): Promise<string> {
  const started = Date.now();
  let failure = "";
  try {
    await testStack.stack.up(quiet);
  } catch (error) {
    failure = String(error);
  }
  const said = [...new Set(failure.split("\n").filter((line) => /^\s*(the replicas|replica |fix:|- buildkit:)/.test(line)))];
  console.info(`up with ${what} failed after ${((Date.now() - started) / 1000).toFixed(1)} s:\n${said.join("\n")}`);
  return failure;
}

/** The corrected up proves the replica, and a preview after it plans nothing. Returns what it did to the StatefulSet. */
async function upFinishes(testStack: TestStack): Promise<string | undefined> {
  let statefulSet: string | undefined;
  const onEvent = (event: EngineEvent) => {
    const step = event.resourcePreEvent?.metadata;
    if (step?.type === "kubernetes:apps/v1:StatefulSet" && !statefulSet?.includes("replace")) statefulSet = step.op;
  };
  const result = await testStack.stack.up({ ...quiet, onEvent });
  expect(result.outputs.fleetSmokeTests.value["buildkitd-0"]).toMatch(/test build ok/);
  const again = await testStack.stack.preview(quiet);
  expect(Object.entries(again.changeSummary ?? {}).filter(([op, n]) => op !== "same" && n)).toEqual([]);
  return statefulSet;
}

beforeAll(() => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env });
  if (ready.code !== 0) throw new Error(`the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root), then re-run.`);
});
afterAll(async () => {
  try {
    for (const testStack of stacks) await testStack.cleanup();
  } finally {
    for (const namespace of namespaces) run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env });
  }
});

it("an image the node cannot pull fails up at once, naming the replica and the fix; the corrected up finishes", async () => {
  // A version tag no registry here has: the mirror answers 404 and Docker Hub is unreachable.
  const { testStack, namespace } = await faultStack("image", { image: "moby/buildkit:v0.0.1" });
  const failure = await failedUp(testStack, "an image the node cannot pull");
  // "waiting does not help": the wait stopped at what the node reported, not at its bound or a provider timeout.
  expect(failure).toContain(`the replicas of StatefulSet buildkitd in namespace ${namespace} are not all Ready (and waiting does not help):`);
  expect(failure).toMatch(/replica buildkitd-0: (ErrImagePull|ImagePullBackOff)/);
  expect(failure).toContain(`fix: see kubectl -n ${namespace} describe pod <replica>; correct the stack config (the image, memory, cpus) and run up again`);
  // The proof's program is not printed before its message (it travels in the environment: `eval "$PROOF"`).
  expect(failure).not.toContain("rollout status");

  await testStack.stack.setConfig("buildkit:image", { value: CURRENT });
  await upFinishes(testStack);
  await tearDown(testStack, namespace);
});

describe.each([
  ["an unprotected cache", "false"],
  ["a protected cache (its claims are kept when the StatefulSet is replaced)", "true"],
])("a StorageClass that does not exist, with %s", (_, cacheProtected) => {
  it("fails up at once, naming the replica, its cache volume, the class and the classes there are; the corrected up finishes", async () => {
    const missing = `bkc-it-faults-none-${suffix}`;
    const { testStack, namespace } = await faultStack(cacheProtected === "true" ? "storage-kept" : "storage", { storageClass: missing, cacheProtected });
    const failure = await failedUp(testStack, `StorageClass ${missing}, which does not exist`);
    expect(failure).toContain(`the replicas of StatefulSet buildkitd in namespace ${namespace} are not all Ready (and waiting does not help):`);
    expect(failure).toContain(`replica buildkitd-0: its cache volume cache-buildkitd-0 is Pending: StorageClass "${missing}" does not exist`);
    // The local cluster's own class is the default (docs/local-cluster.md); other tests may add classes beside it.
    expect(failure).toMatch(/fix: set buildkit:storageClass to a StorageClass of this cluster \([^)]*local-path \(default\)[^)]*\), or remove it for the cluster's default one; then run up again/);

    // The class is in the StatefulSet's volumeClaimTemplates: the corrected up replaces it, and the claim made for the
    // missing class (deleted with the old StatefulSet, or kept with a protected cache) must not hold the new replica back.
    await testStack.stack.removeConfig("buildkit:storageClass");
    expect(await upFinishes(testStack)).toMatch(/replace/);
    const claim = run("kubectl", ["-n", namespace, "get", "pvc", "cache-buildkitd-0", "-o", "jsonpath={.status.phase} {.spec.storageClassName}"], { env });
    expect(claim.stdout).toBe("Bound local-path");
    await tearDown(testStack, namespace);
  });
});

describe("an API server that does not answer", () => {
  let testStack: TestStack;
  let namespace: string;
  let dir: string;
  let context: string;
  /** The local cluster's kubeconfig, its server moved to `server`. */
  const kubeconfigTo = (server: string): string => {
    const file = path.join(dir, `kubeconfig-${server.replace(/\W+/g, "-")}`);
    fs.writeFileSync(file, fs.readFileSync(kubeconfig, "utf8").replace(/server: \S+/g, `server: ${server}`));
    return file;
  };
  const refusal = (file: string, server: string) => `buildkit:kubeconfig is "${file}" (context "${context}") but its API server ${server} does not answer (`;
  const fix =
    "Start that cluster (the local one: sudo bash scripts/provision/cluster.sh up), or set buildkit:kubeconfig (and buildkit:kubeContext) to a kubeconfig whose API server answers";

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bkc-it-faults-kubeconfig-"));
    context = run("kubectl", ["--kubeconfig", kubeconfig, "config", "current-context"]).stdout.trim();
    // Nothing listens on port 1.
    ({ testStack, namespace } = await faultStack("api", { kubeconfig: kubeconfigTo("https://127.0.0.1:1") }));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("fails preview and up at once, naming the key, the context, the server and the fix, and declares nothing", async () => {
    const dead = kubeconfigTo("https://127.0.0.1:1");
    const started = Date.now();
    let previewFailure = "";
    await testStack.stack.preview(quiet).catch((error: unknown) => (previewFailure = String(error)));
    console.info(`preview against an API server that does not answer failed after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(previewFailure).toContain("Refused before anything was declared on the cluster (1 problem):");
    expect(previewFailure).toContain(`${refusal(dead, "https://127.0.0.1:1")}kubectl get --raw /readyz: The connection to the server 127.0.0.1:1 was refused`);
    expect(previewFailure).toContain(fix);

    const failure = await failedUp(testStack, "an API server that does not answer");
    expect(failure).toContain(refusal(dead, "https://127.0.0.1:1"));
    expect(failure).toContain(fix);
    // Nothing declared: nothing in the stack's state but the stack itself, no namespace on the (real) cluster.
    const deployment = (await testStack.stack.exportStack()).deployment as { resources?: { type: string }[] };
    expect((deployment.resources ?? []).map((r) => r.type).filter((type) => type !== "pulumi:pulumi:Stack")).toEqual([]);
    expect(run("kubectl", ["get", "namespace", namespace], { env }).stderr).toContain("NotFound");
  });

  it("refuses a context the kubeconfig does not have, listing those it has", async () => {
    await testStack.stack.setConfig("buildkit:kubeContext", { value: "bkc-it-faults-nowhere" });
    let failure = "";
    await testStack.stack.preview(quiet).catch((error: unknown) => (failure = String(error)));
    await testStack.stack.removeConfig("buildkit:kubeContext");
    expect(failure).toContain(
      `buildkit:kubeContext is "bkc-it-faults-nowhere" but kubeconfig ${kubeconfigTo("https://127.0.0.1:1")} has no such context (its contexts: ${context}); ` +
        "expected the name of a context in the kubeconfig file, or remove buildkit:kubeContext for the file's current context",
    );
  });

  it("refuses a server that takes the connection and never answers once the bound has passed, with the bound", async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const server = `https://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
      const file = kubeconfigTo(server);
      await testStack.stack.setConfig("buildkit:kubeconfig", { value: file });
      const started = Date.now();
      let failure = "";
      await testStack.stack.preview(quiet).catch((error: unknown) => (failure = String(error)));
      console.info(`preview against an API server that never answers failed after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      expect(failure).toContain(`${refusal(file, server)}no answer within 10 s; kubectl get --raw /readyz: `);
      expect(failure).toContain(fix);
    } finally {
      silent.close();
    }
  });

  it("leaves nothing the corrected up cannot finish", async () => {
    await testStack.stack.setConfig("buildkit:kubeconfig", { value: kubeconfig });
    await upFinishes(testStack);
  });

  it("npm run drift of the deployed stack whose config now names a cluster that does not answer reports the refusal, not drift", async () => {
    const dead = kubeconfigTo("https://127.0.0.1:1");
    await testStack.stack.setConfig("buildkit:kubeconfig", { value: dead });
    const drift = run("bash", ["scripts/run-ts.sh", "cli/drift.ts", "--stack", testStack.stack.name, "--cwd", testStack.workDir], { env: testStack.env, cwd: repoRoot });
    expect(drift.code).toBe(1);
    expect(drift.stdout + drift.stderr).toContain(`preview --refresh of stack ${testStack.stack.name} failed: Refused before anything was declared on the cluster (1 problem):`);
    expect(drift.stdout + drift.stderr).toContain(refusal(dead, "https://127.0.0.1:1"));
    await testStack.stack.setConfig("buildkit:kubeconfig", { value: kubeconfig });
    await tearDown(testStack, namespace);
  });
});
