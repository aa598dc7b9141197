/**
 * `npm run route`: a key (<repo>:<context>) goes to one fleet host by
 * consistent hashing, stays there, and only the keys of a host that leaves
 * move; keys in flight together are placed with bounded loads (properties
 * checked with fast-check over random fleets and key sets); the command prints
 * shell exports a CI runner can eval.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import fc from "fast-check";

import type { FleetEndpoint } from "../../components/docker/buildkit-fleet";
import { LOAD_FACTOR, assignKeys, exportsFor, loadBound, parseEndpoints, parseInFlight, routeKey } from "../../cli/route";

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

/** Fleets of 1–12 hosts with distinct names of the form buildkit:hosts accepts, each at an address of its own. */
const fleets = fc
  .uniqueArray(fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?$/), { minLength: 1, maxLength: 12 })
  .map((names) => names.map((name, i): FleetEndpoint => ({ name, buildkitHost: `tcp://10.0.${i}.1:1234` })));
/** Keys in flight: 0–80 of them, repeats allowed, from a small alphabet so that repos share prefixes like real ones. */
const keySets = fc.array(fc.tuple(fc.constantFrom("acme/api", "acme/web", "acme/mono", "x/y"), fc.stringMatching(/^[a-z/.]{0,12}$/)).map(([repo, ctx]) => `${repo}:${ctx}`), { maxLength: 80 });
const loads = (assigned: Map<string, FleetEndpoint>) => {
  const count = new Map<string, number>();
  for (const endpoint of assigned.values()) count.set(endpoint.name, (count.get(endpoint.name) ?? 0) + 1);
  return count;
};

