/**
 * What only the cluster can say, asked by the program before anything is
 * declared (in preview as in up): which context and API server the kubeconfig
 * names, whether that server answers, and which mode (root or rootless) the
 * daemons of the stack's StatefulSet run in now. A cluster that does not
 * answer is refused at once, naming the key, the context, the server address
 * and the fix — not left to the provider, which previews an unreachable
 * cluster as a plan of creates without a word and fails `up` only at the first
 * object it tries to create. A root ↔ rootless switch of a StatefulSet is
 * refused too: its update keeps every replica's cache volume, and one mode's
 * state is not usable by the other (on a Docker host, cache-guard.ts). `npm run drift`'s previews run it too: drift asks the API
 * server of the deployed stack itself first, and a refusal here (the stack's
 * config now names a cluster that does not answer) is the preview's error it
 * reports.
 */
import { execFile } from "child_process";

import { DaemonMode, modeOf } from "../core/buildkitd";
import { full, show } from "../core/config-keys";
import { CLUSTER_DAEMON_CONTAINER } from "../resource-types";
import type { ClusterSettings } from "./config";

/** Bound on the API server's answer: a server that does not answer /readyz in this time is unreachable. */
export const API_SERVER_TIMEOUT_SECONDS = 10;

/** Where a kubeconfig (and context) points, read from the file alone. */
export interface ClusterTarget {
  /** The context kubectl uses: buildkit:kubeContext, else the file's current context. */
  context: string;
  /** Its cluster's API server address, as the file says it. */
  server: string;
}

/** What the preflight asks; {@link kubectlAsker} asks through a real kubectl. */
export interface ClusterAsker {
  /** The context and server kubectl would use, or what kubectl said when it cannot tell. */
  target(): Promise<ClusterTarget | { problem: string }>;
  /** Every context the kubeconfig file names. */
  contexts(): Promise<string[]>;
  /** Whether the API server answers /readyz within {@link API_SERVER_TIMEOUT_SECONDS}; why not otherwise. */
  readiness(): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** The mode the daemons of StatefulSet `name` in `namespace` run in; undefined when there is none (or it cannot be read). */
  daemonMode(namespace: string, name: string): Promise<DaemonMode | undefined>;
}

type Where = Pick<ClusterSettings, "kubeconfig" | "kubeContext">;
type Checked = Where & Pick<ClusterSettings, "namespace" | "name" | "rootless">;

const MODE_WORDS: Record<DaemonMode, string> = { privileged: "privileged root daemons", rootless: "rootless daemons (uid 1000)" };

/** The first line that says something. */
function firstLine(text: string): string {
  return text.split("\n").map((line) => line.trim()).find((line) => line !== "") ?? "";
}

/**
 * The problems of reaching the cluster `settings` name, each naming the key,
 * the context, the server and the fix; empty when its API server answers.
 */
export async function clusterPreflightProblems(settings: Checked, asker: ClusterAsker): Promise<string[]> {
  const file = `${full("kubeconfig")} is ${show(settings.kubeconfig)}`;
  let target: ClusterTarget | { problem: string };
  try {
    target = await asker.target();
  } catch (error) {
    // Not the cluster's answer: kubectl itself could not run. The proofs need it as much.
    return [`the cluster of ${file} could not be asked: ${error instanceof Error ? error.message : String(error)}; put kubectl on PATH (on a machine of ours: source scripts/env.sh)`];
  }
  if ("problem" in target) {
    const contexts: string[] = await asker.contexts().catch(() => []);
    const listed = contexts.length > 0 ? `its contexts: ${contexts.join(", ")}` : "it names no context";
    if (settings.kubeContext !== undefined && !contexts.includes(settings.kubeContext)) {
      return [
        `${full("kubeContext")} is ${show(settings.kubeContext)} but kubeconfig ${settings.kubeconfig} has no such context (${listed}); ` +
          `expected the name of a context in the kubeconfig file, or remove ${full("kubeContext")} for the file's current context`,
      ];
    }
    return [
      `${file} but kubectl cannot tell which cluster it names (${target.problem}; ${listed}); ` +
        `expected a kubeconfig file with a current context, or set ${full("kubeContext")} to one of its contexts`,
    ];
  }
  const ready = await asker.readiness();
  if (ready.ok) return modeSwitchProblems(settings, await asker.daemonMode(settings.namespace, settings.name));
  return [
    `${file} (context ${show(target.context)}) but its API server ${target.server} does not answer (${ready.reason}). ` +
      `Start that cluster (the local one: sudo bash scripts/provision/cluster.sh up), or set ${full("kubeconfig")} ` +
      `(and ${full("kubeContext")}) to a kubeconfig whose API server answers`,
  ];
}

