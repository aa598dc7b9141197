/**
 * What `npm run drift` prints for a fleet and the code it exits with, from
 * what a check found (no engine): one line per host and drifted resource in
 * roll order, a dead host named with its endpoint and error next to the
 * others' drift, and fixes that go to the right host and leave the dead one out.
 */
import { Drift, FleetFound, fleetExitCode, fleetReport, fleetScope, healPlan } from "../../cli/drift-report";
import { stackEngines } from "../../cli/stack-engines";
import { CONTAINER_TYPE, COMMAND_TYPE } from "../../components/resource-types";
import { STACK, childUrn, fleetState } from "./fleet-state";

const state = fleetState();
const hosts = stackEngines(state).engines;
const DEAD_REASON = "Cannot connect to the Docker daemon at http://docker.example.com. Is the docker daemon running?";

function found(drifts: Drift[], dead: string[] = []): FleetFound {
  const unreachable = new Map(dead.map((name) => [name, DEAD_REASON]));
  return { hosts, state, unreachable, drifts, scope: fleetScope(hosts, [], dead.length > 0) };
}

const stopped = (host: string): Drift => ({
  urn: childUrn(host, CONTAINER_TYPE, "daemon"),
  type: CONTAINER_TYPE,
  name: `bk-fa-${host}`,
  changes: ["stopped out of band (exited, exit code 0)"],
  op: "update",
  keys: new Set(["mustRun"]),
});
const paused = (host: string): Drift => ({
  urn: childUrn(host, CONTAINER_TYPE, "daemon"),
  type: CONTAINER_TYPE,
  name: `bk-fa-${host}`,
  changes: ["paused out of band (docker pause: frozen, answers no client; the provider sees it running)"],
  keys: new Set(),
  paused: true,
});
/** What a roll that stopped at a dead host leaves on the hosts after it: the program's change, not drift. */
const pendingImage = (host: string): Drift[] => [
  { urn: childUrn(host, CONTAINER_TYPE, "daemon"), type: CONTAINER_TYPE, name: `bk-fa-${host}`, changes: [], op: "replace", keys: new Set(["image"]) },
  { urn: childUrn(host, COMMAND_TYPE, "smoke-test"), type: COMMAND_TYPE, name: `buildkit-${host}-smoke-test`, changes: [], op: "replace", keys: new Set(["triggers"]) },
];
const smokeTest = (host: string): Drift => ({ urn: childUrn(host, COMMAND_TYPE, "smoke-test"), type: COMMAND_TYPE, name: `buildkit-${host}-smoke-test`, changes: [], op: "replace", keys: new Set(["triggers"]) });

describe("a fleet's drift report", () => {
  it("says every host is clean in one line each, and exits 0", () => {
    const report = fleetReport(found([]), STACK, "/repo");
    expect(report).toEqual([
      `no drift: stack ${STACK} matches the engines of all 3 hosts (refresh + preview show no changes; state, uploaded files and networks of 3 containers checked)`,
      "  host local: no drift (1 container checked)",
      "  host ssh-1: no drift (1 container checked)",
      "  host tls-1: no drift (1 container checked)",
    ]);
    expect(fleetExitCode(found([]))).toBe(0);
  });

  it("puts each drifted resource on its host's line, and exits 2", () => {
    const smoke: Drift = { urn: childUrn("local", COMMAND_TYPE, "smoke-test"), type: COMMAND_TYPE, name: "buildkit-local-smoke-test", changes: [], op: "replace", keys: new Set(["triggers"]) };
    const report = fleetReport(found([stopped("local"), smoke]), STACK, "/repo");
    expect(report.slice(0, 5)).toEqual([
      `drift in stack ${STACK}:`,
      "  host local: container bk-fa-local: stopped out of band (exited, exit code 0) → will be started",
      "  host local: smoke test buildkit-local-smoke-test: will re-run (its container changes)",
      "  host ssh-1: no drift (1 container checked)",
      "  host tls-1: no drift (1 container checked)",
    ]);
    expect(report[5]).toBe("fix (or run: npm run drift -- --heal):");
    // Only what drifted, with the smoke test that proves it, under the policy gate `npm run up` uses.
    expect(report[6]).toMatch(/pulumi -C \/repo up --refresh --target '[^']+::buildkit-local-daemon' --target '[^']+::buildkit-local-smoke-test' --policy-pack \S+\/policy --policy-pack-config \S+\/policy\/config\.json --stack fa-unit$/);
    expect(fleetExitCode(found([stopped("local")]))).toBe(2);
  });

  it("names an unreachable host with its endpoint and error, still shows the drift on the others, and exits 1", () => {
    const result = found([stopped("local"), paused("tls-1")], ["ssh-1"]);
    const report = fleetReport(result, STACK, "/repo");
    expect(report.slice(0, 4)).toEqual([
      `drift in stack ${STACK} (1 of 3 hosts unreachable, not checked):`,
      "  host local: container bk-fa-local: stopped out of band (exited, exit code 0) → will be started",
      `  host ssh-1: unreachable: the Docker engine at ssh://root@127.0.0.1:18421 does not answer (${DEAD_REASON}); not checked`,
      "  host tls-1: container bk-fa-tls-1: paused out of band (docker pause: frozen, answers no client; the provider sees it running) → pulumi up does not fix this: unpause it",
    ]);
    const fixes = report.slice(report.indexOf("fix (or run: npm run drift -- --heal):") + 1);
    // The unpause goes to the paused container's own engine.
    expect(fixes[0]).toMatch(/^ {2}DOCKER_HOST=tcp:\/\/127\.0\.0\.1:18422 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=.* docker unpause bk-fa-tls-1$/);
    // pulumi up touches what drifted, nothing of the dead host (its provider would fail the run).
    const targeted = [...fixes[1].matchAll(/--target '([^']+)'/g)].map((m) => m[1]);
    // (The pause needs no deploy: unpausing heals it.)
    expect(targeted).toEqual([childUrn("local", CONTAINER_TYPE, "daemon")]);
    expect(fixes[2]).toMatch(/^ {2}host ssh-1: make its engine answer at ssh:\/\/root@127\.0\.0\.1:18421 .*--heal skips it until then$/);
    expect(fleetExitCode(result)).toBe(1);
  });

  it("is not clean with every reachable host clean and one unreachable: exit 1, and the fix is the engine", () => {
    const result = found([], ["tls-1"]);
    const report = fleetReport(result, STACK, "/repo");
    expect(report[0]).toBe(`no drift on the hosts that answer, but 1 of 3 hosts unreachable, not checked: stack ${STACK}`);
    expect(report).toContain("fix:");
    expect(report[report.length - 1]).toMatch(/^ {2}host tls-1: make its engine answer at tcp:\/\/127\.0\.0\.1:18422 /);
    expect(fleetExitCode(result)).toBe(1);
  });

  it("does not call a fleet with no host answering clean", () => {
    const result = found([], ["local", "ssh-1", "tls-1"]);
    expect(fleetReport(result, STACK, "/repo")[0]).toBe(`nothing checked: no host of stack ${STACK} answers (3 of 3 hosts unreachable, not checked)`);
    expect(fleetExitCode(result)).toBe(1);
  });
});

