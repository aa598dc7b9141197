/**
 * The cluster preflight (components/kubernetes/cluster-preflight.ts): each
 * refusal names the key, the context, the server and the fix, against fake
 * answers; and what it asks a kubectl (here a fake one on PATH) and how it
 * reads the answers. The real cluster's answers are exercised in
 * tests/integration/cluster-faults.test.ts.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { API_SERVER_TIMEOUT_SECONDS, ClusterAsker, clusterPreflightProblems, clusterRefusal, kubectlAsker } from "../../../components/kubernetes/cluster-preflight";

const KUBECONFIG = "/home/u/.kube/config";
/** A root stack's StatefulSet: what the preflight checks besides the kubeconfig. */
const STACK = { kubeconfig: KUBECONFIG, namespace: "buildkit-ci", name: "buildkitd", rootless: false };

function asker(answers: Partial<ClusterAsker> = {}): ClusterAsker {
  return {
    target: answers.target ?? (async () => ({ context: "ci", server: "https://10.0.0.1:6443" })),
    contexts: answers.contexts ?? (async () => ["ci", "prod"]),
    readiness: answers.readiness ?? (async () => ({ ok: true })),
    daemonMode: answers.daemonMode ?? (async () => undefined),
  };
}

describe("the cluster preflight", () => {
  it("accepts a cluster whose API server answers", async () => {
    expect(await clusterPreflightProblems(STACK, asker())).toEqual([]);
  });

  it("refuses a cluster whose API server does not answer, naming the key, the context, the server and the fix", async () => {
    const dead = asker({ readiness: async () => ({ ok: false, reason: "kubectl get --raw /readyz: connection refused" }) });
    expect(await clusterPreflightProblems({ ...STACK, kubeContext: "ci" }, dead)).toEqual([
      'buildkit:kubeconfig is "/home/u/.kube/config" (context "ci") but its API server https://10.0.0.1:6443 does not answer ' +
        "(kubectl get --raw /readyz: connection refused). Start that cluster (the local one: sudo bash scripts/provision/cluster.sh up), " +
        "or set buildkit:kubeconfig (and buildkit:kubeContext) to a kubeconfig whose API server answers",
    ]);
  });

  it("refuses a context the kubeconfig does not have, listing those it has, without asking any server", async () => {
    const readiness = jest.fn(async () => ({ ok: true as const }));
    const missing = asker({ target: async () => ({ problem: "error: cannot locate context staging" }), readiness });
    expect(await clusterPreflightProblems({ ...STACK, kubeContext: "staging" }, missing)).toEqual([
      'buildkit:kubeContext is "staging" but kubeconfig /home/u/.kube/config has no such context (its contexts: ci, prod); ' +
        "expected the name of a context in the kubeconfig file, or remove buildkit:kubeContext for the file's current context",
    ]);
    expect(readiness).not.toHaveBeenCalled();
  });

  it("refuses a kubeconfig that names no current context when none is set", async () => {
    const none = asker({ target: async () => ({ problem: "error: current-context must exist in order to minify" }) });
    expect(await clusterPreflightProblems(STACK, none)).toEqual([
      'buildkit:kubeconfig is "/home/u/.kube/config" but kubectl cannot tell which cluster it names ' +
        "(error: current-context must exist in order to minify; its contexts: ci, prod); " +
        "expected a kubeconfig file with a current context, or set buildkit:kubeContext to one of its contexts",
    ]);
  });

  it("says so when kubectl cannot be run at all", async () => {
    const noKubectl = asker({
      target: async () => {
        throw new Error("kubectl is not on PATH");
      },
    });
    expect(await clusterPreflightProblems(STACK, noKubectl)).toEqual([
      'the cluster of buildkit:kubeconfig is "/home/u/.kube/config" could not be asked: kubectl is not on PATH; put kubectl on PATH (on a machine of ours: source scripts/env.sh)',
    ]);
  });
});

describe("a root ↔ rootless switch of the StatefulSet that runs", () => {
  const running = (mode: "privileged" | "rootless" | undefined) => asker({ daemonMode: async (namespace, name) => (namespace === "buildkit-ci" && name === "buildkitd" ? mode : undefined) });

  it("is refused while the StatefulSet of that name runs the other mode, either way, saying how to switch on new caches", async () => {
    expect(await clusterPreflightProblems({ ...STACK, rootless: true }, running("privileged"))).toEqual([
      "buildkit:rootless is true but StatefulSet buildkitd in namespace buildkit-ci runs privileged root daemons, and switching it keeps each replica's " +
        "cache volume: a root daemon's state is not usable by a rootless one, nor the other way round. Switch on new caches instead: set buildkit:name " +
        "to another name with it (a new StatefulSet whose replicas get new, empty volumes; the old one is deleted, its volumes too unless " +
        "buildkit:cacheProtected), or keep buildkit:rootless false",
    ]);
    const [back] = await clusterPreflightProblems(STACK, running("rootless"));
    expect(back).toMatch(/^buildkit:rootless is false but StatefulSet buildkitd in namespace buildkit-ci runs rootless daemons \(uid 1000\), /);
    expect(back).toMatch(/or keep buildkit:rootless true$/);
  });

  it("lets the same mode through, a new StatefulSet (another name, or none yet), and a cluster that does not say", async () => {
    expect(await clusterPreflightProblems(STACK, running("privileged"))).toEqual([]);
    expect(await clusterPreflightProblems({ ...STACK, rootless: true }, running("rootless"))).toEqual([]);
    expect(await clusterPreflightProblems({ ...STACK, rootless: true, name: "buildkitd-rootless" }, running("privileged"))).toEqual([]);
    expect(await clusterPreflightProblems({ ...STACK, rootless: true }, running(undefined))).toEqual([]);
  });
});