/**
 * A root ↔ rootless switch of the StatefulSet that runs now: Kubernetes rolls
 * its pods onto the same volumes (the claims are the StatefulSet's, by name),
 * so the new daemons would get the old ones' state.
 */
function modeSwitchProblems(settings: Checked, running: DaemonMode | undefined): string[] {
  const wanted = modeOf(settings);
  if (running === undefined || running === wanted) return [];
  return [
    `${full("rootless")} is ${settings.rootless} but StatefulSet ${settings.name} in namespace ${settings.namespace} runs ${MODE_WORDS[running]}, ` +
      `and switching it keeps each replica's cache volume: a root daemon's state is not usable by a rootless one, nor the other way round. ` +
      `Switch on new caches instead: set ${full("name")} to another name with it (a new StatefulSet whose replicas get new, empty volumes; ` +
      `the old one is deleted, its volumes too unless ${full("cacheProtected")}), or keep ${full("rootless")} ${!settings.rootless}`,
  ];
}

/** The program's error for `problems`: nothing was declared. */
export function clusterRefusal(problems: string[]): string {
  return (
    `Refused before anything was declared on the cluster (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
    problems.map((p) => `  - ${p}`).join("\n")
  );
}

/** kubectl with `args`, bounded: the exit code and what it printed; rejects only when kubectl cannot be run. */
function kubectlOutput(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    execFile("kubectl", args, { encoding: "utf8", timeout: timeoutMs, env: process.env }, (error, stdout, stderr) => {
      if ((error as NodeJS.ErrnoException | null)?.code === "ENOENT") return reject(new Error("kubectl is not on PATH"));
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, stdout, stderr: stderr || (error?.message ?? ""), timedOut: error?.killed === true });
    });
  });
}

/** The preflight's questions, put to the cluster through kubectl with the stack's kubeconfig and context. */
export function kubectlAsker(settings: Where): ClusterAsker {
  const base = ["--kubeconfig", settings.kubeconfig, ...(settings.kubeContext !== undefined ? ["--context", settings.kubeContext] : [])];
  // kubectl's own bound, plus its start-up: the process is killed if it outlives both.
  const hardBoundMs = (API_SERVER_TIMEOUT_SECONDS + 10) * 1000;
  return {
    async target() {
      const view = await kubectlOutput([...base, "config", "view", "--minify", "-o", "jsonpath={.current-context}{\"\\t\"}{.clusters[0].cluster.server}"], hardBoundMs);
      const [context, server] = view.stdout.split("\t");
      if (view.code !== 0 || !context || !server) return { problem: firstLine(view.stderr) || "kubectl config view printed no context and server" };
      return { context, server };
    },
    async contexts() {
      const listed = await kubectlOutput(["--kubeconfig", settings.kubeconfig, "config", "get-contexts", "-o", "name"], hardBoundMs);
      return listed.code === 0 ? listed.stdout.split("\n").filter((line) => line.trim() !== "") : [];
    },
    async readiness() {
      const ready = await kubectlOutput([...base, "get", "--raw", "/readyz", `--request-timeout=${API_SERVER_TIMEOUT_SECONDS}s`], hardBoundMs);
      if (ready.code === 0) return { ok: true };
      if (ready.timedOut) return { ok: false, reason: `kubectl get --raw /readyz did not return within ${hardBoundMs / 1000} s` };
      const said = firstLine(ready.stderr) || `exited ${ready.code}`;
      // kubectl's words for its bound ("context deadline exceeded", "TLS handshake timeout") do not say how long it waited.
      const silent = /deadline exceeded|timeout/i.test(said) ? `no answer within ${API_SERVER_TIMEOUT_SECONDS} s; ` : "";
      return { ok: false, reason: `${silent}kubectl get --raw /readyz: ${said}` };
    },
    async daemonMode(namespace, name) {
      const nonRoot = `{.spec.template.spec.containers[?(@.name=="${CLUSTER_DAEMON_CONTAINER}")].securityContext.runAsNonRoot}`;
      const sts = await kubectlOutput([...base, "-n", namespace, "get", "statefulset", name, "--ignore-not-found", "-o", `jsonpath={.metadata.name}{"\\t"}${nonRoot}`], hardBoundMs);
      const [found, rootless] = sts.stdout.split("\t");
      if (sts.code !== 0 || !found) return undefined;
      return modeOf({ rootless: rootless === "true" });
    },
  };
}