describe("healing a fleet", () => {
  it("with every host answering, still targets only what changed out of band: a pending program change is left to npm run up", () => {
    const drifts = [stopped("local"), smokeTest("local"), ...pendingImage("tls-1")];
    const plan = healPlan(drifts, found(drifts).scope);
    expect(plan.target).toEqual([childUrn("local", CONTAINER_TYPE, "daemon"), childUrn("local", COMMAND_TYPE, "smoke-test")]);
    expect(plan.deferred).toEqual(pendingImage("tls-1"));
    const report = fleetReport(found(drifts), STACK, "/repo");
    expect(report.find((line) => line.includes("pulumi"))).not.toContain("buildkit-tls-1");
    expect(report).toContain(`  pending program changes are not drift and --heal leaves them: deploy them with npm run up -- ${STACK} (the policy gate, as for any deploy) (hosts tls-1)`);
  });

  it("targets the recorded smoke test of a healed host even when the preview did not plan it (a replacement only our checks asked for)", () => {
    const edited: Drift = { urn: childUrn("local", CONTAINER_TYPE, "daemon"), type: CONTAINER_TYPE, name: "bk-fa-local", changes: ["/etc/buildkit/buildkitd.toml changed inside the container"], keys: new Set(), needsReplace: true };
    const plan = healPlan([edited], fleetScope(hosts, [], false, state));
    expect(plan.target).toEqual([edited.urn, childUrn("local", COMMAND_TYPE, "smoke-test")]);
  });

  it("follows a re-created network with the container that uses it (replaced only because of it), on the healed host only", () => {
    const network: Drift = { urn: childUrn("local", "docker:index/network:Network", "network"), type: "docker:index/network:Network", name: "bk-fa-local", changes: ["deleted out of band"], op: "create", keys: new Set() };
    const dependent: Drift = { urn: childUrn("local", CONTAINER_TYPE, "daemon"), type: CONTAINER_TYPE, name: "bk-fa-local", changes: [], op: "replace", keys: new Set(), dependent: true };
    const elsewhere: Drift = { ...pendingImage("tls-1")[0], dependent: true };
    const plan = healPlan([network, dependent, elsewhere], found([]).scope);
    expect(plan.target).toEqual([network.urn, dependent.urn]);
    expect(plan.deferred).toEqual([elsewhere]);
  });

  it("with a host down, heals only what changed out of band (with its smoke test) and leaves a stopped roll for later", () => {
    // The roll stopped at ssh-1: tls-1 still waits for the image change, and must not take it while ssh-1 is out.
    const drifts = [stopped("local"), smokeTest("local"), ...pendingImage("tls-1")];
    const plan = healPlan(drifts, found(drifts, ["ssh-1"]).scope);
    expect(plan.target).toEqual([childUrn("local", CONTAINER_TYPE, "daemon"), childUrn("local", COMMAND_TYPE, "smoke-test")]);
    expect(plan.deferred).toEqual(pendingImage("tls-1"));
    const fix = fleetReport(found(drifts, ["ssh-1"]), STACK, "/repo").find((line) => line.includes("pulumi"))!;
    expect(fix).not.toContain("buildkit-tls-1");
  });

  it("with a host down, unpauses a paused container behind the stopped roll without rolling it", () => {
    const [container, smoke] = pendingImage("tls-1");
    const pausedPending: Drift = { ...container, changes: paused("tls-1").changes, paused: true };
    const plan = healPlan([pausedPending, smoke], found([], ["ssh-1"]).scope);
    expect(plan.target).toEqual([]);
    expect(plan.deferred).toEqual([pausedPending, smoke]);
    const report = fleetReport(found([pausedPending, smoke], ["ssh-1"]), STACK, "/repo");
    expect(report).toContain("fix (or run: npm run drift -- --heal):");
    expect(report.some((line) => /docker unpause bk-fa-tls-1$/.test(line))).toBe(true);
    expect(report.some((line) => /source scripts\/env.sh && pulumi/.test(line))).toBe(false);
  });
});
