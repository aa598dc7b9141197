/**
 * A buildx builder over a cluster stack's replicas, the way a user gets one:
 * deploy the repo's Pulumi.cluster.yaml (two replicas; only the namespace is
 * the test's own) on the local cluster; eval exactly what `npm run buildx --
 * --stack … --key KEY` prints in a shell with a DOCKER_CONFIG of its own and no
 * KUBECONFIG, then build through the builder with the real buildx (its remote
 * driver dialling kube-pod://) and read each replica's own build history
 * (`buildctl debug histories` through its kube-pod:// endpoint): the build ran
 * on the key's replica only. A builder made without --key builds on its first
 * replica only, and a shell whose KUBECONFIG names no cluster cannot build
 * through it. Removes the builders and destroys the stack.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { routeKey } from "../../cli/route";
import { buildxDockerConfig, createTestStack, mustRun, repoRoot, run, TestStack, writeBuildContext } from "./harness";

jest.setTimeout(20 * 60 * 1000);

const cache = process.env.BUILDKIT_STACK_CACHE ?? path.join(os.homedir(), ".cache/buildkit-stack");
const kubeconfig = path.join(cache, "cluster", "kubeconfig");
const id = `bkc-it-buildx-${process.pid.toString(36)}`;
const namespace = id;
const KEYED = "bkc-it-buildx-keyed";
const PLAIN = "bkc-it-buildx-plain";
const quiet = { onOutput: () => undefined };

interface Replica {
  name: string;
  buildkitHost: string;
}
/** One record of a daemon's build history, as `buildctl debug histories --format json` prints it. */
interface HistoryRecord {
  Ref: string;
  FrontendAttrs?: Record<string, string>;
}

/** The replica's own record of every build it ran, asked through its kube-pod:// endpoint (not what buildx remembers). */
function replicaHistory(replica: Replica): HistoryRecord[] {
  const printed = mustRun("buildctl", ["--addr", replica.buildkitHost, "debug", "histories", "--format", "json"], {
    env: { ...process.env, KUBECONFIG: kubeconfig },
    timeoutMs: 2 * 60 * 1000,
  });
  return printed
    .split("\n")
    .filter((line) => line.trim().startsWith("{"))
    .map((line) => (JSON.parse(line) as { record: HistoryRecord }).record);
}

let testStack: TestStack;
let replicas: Replica[];
let dockerConfig: string;
let context: string;
/** The user's shell: a DOCKER_CONFIG of the test's own, and no KUBECONFIG but what the printed lines export. */
let shellEnv: NodeJS.ProcessEnv;
/** Runs `script` in that shell, as a user pastes it. */
const shell = (script: string) => run("sh", ["-e", "-c", script], { env: shellEnv, timeoutMs: 10 * 60 * 1000 });
const printedBy = (...args: string[]) => {
  const cli = run("npm", ["run", "-s", "buildx", "--", "--stack", id, ...args], { cwd: repoRoot, env: testStack.env });
  expect(cli.stderr).toBe("");
  expect(cli.code).toBe(0);
  return cli.stdout;
};
/** A build through `builder` that each replica's history can tell apart from any other. */
const buildScript = (builder: string, nonce: string) => `docker buildx build --builder ${builder} --build-arg BX_RUN=${nonce} --progress=plain ${context}`;
const ranOn = (nonce: string) =>
  Object.fromEntries(replicas.map((replica) => [replica.name, replicaHistory(replica).filter((r) => r.FrontendAttrs?.["build-arg:BX_RUN"] === nonce).length]));

