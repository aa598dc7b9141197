/**
 * `npm run buildx`: a fleet whose hosts publish buildkitd over TCP with mTLS
 * becomes one `docker buildx create --driver remote` line and an `--append`
 * line per further host, with each host's client material written where the
 * lines point; a cluster stack's replicas become a node each at their
 * kube-pod:// endpoint, after the stack's kubeconfig is exported; `--key`
 * puts the key's host or replica first, in the order `npm run route` ranks
 * them. (tests/integration/buildx-fleet.test.ts and buildx-cluster.test.ts run
 * these lines with a real buildx against real daemons.)
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import type { BuildxNode, FleetEndpoint } from "../../components/docker/buildkit-fleet";
import { buildxCreateCommands, checkNodes, clusterLines, nodeName, nodesOfOutputs, parseBuildxNodes, parseNodesFile, platformNotes } from "../../cli/buildx";
import { routeKey } from "../../cli/route";

const tls = (host: string) => ({ serverName: `buildkitd-${host}`, ca: "CA PEM\n", cert: `CERT ${host}\n`, key: `KEY ${host}\n` });
const fleet: BuildxNode[] = [
  { name: "amd", buildkitHost: "tcp://10.0.0.5:1234", tls: tls("amd") },
  { name: "arm", buildkitHost: "tcp://10.0.0.6:1234", platforms: ["linux/arm64"], tls: tls("arm") },
  { name: "1-riscv", buildkitHost: "tcp://[fd00::7]:1234", platforms: ["linux/riscv64", "linux/arm64"], tls: tls("1-riscv") },
];

describe("the docker buildx create lines", () => {
  it("creates the builder with the first host and appends every further one, each a remote node with its own TLS files", () => {
    expect(buildxCreateCommands(fleet, "buildkit-fleet", "/home/ci/bx")).toEqual([
      "docker buildx create --name buildkit-fleet --driver remote --node amd " +
        "--driver-opt cacert=/home/ci/bx/amd/ca.pem,cert=/home/ci/bx/amd/cert.pem,key=/home/ci/bx/amd/key.pem,servername=buildkitd-amd tcp://10.0.0.5:1234",
      "docker buildx create --append --name buildkit-fleet --driver remote --node arm --platform linux/arm64 " +
        "--driver-opt cacert=/home/ci/bx/arm/ca.pem,cert=/home/ci/bx/arm/cert.pem,key=/home/ci/bx/arm/key.pem,servername=buildkitd-arm tcp://10.0.0.6:1234",
      "docker buildx create --append --name buildkit-fleet --driver remote --node host-1-riscv --platform linux/riscv64,linux/arm64 " +
        "--driver-opt cacert=/home/ci/bx/1-riscv/ca.pem,cert=/home/ci/bx/1-riscv/cert.pem,key=/home/ci/bx/1-riscv/key.pem,servername=buildkitd-1-riscv 'tcp://[fd00::7]:1234'",
    ]);
  });

  it("quotes a directory with spaces as one shell word", () => {
    const [first] = buildxCreateCommands(fleet.slice(0, 1), "b", "/tmp/my certs");
    const words = spawnSync("sh", ["-c", `for w in ${first.replace(/^docker /, "")}; do echo "[$w]"; done`], { encoding: "utf8" }).stdout;
    expect(words).toContain("[cacert=/tmp/my certs/amd/ca.pem,cert=/tmp/my certs/amd/cert.pem,key=/tmp/my certs/amd/key.pem,servername=buildkitd-amd]");
  });

  it("names nodes as buildx allows: a host name starting with a digit gets a prefix", () => {
    expect([nodeName("amd"), nodeName("1-riscv")]).toEqual(["amd", "host-1-riscv"]);
  });

  it("refuses hosts without a TCP listener, naming them and the fix", () => {
    const mixed: BuildxNode[] = [fleet[0], { name: "local", buildkitHost: "docker-container://buildkitd-local" }];
    expect(() => checkNodes(mixed)).toThrow(
      /^host "local" \(docker-container:\/\/buildkitd-local\) publishes no TCP listener; buildx's remote driver dials each node by address .* Give every host buildkit:tcpPort/,
    );
    expect(() => buildxCreateCommands(mixed, "b", "/d")).toThrow(/host "local"/);
  });

  it("notes which node serves which platform, and that a platform two hosts list goes to the first only", () => {
    expect(platformNotes(fleet, "buildkit-fleet")).toEqual([
      "# node amd: the platforms its daemon reports (no buildkit:platforms)",
      "# node arm: linux/arm64",
      "# node host-1-riscv: linux/riscv64, linux/arm64",
      "# linux/arm64 is also on node arm: buildx builds it there only (spread same-platform builds with npm run route)",
    ]);
    expect(platformNotes(fleet.slice(1, 2), "bx")).toEqual(["# node arm: linux/arm64", "# build: docker buildx build --builder bx --platform linux/arm64 …"]);
  });
});

const replicas: FleetEndpoint[] = [0, 1, 2].map((ordinal) => ({
  name: `buildkitd-${ordinal}`,
  buildkitHost: `kube-pod://buildkitd-${ordinal}?namespace=buildkit-cluster&container=buildkitd`,
}));
/** A key for each replica: the first key found whose ring order starts there. */
const keyFor = (name: string) => Array.from({ length: 100 }, (_, i) => `github.com/acme/app-${i}:.`).find((key) => routeKey(replicas, key)[0].name === name)!;

