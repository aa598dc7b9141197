/**
 * `npm run route`: a key (<repo>:<context>) goes to one fleet host by
 * consistent hashing, stays there, and only the keys of a host that leaves
 * move; the command prints shell exports a CI runner can eval.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import type { FleetEndpoint } from "../../components/docker/buildkit-fleet";
import { exportsFor, parseEndpoints, routeKey } from "../../cli/route";

const fleet: FleetEndpoint[] = [
  { name: "local", buildkitHost: "docker-container://buildkitd-local" },
  { name: "ssh-1", buildkitHost: "docker-container://buildkitd-ssh-1", dockerHost: "ssh://root@127.0.0.1:18421" },
  { name: "tls-1", buildkitHost: "tcp://10.0.0.3:1234" },
];
const keys = Array.from({ length: 300 }, (_, i) => `github.com/acme/repo-${i}:services/${i % 7}`);
const firstChoice = (endpoints: FleetEndpoint[]) => new Map(keys.map((key) => [key, routeKey(endpoints, key)[0].name]));

describe("routing a key over the fleet", () => {
  it("sends the same key to the same host every time, whatever the order hosts are listed in", () => {
    const reversed = [...fleet].reverse();
    for (const key of keys.slice(0, 50)) {
      expect(routeKey(fleet, key)[0].name).toBe(routeKey(fleet, key)[0].name);
      expect(routeKey(reversed, key)[0].name).toBe(routeKey(fleet, key)[0].name);
    }
  });

  it("spreads keys over every host, none with more than half of them", () => {
    const counts = new Map<string, number>();
    for (const host of firstChoice(fleet).values()) counts.set(host, (counts.get(host) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(["local", "ssh-1", "tls-1"]);
    for (const count of counts.values()) expect(count).toBeLessThan(keys.length / 2);
  });

  it("moves only the keys of a host that leaves, each to its next preference", () => {
    const before = firstChoice(fleet);
    const after = firstChoice(fleet.filter((host) => host.name !== "ssh-1"));
    for (const key of keys) {
      if (before.get(key) !== "ssh-1") expect(after.get(key)).toBe(before.get(key));
      else expect(after.get(key)).toBe(routeKey(fleet, key)[1].name);
    }
  });

  it("keys a host by its name: a host that moves to a new address keeps its keys", () => {
    const moved = fleet.map((host) => (host.name === "tls-1" ? { ...host, buildkitHost: "tcp://10.0.0.9:1234" } : host));
    expect(firstChoice(moved)).toEqual(firstChoice(fleet));
  });

  it("ranks every host exactly once", () => {
    for (const key of keys.slice(0, 20)) expect(routeKey(fleet, key).map((h) => h.name).sort()).toEqual(["local", "ssh-1", "tls-1"]);
  });
});

describe("what the command prints", () => {
  it("exports BUILDKIT_HOST, and DOCKER_HOST only where docker-container:// needs it", () => {
    expect(exportsFor(fleet[1])).toBe("export BUILDKIT_HOST=docker-container://buildkitd-ssh-1\nexport DOCKER_HOST=ssh://root@127.0.0.1:18421\n# fleet host: ssh-1");
    expect(exportsFor(fleet[2])).toBe("export BUILDKIT_HOST=tcp://10.0.0.3:1234\n# fleet host: tls-1");
  });

  it("refuses a file that is not a fleet's endpoints, saying what it expected", () => {
    expect(() => parseEndpoints("nope", "fleet.json")).toThrow(/fleet.json is not JSON; expected the output of `pulumi stack output fleetEndpoints --json`/);
    expect(() => parseEndpoints('"docker-container://buildkitd"', "fleet.json")).toThrow(/holds no fleet endpoints .*is it a fleet stack/);
    expect(() => parseEndpoints("[]", "fleet.json")).toThrow(/holds no fleet endpoints/);
  });

  it("routes from a saved stack output end to end, and evals in a shell", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "route-")), "fleet.json");
    fs.writeFileSync(file, JSON.stringify(fleet));
    const key = "github.com/acme/api:services/api";
    const cli = (...args: string[]) =>
      spawnSync("node", ["-r", "ts-node/register/transpile-only", path.join(__dirname, "../../cli/route.ts"), ...args], { encoding: "utf8" });
    const printed = cli(key, "--from", file);
    expect(printed.status).toBe(0);
    const chosen = routeKey(fleet, key)[0];
    const shell = spawnSync("sh", ["-c", `${printed.stdout}\necho "$BUILDKIT_HOST|\${DOCKER_HOST:-}"`], { encoding: "utf8", env: { PATH: process.env.PATH } });
    expect(shell.stdout.trim()).toBe(`${chosen.buildkitHost}|${chosen.dockerHost ?? ""}`);
    expect(cli(key, "--from", file, "--all").stdout.trim().split("\n").map((line) => line.split("\t")[0])).toEqual(routeKey(fleet, key).map((h) => h.name));
    const bad = cli("no-colon", "--from", file);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/expected a key like <repo>:<context path>/);
  });
});