describe("bounded loads over the keys in flight (properties, fast-check)", () => {
  it("places every distinct key once, on a host of the fleet", () => {
    fc.assert(
      fc.property(fleets, keySets, (fleet, keys) => {
        const assigned = assignKeys(fleet, keys);
        expect([...assigned.keys()].sort()).toEqual([...new Set(keys)].sort());
        for (const endpoint of assigned.values()) expect(fleet).toContain(endpoint);
      }),
    );
  });

  it("gives no host more than the bound, and the bound is at most 1.25× an even share (or the even share rounded up)", () => {
    fc.assert(
      fc.property(fleets, keySets, (fleet, keys) => {
        const n = new Set(keys).size;
        const bound = loadBound(n, fleet.length);
        expect(bound).toBeLessThanOrEqual(Math.max((LOAD_FACTOR * n) / fleet.length, Math.ceil(n / fleet.length)));
        for (const count of loads(assignKeys(fleet, keys)).values()) expect(count).toBeLessThanOrEqual(bound);
      }),
    );
  });

  it("moves a key off its own host only when that host is full: every host it skipped ends at the bound", () => {
    fc.assert(
      fc.property(fleets, keySets, (fleet, keys) => {
        const assigned = assignKeys(fleet, keys);
        const count = loads(assigned);
        const bound = loadBound(assigned.size, fleet.length);
        for (const [key, endpoint] of assigned) {
          const order = routeKey(fleet, key).map((e) => e.name);
          for (const skipped of order.slice(0, order.indexOf(endpoint.name))) expect(count.get(skipped)).toBe(bound);
        }
      }),
    );
  });

  it("is plain consistent hashing when no host fills: one key alone, or an unbounded load factor", () => {
    fc.assert(
      fc.property(fleets, keySets, (fleet, keys) => {
        for (const [key, endpoint] of assignKeys(fleet, keys, Infinity)) expect(endpoint).toBe(routeKey(fleet, key)[0]);
        for (const key of keys.slice(0, 5)) expect(assignKeys(fleet, [key]).get(key)).toBe(routeKey(fleet, key)[0]);
      }),
    );
  });

  it("depends only on the set of keys and the host names: not their order, repeats or the hosts' addresses", () => {
    fc.assert(
      fc.property(fleets, keySets, fc.infiniteStream(fc.nat()), (fleet, keys, seeds) => {
        const names = (assigned: Map<string, FleetEndpoint>) => new Map([...assigned].map(([key, e]) => [key, e.name]));
        const expected = names(assignKeys(fleet, keys));
        const shuffled = [...keys, ...keys.slice(0, 3)].map((key) => [seeds.next().value, key] as const).sort((a, b) => a[0] - b[0]).map(([, key]) => key);
        expect(names(assignKeys([...fleet].reverse(), shuffled))).toEqual(expected);
        const moved = fleet.map((e, i) => ({ ...e, buildkitHost: `tcp://192.0.2.${i}:1234` }));
        expect(names(assignKeys(moved, keys))).toEqual(expected);
      }),
    );
  });

  it("spreads a monorepo's contexts that plain hashing piles up: no host above 1.25× its share", () => {
    // 20 keys on 3 hosts: an even share is 6.67, the bound 8.
    const monorepo = Array.from({ length: 20 }, (_, i) => `github.com/acme/mono:services/svc-${i}`);
    const plain = new Map<string, number>();
    for (const key of monorepo) plain.set(routeKey(fleet, key)[0].name, (plain.get(routeKey(fleet, key)[0].name) ?? 0) + 1);
    const bounded = loads(assignKeys(fleet, monorepo));
    expect(loadBound(20, 3)).toBe(8);
    expect(Math.max(...bounded.values())).toBeLessThanOrEqual(8);
    expect([...bounded.values()].reduce((a, b) => a + b, 0)).toBe(20);
    // Plain hashing of these 20 keys is what bounded loads correct (if it were already even, this test would prove nothing).
    expect(Math.max(...plain.values())).toBeGreaterThan(8);
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
    expect(() => parseEndpoints(JSON.stringify([fleet[0], fleet[0]]), "fleet.json")).toThrow(/fleet.json: host names repeat \(local, local\)/);
  });

  it("refuses a control character anywhere in an endpoint: a line break would end the quoted line or the comment", () => {
    for (const field of ["name", "buildkitHost", "dockerHost"] as const) {
      const bad = [{ ...fleet[1], [field]: "x\ntouch /tmp/pwned" }];
      expect(() => parseEndpoints(JSON.stringify(bad), "fleet.json")).toThrow(new RegExp(`fleet.json: host .*: ${field} .* holds a control character`));
    }
  });

  it("prints exports a shell evals to exactly the endpoint's values, whatever characters they hold", () => {
    // One shell for many generated endpoints: each is eval'd in a subshell that prints what it set, NUL-separated.
    const values = fc.sample(fc.string({ unit: fc.constantFrom(..."ab/:.-_ '\"$`\\;&|()<>*?[]{}!#~=%@,+"), minLength: 1, maxLength: 24 }), 60);
    const endpoints = values.map((value, i): FleetEndpoint => ({ name: `h${i}`, buildkitHost: `docker-container://${value}`, dockerHost: value }));
    const script = endpoints.map((e) => `(${exportsFor(e)}\nprintf '%s\\0%s\\0' "$BUILDKIT_HOST" "$DOCKER_HOST")`).join("\n");
    const shell = spawnSync("sh", ["-c", script], { encoding: "utf8", env: { PATH: process.env.PATH } });
    expect(shell.stderr).toBe("");
    expect(shell.stdout.split("\0").slice(0, -1)).toEqual(endpoints.flatMap((e) => [e.buildkitHost, e.dockerHost]));
  });

  it("reads an --in-flight file: one key per line, blank lines and comments skipped", () => {
    expect(parseInFlight("# commit abc\nacme/mono:svc/a\n\n  acme/mono:svc/b  \n")).toEqual(["acme/mono:svc/a", "acme/mono:svc/b"]);
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

  it("routes a key with the others in flight: every key of the batch, routed alone, gets the host bounded loads gave it", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "route-"));
    const file = path.join(dir, "fleet.json");
    fs.writeFileSync(file, JSON.stringify(fleet));
    const batch = Array.from({ length: 20 }, (_, i) => `github.com/acme/mono:services/svc-${i}`);
    const inFlight = path.join(dir, "in-flight.txt");
    fs.writeFileSync(inFlight, batch.join("\n") + "\n");
    const expected = assignKeys(fleet, batch);
    // Three keys that plain hashing and bounded loads place differently, and one they agree on (the CLI is a node start per key).
    const moved = batch.filter((key) => expected.get(key) !== routeKey(fleet, key)[0]);
    expect(moved.length).toBeGreaterThan(0);
    const kept = batch.find((key) => expected.get(key) === routeKey(fleet, key)[0])!;
    for (const key of [...moved.slice(0, 3), kept]) {
      const printed = spawnSync("node", ["-r", "ts-node/register/transpile-only", path.join(__dirname, "../../cli/route.ts"), key, "--from", file, "--in-flight", inFlight], { encoding: "utf8" });
      expect(printed.status).toBe(0);
      expect(printed.stdout).toBe(exportsFor(expected.get(key)!) + "\n");
    }
    const missing = spawnSync("node", ["-r", "ts-node/register/transpile-only", path.join(__dirname, "../../cli/route.ts"), kept, "--from", file, "--in-flight", path.join(dir, "nope")], { encoding: "utf8" });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*nope: ENOENT/);
  });
});