describe("a cluster's builder", () => {
  it("exports the stack's kubeconfig, then makes a node of each replica at its kube-pod:// endpoint, and says where builds go", () => {
    expect(clusterLines(replicas.slice(0, 2), "buildkit-cluster", "/home/ci/.kube/cluster config", false)).toEqual([
      "export KUBECONFIG='/home/ci/.kube/cluster config'",
      "docker buildx create --name buildkit-cluster --driver remote --node buildkitd-0 'kube-pod://buildkitd-0?namespace=buildkit-cluster&container=buildkitd'",
      "docker buildx create --append --name buildkit-cluster --driver remote --node buildkitd-1 'kube-pod://buildkitd-1?namespace=buildkit-cluster&container=buildkitd'",
      "# kube-pod:// nodes: buildx runs kubectl exec with the KUBECONFIG of the shell that builds (export it again in another shell)",
      "# every build goes to node buildkitd-0: buildx sends a platform to the first node that has it, and the replicas share theirs (--key REPO:CONTEXT puts a key's replica first)",
      "# build: docker buildx build --builder buildkit-cluster …",
    ]);
  });

  it("without a known kubeconfig (a saved output) exports none and says which one buildx needs", () => {
    const lines = clusterLines(replicas.slice(0, 1), "b", undefined, false);
    expect(lines[0]).toMatch(/^docker buildx create --name b /);
    expect(lines).toContain("# kube-pod:// nodes: buildx runs kubectl exec with the KUBECONFIG of the shell that builds: export the cluster stack's (pulumi stack output kubeconfig)");
  });

  it("names a replica whose pod name starts with a digit as buildx allows", () => {
    const [line] = clusterLines([{ name: "0ci-0", buildkitHost: "kube-pod://0ci-0" }], "b", undefined, false);
    expect(line).toBe("docker buildx create --name b --driver remote --node replica-0ci-0 kube-pod://0ci-0");
  });

  it("reads a cluster stack's outputs: its replicas and kubeconfig; a fleet's nodes; and names what a single host or an undeployed stack lacks", () => {
    expect(nodesOfOutputs({ fleetEndpoints: replicas, kubeconfig: "/k", namespace: "buildkit-cluster", fleetSmokeTests: {} }, "cluster")).toEqual({
      kind: "cluster",
      replicas,
      kubeconfig: "/k",
    });
    expect(nodesOfOutputs({ fleetEndpoints: [], fleetBuildxNodes: fleet }, "fleet")).toEqual({ kind: "fleet", nodes: fleet });
    expect(() => nodesOfOutputs({ fleetBuildxNodes: "[secret]" }, "fleet")).toThrow(/the stack output fleetBuildxNodes of fleet is "\[secret\]"/);
    expect(() => nodesOfOutputs({ buildkitHost: "docker-container://buildkitd", containerName: "buildkitd" }, "dev")).toThrow(
      "stack dev is a single daemon: its builder is one line, docker buildx create --name BUILDER --driver remote docker-container://buildkitd",
    );
    expect(() => nodesOfOutputs({}, "new")).toThrow(/^stack new has no fleetBuildxNodes output .* nor kubeconfig and fleetEndpoints .*has it been deployed/);
    expect(() => nodesOfOutputs({ kubeconfig: "/k", fleetEndpoints: [{ name: "x", buildkitHost: "tcp://x:1" }] }, "c")).toThrow(/replica "x" is at "tcp:\/\/x:1", not a kube-pod:\/\/ endpoint/);
  });

  it("reads a saved output: a list of kube-pod:// endpoints is a cluster's, anything else a fleet's", () => {
    expect(parseNodesFile(JSON.stringify(replicas), "replicas.json")).toEqual({ kind: "cluster", replicas });
    expect(parseNodesFile(JSON.stringify(fleet), "nodes.json")).toEqual({ kind: "fleet", nodes: fleet });
    expect(() => parseNodesFile("{", "x.json")).toThrow(/x.json is not JSON; .*fleetBuildxNodes .*\(a fleet\) or of `pulumi stack output fleetEndpoints --json` \(a cluster\)/);
    expect(() => parseNodesFile(JSON.stringify([replicas[0], replicas[0]]), "replicas.json")).toThrow(/replicas.json: host names repeat/);
  });
});

