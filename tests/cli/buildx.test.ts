/**
 * `npm run buildx`: a fleet whose hosts publish buildkitd over TCP with mTLS
 * becomes one `docker buildx create --driver remote` line and an `--append`
 * line per further host, with each host's client material written where the
 * lines point. (tests/integration/buildx-fleet.test.ts runs these lines with a
 * real buildx against two real daemons.)
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import type { BuildxNode } from "../../components/docker/buildkit-fleet";
import { buildxCreateCommands, checkNodes, nodeName, parseBuildxNodes, platformNotes } from "../../cli/buildx";

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