describe("the program's error", () => {
  it("says nothing was declared, then lists each problem", () => {
    expect(clusterRefusal(["a", "b"])).toBe("Refused before anything was declared on the cluster (2 problems):\n  - a\n  - b");
    expect(clusterRefusal(["a"])).toBe("Refused before anything was declared on the cluster (1 problem):\n  - a");
  });
});

describe("what the preflight asks kubectl", () => {
  let dir: string;
  let savedPath: string | undefined;
  /** A fake kubectl on PATH: logs its arguments, answers `config view` with `view`, `get --raw` with `raw` (exit code, text). */
  function fakeKubectl(view: string, raw: { code: number; text: string }, contexts = "ci\nprod\n", statefulSet = ""): void {
    fs.writeFileSync(
      path.join(dir, "kubectl"),
      [
        "#!/bin/sh",
        `printf "%s\\n" "$*" >> ${dir}/calls`,
        'case "$*" in',
        `  *"config view"*) printf '%s' '${view}';;`,
        `  *get-contexts*) printf '${contexts}';;`,
        `  *"get --raw"*) echo '${raw.text}' >&2; exit ${raw.code};;`,
        `  *"get statefulset"*) printf '%s' '${statefulSet}';;`,
        "esac",
      ].join("\n") + "\n",
      { mode: 0o755 },
    );
  }
  const calls = () => fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n");

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "bkc-preflight-"));
    savedPath = process.env.PATH;
    process.env.PATH = `${dir}:${process.env.PATH}`;
  });
  afterEach(() => {
    process.env.PATH = savedPath;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reads the context and server from the file, then asks /readyz with the stack's kubeconfig and context, bounded", async () => {
    fakeKubectl("ci\thttps://10.0.0.1:6443", { code: 0, text: "" });
    const ask = kubectlAsker({ kubeconfig: KUBECONFIG, kubeContext: "ci" });
    expect(await ask.target()).toEqual({ context: "ci", server: "https://10.0.0.1:6443" });
    expect(await ask.readiness()).toEqual({ ok: true });
    expect(calls()).toEqual([
      `--kubeconfig ${KUBECONFIG} --context ci config view --minify -o jsonpath={.current-context}{"\\t"}{.clusters[0].cluster.server}`,
      `--kubeconfig ${KUBECONFIG} --context ci get --raw /readyz --request-timeout=${API_SERVER_TIMEOUT_SECONDS}s`,
    ]);
  });

  it("gives kubectl's own words when the server does not answer, and the file's contexts", async () => {
    fakeKubectl("ci\thttps://127.0.0.1:1", { code: 1, text: "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?" });
    const ask = kubectlAsker({ kubeconfig: KUBECONFIG });
    expect(await ask.readiness()).toEqual({
      ok: false,
      reason: "kubectl get --raw /readyz: The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?",
    });
    expect(await ask.contexts()).toEqual(["ci", "prod"]);
    expect(calls()[0]).not.toContain("--context");
  });

  it("says how long it waited for a server that took the connection and never answered", async () => {
    for (const said of ["Unable to connect to the server: context deadline exceeded", "Unable to connect to the server: net/http: TLS handshake timeout"]) {
      fakeKubectl("ci\thttps://10.0.0.1:6443", { code: 1, text: said });
      expect(await kubectlAsker({ kubeconfig: KUBECONFIG }).readiness()).toEqual({
        ok: false,
        reason: `no answer within ${API_SERVER_TIMEOUT_SECONDS} s; kubectl get --raw /readyz: ${said}`,
      });
    }
  });

  it("reads the running StatefulSet's mode from its daemon container, in the stack's namespace", async () => {
    const ask = () => kubectlAsker({ kubeconfig: KUBECONFIG, kubeContext: "ci" }).daemonMode("buildkit-ci", "buildkitd");
    fakeKubectl("", { code: 0, text: "" }, "", "buildkitd\ttrue");
    expect(await ask()).toBe("rootless");
    fakeKubectl("", { code: 0, text: "" }, "", "buildkitd\t");
    expect(await ask()).toBe("privileged");
    fakeKubectl("", { code: 0, text: "" }, "", "");
    expect(await ask()).toBeUndefined();
    expect(calls().at(-1)).toBe(
      `--kubeconfig ${KUBECONFIG} --context ci -n buildkit-ci get statefulset buildkitd --ignore-not-found -o ` +
        'jsonpath={.metadata.name}{"\\t"}{.spec.template.spec.containers[?(@.name=="buildkitd")].securityContext.runAsNonRoot}',
    );
  });

  it("reports what kubectl said when the file names no context it can use", async () => {
    fakeKubectl("", { code: 0, text: "" });
    expect(await kubectlAsker({ kubeconfig: KUBECONFIG }).target()).toEqual({ problem: "kubectl config view printed no context and server" });
  });

  it("rejects when there is no kubectl to run", async () => {
    process.env.PATH = dir;
    await expect(kubectlAsker({ kubeconfig: KUBECONFIG }).target()).rejects.toThrow("kubectl is not on PATH");
  });
});
