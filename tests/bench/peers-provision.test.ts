/**
 * scripts/provision/peers.sh builds the Terraform peer's provider twice from
 * one kreuzwerker revision: as upstream publishes it, and patched the way our
 * docker provider is (providers/docker/patch-upstream.sh), each behind its own
 * Terraform CLI config. The bench's equal-provider ratios are only as honest
 * as this: run here with a `go` that builds nothing but records what source it
 * was given.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const root = path.resolve(__dirname, "../..");
const versions = fs.readFileSync(path.join(root, "scripts/versions.sh"), "utf8");
const UPSTREAM = /^PULUMI_DOCKER_UPSTREAM_VERSION="([^"]+)"/m.exec(versions)![1];

const temp = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** A module directory shaped like kreuzwerker's where the patch edits it (the lines patch-upstream.sh matches). */
function fakeModule(): string {
  const dir = temp("fake-kreuzwerker-");
  fs.mkdirSync(path.join(dir, "internal/provider"), { recursive: true });
  fs.writeFileSync(
    path.join(dir, "internal/provider/resource_docker_network_funcs.go"),
    "package provider\n\nconst (\n\tnetworkReadRefreshDelay   = 2 * time.Second\n\tnetworkRemoveRefreshDelay = 2 * time.Second\n)\n",
  );
  fs.writeFileSync(path.join(dir, "internal/provider/resource_docker_container_funcs.go"), "package provider\n\nfunc poll() {\n\ttime.Sleep(time.Second)\n}\n");
  // The module cache is read-only; peers.sh copies it out and makes the copy writable.
  spawnSync("chmod", ["-R", "a-w", dir]);
  return dir;
}

/**
 * `go mod download -json` names the fake module; `go build -o OUT .` writes
 * the source it would have compiled (both provider files) to OUT; `go install`
 * (buildx.sh's) writes a stub. Every call is logged.
 */
function fakeGo(moduleDir: string): { dir: string; calls: () => string[] } {
  const dir = temp("fake-go-");
  const log = path.join(dir, "calls");
  fs.writeFileSync(
    path.join(dir, "go"),
    `#!/bin/sh
echo "$*" >> "${log}"
case "$1" in
  mod) printf '{"Path": "github.com/kreuzwerker/terraform-provider-docker", "Dir": "${moduleDir}"}\\n' ;;
  install) printf '#!/bin/sh\\n' > "$GOBIN/buildx"; chmod +x "$GOBIN/buildx" ;;
  build)
    while [ "$1" != "-o" ]; do shift; done
    cat internal/provider/resource_docker_network_funcs.go internal/provider/resource_docker_container_funcs.go > "$2"
    chmod +x "$2" ;;
esac
`,
    { mode: 0o755 },
  );
  return { dir, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : []) };
}

describe("scripts/provision/peers.sh: the Terraform peer's provider, upstream and on our provider code", () => {
  const cache = temp("peers-cache-");
  const go = fakeGo(fakeModule());
  const peers = path.join(cache, "peers");
  const upstreamDir = path.join(peers, `terraform-provider-docker-${UPSTREAM}`);
  const sameDir = path.join(peers, `terraform-provider-docker-${UPSTREAM}-same-provider`);
  const run = () =>
    spawnSync("bash", [path.join(root, "scripts/provision/peers.sh")], {
      cwd: root,
      encoding: "utf8",
      env: { ...process.env, BUILDKIT_STACK_CACHE: cache, PATH: `${go.dir}:${process.env.PATH}` },
    });

  afterAll(() => fs.rmSync(cache, { recursive: true, force: true }));

  it("builds the same revision twice: as published, and with patch-upstream.sh's edits", () => {
    const first = run();
    expect({ code: first.status, stderr: first.status === 0 ? "" : first.stderr }).toEqual({ code: 0, stderr: "" });
    const upstream = fs.readFileSync(path.join(upstreamDir, "terraform-provider-docker"), "utf8");
    const same = fs.readFileSync(path.join(sameDir, "terraform-provider-docker"), "utf8");
    // Upstream keeps both waits; the other has exactly the edits our docker provider is built with.
    expect(upstream).toMatch(/networkReadRefreshDelay\s+= 2 \* time.Second/);
    expect(upstream).toContain("time.Sleep(time.Second)");
    expect(same).toMatch(/networkReadRefreshDelay\s+= 0\n/);
    expect(same).toMatch(/networkRemoveRefreshDelay\s+= 0\n/);
    expect(same).toContain("time.Sleep(200 * time.Millisecond)");
    expect(go.calls().filter((call) => call.startsWith("build"))).toHaveLength(2);
    expect(first.stderr).toContain("built terraform-provider-docker (patched like ours)");
  });

  it("writes one Terraform CLI config per build, each overriding kreuzwerker/docker with its own directory", () => {
    const override = (file: string) => /"kreuzwerker\/docker" = "([^"]+)"/.exec(fs.readFileSync(path.join(peers, file), "utf8"))![1];
    expect(override("terraformrc")).toBe(upstreamDir);
    expect(override("terraformrc-same-provider")).toBe(sameDir);
  });

  it("builds neither again while the revision and the patch are unchanged", () => {
    const builds = go.calls().filter((call) => call.startsWith("build")).length;
    const again = run();
    expect(again.status).toBe(0);
    expect(again.stderr).toContain("(upstream) is built, up to date");
    expect(again.stderr).toContain("(patched like ours) is built, up to date");
    expect(go.calls().filter((call) => call.startsWith("build"))).toHaveLength(builds);
  });
});
