/**
 * The deploy-time proof program (components/core/smoke-test.ts), run for real
 * with a fake runner: a shell function standing in for `docker exec` or
 * `kubectl exec`, and a fake buildctl on PATH that answers as buildkitd does.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { smokeTestClient, smokeTestEndpoint, smokeTestScript, tlsMaterialLines } from "../../../components/core/smoke-test";

/**
 * Runs the script with `runner` = a local `sh` (`env -u` clears the material for a stdin one: a `kubectl exec`
 * shell has none of the caller's environment), a fake buildctl first on PATH.
 */
function runScript(buildctl: string, endpoint = smokeTestEndpoint({ rootless: false }, "unused"), attempts = "3", material = { ca: "ca", cert: "cert", key: "key" }) {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), "smoke-bin-"));
  const log = path.join(bin, "calls.log");
  fs.writeFileSync(path.join(bin, "buildctl"), `#!/bin/sh\necho "$*" >>${log}\n${buildctl}\n`, { mode: 0o755 });
  const stdin = endpoint.kind === "tcp" && endpoint.material === "stdin";
  const runner = stdin ? "bk_material | env -u BK_CA -u BK_CERT -u BK_KEY sh" : "sh";
  const script = [...(stdin ? [`bk_material() { ${tlsMaterialLines}; }`] : []), smokeTestScript(runner, endpoint)].join("\n");
  const result = spawnSync("sh", ["-c", script], {
    encoding: "utf8",
    env: { PATH: `${bin}:${process.env.PATH}`, CONTAINER: "bk-test", ATTEMPTS: attempts, BK_CA: material.ca, BK_CERT: material.cert, BK_KEY: material.key },
  });
  const calls = fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [];
  // What a fake buildctl chose to keep of what it was given (files.log next to it).
  const kept = path.join(bin, "files.log");
  const files = fs.existsSync(kept) ? fs.readFileSync(kept, "utf8") : "";
  fs.rmSync(bin, { recursive: true, force: true });
  return { ...result, calls, files };
}

const WORKERS = 'case "$*" in *" debug workers") printf "ID PLATFORMS\\nw1 linux/amd64,linux/arm64\\n"; exit 0 ;; esac';

describe("the smoke test program", () => {
  it("lists workers, builds once, and prints one summary line with the time", () => {
    const result = runScript(`${WORKERS}\nexit 0`);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^worker w1 platforms linux\/amd64,linux\/arm64; test build ok at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/);
    expect(result.calls).toEqual([
      "--addr unix:///run/buildkit/buildkitd.sock debug workers",
      expect.stringMatching(/^--addr unix:\/\/\/run\/buildkit\/buildkitd\.sock build --frontend dockerfile\.v0 --local context=\S+ --local dockerfile=\S+$/),
    ]);
  });

  it("gives up after $ATTEMPTS attempts when no worker is listed, naming the daemon", () => {
    const result = runScript("echo 'connection refused' >&2; exit 1", undefined, "2");
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("smoke test: buildkitd in bk-test listed no workers after 2 attempts: connection refused");
    expect(result.calls).toHaveLength(2);
  });

  it("fails with the build's output when the build fails", () => {
    const result = runScript(`${WORKERS}\necho 'failed to solve: boom' >&2; exit 1`);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("smoke test: the test build through bk-test failed:\nfailed to solve: boom");
  });

  it("dials a TCP listener with the client certificate written to files, never on a command line", () => {
    const result = runScript(`${WORKERS}\nexit 0`, smokeTestEndpoint({ rootless: false, tcpPort: 1, tls: {} }, "buildkitd-0.bk.ns.svc"));
    expect(result.status).toBe(0);
    expect(result.calls[0]).toMatch(/^--addr tcp:\/\/buildkitd-0\.bk\.ns\.svc:1234 --tlscacert \S+\/ca\.pem --tlscert \S+\/cert\.pem --tlskey \S+\/key\.pem debug workers$/);
    expect(result.calls.join("\n")).not.toMatch(/\bca\b.*\bcert\b.*\bkey\b$/m);
  });

  it("takes the client material on stdin where the runner passes no environment (kubectl exec), and dials the port given", () => {
    const pem = (label: string) => `-----BEGIN ${label}-----\nMIIB${label.length}abc+/=\n-----END ${label}-----\n`;
    const material = { ca: pem("CERTIFICATE"), cert: pem("CLIENT CERTIFICATE"), key: pem("EC PRIVATE KEY") };
    // The fake buildctl keeps what it was given in the files, in the order of its flags: exactly the PEMs.
    const show = 'for f in "$@"; do case "$f" in */ca.pem|*/cert.pem|*/key.pem) cat "$f" >>"$(dirname "$0")/files.log" ;; esac; done';
    const endpoint = smokeTestEndpoint({ rootless: false, tcpPort: 1235, tls: {} }, "buildkitd-0.bk.ns.svc", { port: 1235, material: "stdin" });
    const result = runScript(`${show}\n${WORKERS}\nexit 0`, endpoint, "3", material);
    expect(result.status).toBe(0);
    expect(result.calls[0]).toMatch(/^--addr tcp:\/\/buildkitd-0\.bk\.ns\.svc:1235 --tlscacert \S+\/ca\.pem --tlscert \S+\/cert\.pem --tlskey \S+\/key\.pem debug workers$/);
    // Two calls (workers, build), each handed the three PEMs byte for byte.
    expect(result.files).toBe((material.ca + material.cert + material.key).repeat(2));
    expect(smokeTestClient(endpoint)).not.toContain("BK_KEY");
  });

  it("uses the rootless socket for a rootless daemon", () => {
    expect(smokeTestClient(smokeTestEndpoint({ rootless: true }, "x"))).toContain("--addr unix:///run/user/1000/buildkit/buildkitd.sock");
  });

  it("can be passed in single quotes: the client program has none", () => {
    for (const endpoint of [smokeTestEndpoint({ rootless: false }, "x"), smokeTestEndpoint({ rootless: false, tcpPort: 1, tls: {} }, "host")]) {
      expect(smokeTestClient(endpoint)).not.toContain("'");
    }
  });
});