describe("reading the nodes", () => {
  it("refuses what is not the output, saying what it expected", () => {
    expect(() => parseBuildxNodes("nope", "nodes.json")).toThrow(/nodes.json is not JSON; expected the output of `pulumi stack output fleetBuildxNodes --json --show-secrets`/);
    expect(() => parseBuildxNodes('"[secret]"', "the stack output")).toThrow(/read it with --show-secrets/);
    expect(() => parseBuildxNodes("[]", "nodes.json")).toThrow(/holds no buildx nodes .*is it a fleet stack/);
    expect(() => parseBuildxNodes('[{"name":"a","buildkitHost":"tcp://x:1","tls":{"ca":"x"}}]', "nodes.json")).toThrow(/holds no buildx nodes/);
  });
});

describe("the command, end to end from a saved output", () => {
  const cli = (args: string[], cwd: string) =>
    spawnSync("node", ["-r", "ts-node/register/transpile-only", path.join(__dirname, "../../cli/buildx.ts"), ...args], {
      encoding: "utf8",
      env: { ...process.env, INIT_CWD: cwd },
    });

  it("writes each host's client files (the key readable by the user only) where the printed lines point", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "buildx-cli-"));
    fs.writeFileSync(path.join(work, "nodes.json"), JSON.stringify(fleet.slice(0, 2)));
    // Relative to where the user ran npm, not the package directory npm runs scripts in.
    const printed = cli(["--from", "nodes.json", "--tls-dir", "certs", "--name", "ci-builder"], work);
    expect(printed.stderr).toBe("");
    expect(printed.status).toBe(0);
    const lines = printed.stdout.trim().split("\n");
    expect(lines.slice(0, 2)).toEqual(buildxCreateCommands(fleet.slice(0, 2), "ci-builder", path.join(work, "certs")));
    for (const node of fleet.slice(0, 2)) {
      const dir = path.join(work, "certs", node.name);
      expect(fs.readFileSync(path.join(dir, "ca.pem"), "utf8")).toBe(node.tls!.ca);
      expect(fs.readFileSync(path.join(dir, "cert.pem"), "utf8")).toBe(node.tls!.cert);
      expect(fs.readFileSync(path.join(dir, "key.pem"), "utf8")).toBe(node.tls!.key);
      expect(fs.statSync(path.join(dir, "key.pem")).mode & 0o777).toBe(0o600);
      expect(fs.statSync(dir).mode & 0o077).toBe(0);
    }
  });

  it("refuses a missing --tls-dir and a name buildx would refuse, with exit code 2", () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "buildx-cli-"));
    fs.writeFileSync(path.join(work, "nodes.json"), JSON.stringify(fleet));
    const noDir = cli(["--from", "nodes.json"], work);
    expect([noDir.status, noDir.stderr]).toEqual([2, expect.stringContaining("--tls-dir is required")]);
    const badName = cli(["--from", "nodes.json", "--tls-dir", "d", "--name", "Fleet Builder"], work);
    expect([badName.status, badName.stderr]).toEqual([2, expect.stringContaining('--name "Fleet Builder" is not a buildx builder name')]);
    expect(fs.existsSync(path.join(work, "d"))).toBe(false);
  });
});

