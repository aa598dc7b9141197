/**
 * The cluster config: a stack is a cluster stack by buildkit:kubeconfig; the
 * daemon's keys are read by the core's rules (the same messages as on a Docker
 * host); a Docker host's own keys are refused by name; every cluster key is
 * refused with the key named and the form accepted.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { load as loadYaml } from "js-yaml";

import { ConfigError } from "../../../components/core/config-keys";
import { parseDockerSettings } from "../../../components/docker/config";
import { ClusterSettings, isClusterConfig, parseClusterSettings } from "../../../components/kubernetes/config";
import { makeCertificates, tlsSettings } from "../certificates";

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const ROOT = path.join(__dirname, "..", "..", "..");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bkc-config-"));
const KUBECONFIG = path.join(dir, "kubeconfig");
fs.writeFileSync(KUBECONFIG, "apiVersion: v1\nkind: Config\n");
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const parse = (raw: Record<string, unknown>, stack = "cluster"): ClusterSettings =>
  parseClusterSettings({ "buildkit:kubeconfig": KUBECONFIG, ...raw }, { stack });

function problemsOf(raw: Record<string, unknown>): string[] {
  try {
    throw new Error(`accepted: ${JSON.stringify(parse(raw))}`);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}

describe("which target a stack is", () => {
  it("is a cluster stack when buildkit:kubeconfig is set, and a Docker one otherwise", () => {
    expect(isClusterConfig({ "buildkit:kubeconfig": "~/.kube/config" })).toBe(true);
    expect(isClusterConfig({ "buildkit:memory": "1g" })).toBe(false);
  });
});

describe("defaults", () => {
  it("one replica named buildkitd in buildkit-<stack>, a 10 GiB cache volume on the default StorageClass", () => {
    const settings = parse({}, "Cluster_Dev");
    expect(settings).toMatchObject({ kubeconfig: KUBECONFIG, namespace: "buildkit-cluster-dev", name: "buildkitd", replicas: 1, cacheSizeBytes: 10 * GIB });
    expect(settings.storageClass).toBeUndefined();
    expect(settings.kubeContext).toBeUndefined();
  });

  it("expands ~/ in the kubeconfig path", () => {
    const home = path.join(os.homedir(), ".bkc-config-test-kubeconfig");
    fs.writeFileSync(home, "");
    try {
      expect(parseClusterSettings({ "buildkit:kubeconfig": "~/.bkc-config-test-kubeconfig" }, { stack: "s" }).kubeconfig).toBe(home);
    } finally {
      fs.rmSync(home);
    }
  });
});

describe("the repo's Pulumi.cluster.yaml", () => {
  it("parses, for two replicas that fit beside the local cluster's control plane", () => {
    const readYaml = (name: string) => loadYaml(fs.readFileSync(path.join(ROOT, name), "utf8")) as { config: Record<string, any> };
    const asString = (v: unknown) => (typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v));
    // What the program sees: Pulumi.yaml's defaults (which every target reads), overlaid with the stack file.
    const defaults = Object.entries(readYaml("Pulumi.yaml").config).map(([k, spec]) => [`buildkit:${k}`, asString(spec.default)]);
    const raw = Object.fromEntries([...defaults, ...Object.entries(readYaml("Pulumi.cluster.yaml").config).map(([k, v]) => [k, asString(v)])]);
    expect(raw["buildkit:kubeconfig"]).toBe("~/.cache/buildkit-stack/cluster/kubeconfig");
    // The file's own path exists only once the cluster is provisioned: parse with this test's file instead.
    const settings = parseClusterSettings({ ...raw, "buildkit:kubeconfig": KUBECONFIG }, { stack: "cluster" });
    expect(settings.replicas).toBe(2);
    expect((settings.cpus ?? 0) * settings.replicas).toBeLessThanOrEqual(1.5);
  });
});

describe("refusals name the key and the accepted form", () => {
  it.each([
    ["kubeconfig", "relative/kubeconfig", "a relative path would depend on the directory pulumi runs in"],
    ["kubeconfig", "/nonexistent/kubeconfig", "there is no file /nonexistent/kubeconfig"],
    ["namespace", "Build_Kit", "a DNS label for a namespace"],
    ["name", "b".repeat(53), "53 characters; a StatefulSet (its pods add -0, -1, … and a revision label) takes at most 52"],
    ["replicas", "0", "a whole number of replicas from 1 to 64"],
    ["replicas", "65", "a whole number of replicas from 1 to 64"],
    ["cacheSize", "10", "expected at least 256m"],
    ["storageClass", "Fast SSD", "a DNS label for a StorageClass"],
  ])("buildkit:%s %s", (key, value, reason) => {
    const problems = problemsOf({ [`buildkit:${key}`]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`buildkit:${key}`);
    expect(problems[0]).toContain(reason);
  });

  it("refuses a Docker host's keys by name", () => {
    const problems = problemsOf({ "buildkit:containerName": "bk", "buildkit:hosts": "[]", "buildkit:tcpAddress": "0.0.0.0" });
    expect(problems).toEqual([
      'buildkit:containerName is a Docker host\'s setting; a cluster stack (buildkit:kubeconfig is set) does not read it',
      'buildkit:hosts is a Docker host\'s setting; a cluster stack (buildkit:kubeconfig is set) does not read it',
      'buildkit:tcpAddress is a Docker host\'s setting; a cluster stack (buildkit:kubeconfig is set) does not read it',
    ]);
  });

  it("refuses following a moving tag on a cluster for now, with what to do instead", () => {
    expect(problemsOf({ "buildkit:tagRegistry": "registry-1.docker.io" })).toEqual([
      "buildkit:tagRegistry is not read on a cluster stack yet (following a moving tag; pin the image by digest or version tag and change it to roll); remove it, or deploy to a Docker host",
    ]);
  });

  it("refuses a GC ceiling above the cache volume", () => {
    expect(problemsOf({ "buildkit:cacheSize": "1g", "buildkit:cacheMaxUsedSpace": "2g" })).toEqual([
      expect.stringContaining('buildkit:cacheMaxUsedSpace is "2g", above buildkit:cacheSize ("1g")'),
    ]);
    expect(parse({ "buildkit:cacheSize": "2g", "buildkit:cacheMaxUsedSpace": "2g" }).cacheSizeBytes).toBe(2 * GIB);
  });

  it("takes rootless with the rootless image by default, and refuses a privileged image for it as a Docker host does", () => {
    expect(parse({ "buildkit:rootless": "true" })).toMatchObject({ rootless: true, image: "moby/buildkit:v0.32.2-rootless" });
    expect(problemsOf({ "buildkit:rootless": "true", "buildkit:image": "moby/buildkit:v0.32.2" })).toEqual([
      expect.stringContaining('buildkit:image is "moby/buildkit:v0.32.2" but buildkit:rootless is true'),
    ]);
  });

  it("applies the daemon's rules exactly as a Docker host does: the same message for the same value", () => {
    const bad = { "buildkit:memory": "16m", "buildkit:platforms": '["linux/x86_64"]', "buildkit:image": "moby/buildkit:latest", "buildkit:production": "true" };
    let docker: string[] = [];
    try {
      parseDockerSettings(bad, { stack: "prod" });
    } catch (error) {
      docker = (error as ConfigError).problems;
    }
    expect(docker.length).toBeGreaterThan(0);
    expect(problemsOf(bad)).toEqual(docker);
  });

  it("takes memory and cpus in the core's units", () => {
    expect(parse({ "buildkit:memory": "1536m", "buildkit:cpus": "0.5" })).toMatchObject({ memoryBytes: 1536 * MIB, cpus: 0.5 });
  });
});

describe("the TCP listener with mTLS", () => {
  const tlsConfig = (sans: string[]) =>
    Object.fromEntries(Object.entries(tlsSettings(makeCertificates({ serverSans: sans }))).map(([key, value]) => [`buildkit:${key}`, value]));

  it("is refused in plaintext with the Docker host's own message (one rule, in the core)", () => {
    const onCluster = problemsOf({ "buildkit:tcpPort": "1234" });
    expect(onCluster).toEqual([expect.stringContaining("buildkit:tcpPort is 1234 but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root")]);
    expect(() => parseDockerSettings({ "buildkit:tcpPort": "1234" }, { stack: "dev" })).toThrow(onCluster[0]);
  });

  it("needs a server certificate covering every replica's name under the headless Service, and names the missing ones", () => {
    const problems = problemsOf({ "buildkit:tcpPort": "1234", "buildkit:replicas": "2", "buildkit:namespace": "ci", ...tlsConfig(["DNS:buildkitd-0.buildkitd.ci.svc"]) });
    expect(problems).toEqual([
      expect.stringMatching(
        /^buildkit:tlsCert does not cover DNS:buildkitd-1\.buildkitd\.ci\.svc in its subjectAltName \(it has DNS:buildkitd-0\.buildkitd\.ci\.svc\); each replica's smoke test and clients in the cluster dial tcp:\/\/<pod>\.buildkitd\.ci\.svc:1234: issue it with subjectAltName=DNS:buildkitd-1\.buildkitd\.ci\.svc$/,
      ),
    ]);
  });

  it("accepts a wildcard for the Service's names, and keeps the port and material", () => {
    const settings = parse({ "buildkit:tcpPort": "1235", "buildkit:replicas": "3", "buildkit:name": "bk", "buildkit:namespace": "ci", ...tlsConfig(["DNS:*.bk.ci.svc"]) });
    expect(settings.tcpPort).toBe(1235);
    expect(settings.tls?.ca).toContain("BEGIN CERTIFICATE");
  });
});