beforeAll(async () => {
  const ready = run("kubectl", ["get", "--raw", "/readyz"], { env: { ...process.env, KUBECONFIG: kubeconfig } });
  if (ready.code !== 0) {
    throw new Error(`the local cluster does not answer (${ready.stderr.trim()}). Run \`bash scripts/provision/cluster.sh up\` (as root; docs/local-cluster.md), then re-run.`);
  }
  dockerConfig = buildxDockerConfig();
  shellEnv = { ...process.env, DOCKER_CONFIG: dockerConfig };
  delete shellEnv.KUBECONFIG;
  context = writeBuildContext('FROM busybox\nARG BX_RUN\nRUN echo "built $BX_RUN" > /built\n');
  testStack = await createTestStack(id, { namespace }, { fromStackFile: "cluster" });
});
afterAll(async () => {
  if (dockerConfig) for (const builder of [KEYED, PLAIN]) run("docker", ["buildx", "rm", "--force", builder], { env: { ...shellEnv, KUBECONFIG: kubeconfig } });
  try {
    await testStack?.cleanup();
  } finally {
    run("kubectl", ["delete", "namespace", namespace, "--ignore-not-found", "--wait=false"], { env: { ...process.env, KUBECONFIG: kubeconfig } });
    for (const dir of [dockerConfig, context]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe("a buildx builder over a cluster stack's replicas", () => {
  it("deploys the two replicas of Pulumi.cluster.yaml", async () => {
    const result = await testStack.stack.up(quiet);
    replicas = result.outputs.fleetEndpoints.value;
    expect(replicas.map((r) => r.name)).toEqual(["buildkitd-0", "buildkitd-1"]);
    expect(result.outputs.kubeconfig.value).toBe(kubeconfig);
  });

  it("with --key, the printed lines export the kubeconfig and make the key's replica the first node, and a build runs there only", () => {
    // A key whose replica is not the first: the order the builder gets is the ring's, not the StatefulSet's.
    const key = Array.from({ length: 100 }, (_, i) => `github.com/acme/app-${i}:.`).find((k) => routeKey(replicas, k)[0].name === "buildkitd-1")!;
    const printed = printedBy("--key", key, "--name", KEYED);
    console.log(`npm run buildx -- --stack ${id} --key ${key} --name ${KEYED} printed:\n${printed}`);
    const endpointOf = (name: string) => replicas.find((r) => r.name === name)!.buildkitHost;
    expect(printed.trim().split("\n").filter((line) => !line.startsWith("#"))).toEqual([
      `export KUBECONFIG=${kubeconfig}`,
      `docker buildx create --name ${KEYED} --driver remote --node buildkitd-1 '${endpointOf("buildkitd-1")}'`,
      `docker buildx create --append --name ${KEYED} --driver remote --node buildkitd-0 '${endpointOf("buildkitd-0")}'`,
    ]);

    // Pasted into the shell, as a user does (comments included), then both nodes asked and a build run.
    const nonce = `keyed-${Date.now()}`;
    const started = Date.now();
    const session = shell(`${printed}\ndocker buildx inspect ${KEYED} --bootstrap\n${buildScript(KEYED, nonce)}`);
    const seconds = (Date.now() - started) / 1000;
    expect(session.stderr).not.toMatch(/^ERROR/m);
    expect(session.code).toBe(0);
    // After the builder's own lines (create prints its name), inspect lists each node from "Name:".
    const nodes = session.stdout.slice(session.stdout.indexOf("\nNodes:")).split(/\n(?=Name:\s)/).slice(1);
    expect(nodes.map((node) => /^Name:\s+(\S+)/.exec(node)![1])).toEqual(["buildkitd-1", "buildkitd-0"]);
    for (const node of nodes) expect(node).toMatch(/Endpoint:\s+kube-pod:\/\/buildkitd-\d\?namespace=\S+&container=buildkitd\n[\s\S]*Status:\s+running\n/);
    // The RUN step executed, in a pod, with this build's argument.
    expect(session.stderr).toMatch(new RegExp(`^#\\d+ \\[2/2\\] RUN echo "built ${nonce}" > /built\\n#\\d+ DONE`, "m"));
    console.log(`create, inspect --bootstrap and build through the keyed cluster builder: ${seconds.toFixed(1)} s`);
    expect(ranOn(nonce)).toEqual({ "buildkitd-0": 0, "buildkitd-1": 1 });
  });

  it("without --key, every build goes to the first replica", () => {
    const printed = printedBy("--name", PLAIN);
    expect(printed).toMatch(new RegExp(`^docker buildx create --name ${PLAIN} --driver remote --node buildkitd-0 `, "m"));
    const nonces = [1, 2].map((n) => `plain-${n}-${Date.now()}`);
    const session = shell([printed, ...nonces.map((nonce) => buildScript(PLAIN, nonce))].join("\n"));
    expect(session.code).toBe(0);
    for (const nonce of nonces) expect(ranOn(nonce)).toEqual({ "buildkitd-0": 1, "buildkitd-1": 0 });
  });

  it("a shell whose KUBECONFIG names no cluster cannot build through the builder: buildx keeps no kubeconfig with a remote node", () => {
    const empty = path.join(dockerConfig, "no-cluster.kubeconfig");
    fs.writeFileSync(empty, "");
    const nonce = `no-kubeconfig-${Date.now()}`;
    const session = shell(`export KUBECONFIG=${empty}\n${buildScript(KEYED, nonce)}`);
    console.log(`build with KUBECONFIG naming no cluster: exit ${session.code}; ${session.stderr.split("\n").filter((l) => /ERROR|error/.test(l)).slice(0, 3).join(" | ")}`);
    expect(session.code).not.toBe(0);
    expect(ranOn(nonce)).toEqual({ "buildkitd-0": 0, "buildkitd-1": 0 });
  });

  it("removes the builders and destroys the stack", async () => {
    for (const builder of [KEYED, PLAIN]) expect(run("docker", ["buildx", "rm", builder], { env: shellEnv }).code).toBe(0);
    expect(run("docker", ["buildx", "ls"], { env: shellEnv }).stdout).not.toMatch(/bkc-it-buildx-/);
    await testStack.stack.destroy(quiet);
    expect(run("kubectl", ["get", "statefulset", "-n", namespace, "-o", "name"], { env: { ...process.env, KUBECONFIG: kubeconfig } }).stdout.trim()).toBe("");
  });
});