describe("the command over a cluster, end to end", () => {
  const made: string[] = [];
  const tempDir = (prefix: string) => {
    made.push(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    return made[made.length - 1];
  };
  afterAll(() => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));
  /** A shell's PATH with stand-ins for `docker` (records each call's words) and `pulumi` (prints the outputs in $OUTPUTS). */
  function standIns(): { bin: string; calls: string } {
    const bin = tempDir("buildx-bin-");
    const calls = path.join(bin, "calls");
    fs.writeFileSync(path.join(bin, "docker"), `#!/bin/sh\nfor word in "$@"; do printf '[%s]' "$word"; done >> ${calls}\necho "|KUBECONFIG=$KUBECONFIG" >> ${calls}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, "pulumi"), '#!/bin/sh\necho "$*" > "$OUTPUTS.args"\ncat "$OUTPUTS"\n', { mode: 0o755 });
    return { bin, calls };
  }
  const cli = (args: string[], env: NodeJS.ProcessEnv) =>
    spawnSync("node", ["-r", "ts-node/register/transpile-only", path.join(__dirname, "../../cli/buildx.ts"), ...args], { encoding: "utf8", env: { ...process.env, ...env } });

  it("reads the stack's outputs, and its lines, eval'd, create the key's replica first with the kubeconfig exported", () => {
    const { bin, calls } = standIns();
    const outputs = path.join(bin, "outputs.json");
    fs.writeFileSync(outputs, JSON.stringify({ fleetEndpoints: replicas, kubeconfig: "/srv/kube config", namespace: "buildkit-cluster" }));
    const key = keyFor("buildkitd-2");
    const printed = cli(["--stack", "cluster", "--key", key, "--name", "ci"], { PATH: `${bin}:${process.env.PATH}`, OUTPUTS: outputs });
    expect(printed.stderr).toBe("");
    expect(printed.status).toBe(0);
    // All outputs in one call, secrets shown (a fleet's nodes are secret).
    expect(fs.readFileSync(`${outputs}.args`, "utf8").trim()).toBe("stack output --json --show-secrets --stack cluster");
    expect(printed.stdout.trim().split("\n")).toEqual(clusterLines(routeKey(replicas, key), "ci", "/srv/kube config", true));
    expect(printed.stdout).toContain("# every build goes to node buildkitd-2, the key's replica as npm run route picks it");

    const shell = spawnSync("sh", ["-e", "-c", printed.stdout], { encoding: "utf8", env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(shell.stderr).toBe("");
    const order = routeKey(replicas, key);
    expect(order[0].name).toBe("buildkitd-2");
    expect(fs.readFileSync(calls, "utf8").trim().split("\n")).toEqual(
      order.map(
        (replica, index) =>
          `[buildx][create]${index === 0 ? "" : "[--append]"}[--name][ci][--driver][remote][--node][${replica.name}][${replica.buildkitHost}]|KUBECONFIG=/srv/kube config`,
      ),
    );
  });

  it("orders a fleet's nodes by the key as well", () => {
    const work = tempDir("buildx-cli-");
    fs.writeFileSync(path.join(work, "nodes.json"), JSON.stringify(fleet));
    const key = Array.from({ length: 100 }, (_, i) => `acme/app-${i}:.`).find((k) => routeKey(fleet, k)[0].name === "arm")!;
    const printed = cli(["--from", "nodes.json", "--tls-dir", "certs", "--key", key], { INIT_CWD: work });
    expect(printed.status).toBe(0);
    expect(printed.stdout.trim().split("\n").filter((line) => !line.startsWith("#"))).toEqual(buildxCreateCommands(routeKey(fleet, key), "buildkit-fleet", path.join(work, "certs")));
    expect(printed.stdout).toMatch(/^docker buildx create --name buildkit-fleet --driver remote --node arm /);
  });

  it("refuses --tls-dir for a cluster's replicas, and a key that is not <repo>:<context>, with exit code 2 and nothing written", () => {
    const work = tempDir("buildx-cli-");
    fs.writeFileSync(path.join(work, "replicas.json"), JSON.stringify(replicas));
    const withDir = cli(["--from", "replicas.json", "--tls-dir", "certs"], { INIT_CWD: work });
    expect(withDir.status).toBe(2);
    expect(withDir.stderr).toMatch(/^--tls-dir is for a fleet's TCP hosts; this builder's nodes are a cluster's kube-pod:\/\/ replicas, .*drop --tls-dir\nusage: npm run buildx -- /);
    expect(fs.existsSync(path.join(work, "certs"))).toBe(false);
    const badKey = cli(["--from", "replicas.json", "--key", "app"], { INIT_CWD: work });
    expect([badKey.status, badKey.stderr]).toEqual([2, expect.stringContaining('expected a key like <repo>:<context path>, got "app"')]);
    const plain = cli(["--from", "replicas.json"], { INIT_CWD: work });
    expect(plain.status).toBe(0);
    expect(plain.stdout).toMatch(/^docker buildx create --name buildkit-cluster --driver remote --node buildkitd-0 /);
  });
});
