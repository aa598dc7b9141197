/**
 * A BuildKit fleet on three real Docker engines: this machine's engine, a
 * second engine reached over ssh:// (Debian's openssh-server) and a third over
 * tcp:// with Docker's own TLS (scripts/fleet-test-hosts.sh starts both, each
 * with its own data root, socket and bridge). What a platform team does:
 * deploy, build through every host, route a repository, roll an upgrade host by
 * host while builds keep being served, lose a host mid-roll, see `npm run drift`
 * and `npm run doctor` name it while still checking the others, heal, tear down.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { EngineEvent, OpType } from "@pulumi/pulumi/automation";

import { CommandResult, createTestStack, DEPLOY_TIMEOUT_MS, mustRun, repoRoot, run, TestStack, writeBuildContext } from "./harness";

jest.setTimeout(DEPLOY_TIMEOUT_MS);

const versions = fs.readFileSync(path.join(repoRoot, "scripts/versions.sh"), "utf8");
const CURRENT = /BUILDKIT_VERSION="([^"]+)"/.exec(versions)![1];
const PREVIOUS = /BUILDKIT_PREVIOUS_VERSION="([^"]+)"/.exec(versions)![1];
const quiet = { onOutput: () => undefined };
const HOST_SCRIPT = path.join(repoRoot, "scripts/fleet-test-hosts.sh");
const HOSTS = ["local", "ssh-1", "tls-1"] as const;
type HostName = (typeof HOSTS)[number];

/** What `scripts/fleet-test-hosts.sh up` prints as `export NAME=value` lines. */
function hostEnvironment(printed: string): Record<string, string> {
  return Object.fromEntries([...printed.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
}

function changes(summary: Partial<Record<OpType, number>> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(summary ?? {}).filter(([op, count]) => op !== "same" && (count ?? 0) > 0)) as Record<string, number>;
}

describe("a fleet of three Docker hosts: local, ssh:// and tcp:// with TLS", () => {
  let testStack: TestStack;
  let hostEnv: Record<string, string>;
  /** The docker CLI's environment for each host (the same a build client needs for docker-container://). */
  let dockerEnv: Record<HostName, NodeJS.ProcessEnv>;
  let endpoints: { name: HostName; buildkitHost: string; dockerHost?: string }[];

  const docker = (host: HostName, args: string[]) => mustRun("docker", args, { env: dockerEnv[host] });
  const containerOf = (host: HostName) => `g-fleet-${host}`;
  /** The tag (of those tested) whose image the host's daemon runs: containers reference images by id. */
  const imageOf = (host: HostName) => {
    const running = docker(host, ["inspect", "-f", "{{.Image}}", containerOf(host)]).trim();
    const tag = [PREVIOUS, CURRENT].find((version) => run("docker", ["image", "inspect", "-f", "{{.Id}}", `moby/buildkit:${version}`], { env: dockerEnv[host] }).stdout.trim() === running);
    return tag ? `moby/buildkit:${tag}` : running;
  };
  const idOf = (host: HostName) => docker(host, ["inspect", "-f", "{{.Id}}", containerOf(host)]).trim();
  const removeLeftovers = () => {
    for (const host of HOSTS) {
      run("docker", ["rm", "-f", containerOf(host)], { env: dockerEnv[host] });
      run("docker", ["network", "rm", containerOf(host)], { env: dockerEnv[host] });
      run("docker", ["volume", "rm", "-f", `${containerOf(host)}-cache`], { env: dockerEnv[host] });
    }
  };

  beforeAll(async () => {
    const up = run("bash", [HOST_SCRIPT, "up"]);
    if (up.code !== 0) throw new Error(`scripts/fleet-test-hosts.sh up failed (run it by hand to see why):\n${up.stderr}`);
    hostEnv = hostEnvironment(up.stdout);
    // Clients of ssh:// (the provider, the smoke test's docker CLI, buildctl) call plain `ssh`:
    // the script's wrapper carries the test key and known host, as ~/.ssh/config would.
    process.env.PATH = `${hostEnv.FLEET_SSH_BIN}:${process.env.PATH}`;
    dockerEnv = {
      local: { ...process.env },
      "ssh-1": { ...process.env, DOCKER_HOST: hostEnv.FLEET_SSH_DOCKER_HOST },
      "tls-1": { ...process.env, DOCKER_HOST: hostEnv.FLEET_TLS_DOCKER_HOST, DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: hostEnv.FLEET_TLS_CERT_DIR },
    };
    removeLeftovers();

    testStack = await createTestStack("fleet", {
      image: `moby/buildkit:${PREVIOUS}`,
      // A host whose engine restarts brings its daemon back.
      restartPolicy: "unless-stopped",
    });
    // The host list the way the README says to write it: structured config, TLS files as secrets.
    const hosts: [HostName, Record<string, { value: string; secret?: boolean }>][] = [
      // A per-host override, and the mirror through an address that does not depend on docker0.
      ["local", { extraHosts: { value: JSON.stringify([`host.docker.internal:${hostEnv.FLEET_HOST_ADDRESS}`]) } }],
      ["ssh-1", { dockerHost: { value: hostEnv.FLEET_SSH_DOCKER_HOST } }],
      ["tls-1", { dockerHost: { value: hostEnv.FLEET_TLS_DOCKER_HOST } }],
    ];
    const config: Record<string, { value: string; secret?: boolean }> = {};
    hosts.forEach(([name, fields], index) => {
      const names = { name, containerName: containerOf(name), networkName: containerOf(name), cacheVolumeName: `${containerOf(name)}-cache` };
      for (const [field, value] of Object.entries(names)) config[`buildkit:hosts[${index}].${field}`] = { value };
      for (const [field, value] of Object.entries(fields)) config[`buildkit:hosts[${index}].${field}`] = value;
    });
    await testStack.stack.setAllConfig(config, true);
    // The TLS files with the README's own commands (a PEM starts with "-----": without `--` the CLI takes it for a flag).
    for (const [field, file] of [["dockerTlsCa", "ca.pem"], ["dockerTlsCert", "cert.pem"], ["dockerTlsKey", "key.pem"]]) {
      const pem = path.join(hostEnv.FLEET_TLS_CERT_DIR, file);
      mustRun("sh", ["-c", `pulumi config set --stack fleet --secret --path 'buildkit:hosts[2].${field}' -- "$(cat '${pem}')"`], { cwd: testStack.workDir, env: testStack.env });
    }
  });

  afterAll(async () => {
    // The broken host may still be down if a step failed: bring it back so destroy can reach it.
    if (hostEnv) run("bash", [HOST_SCRIPT, "start", "ssh"]);
    try {
      await testStack?.cleanup();
    } finally {
      if (dockerEnv) removeLeftovers();
      run("bash", [HOST_SCRIPT, "down"]);
    }
  });

  /** Seconds each `npm run drift`/`doctor` took, printed once: what these checks cost on a fleet. */
  const cliSeconds: string[] = [];
  /** `npm run drift` / `npm run doctor` as a user types them, against this test's stack. */
  const cli = (script: "drift" | "doctor", ...extra: string[]) => {
    const started = Date.now();
    const result = run("npm", ["run", "-s", script, "--", "--stack", "fleet", "--cwd", testStack.workDir, ...extra], { cwd: repoRoot, env: testStack.env });
    cliSeconds.push(`${[script, ...extra].join(" ")} ${(Date.now() - started) / 1000}s`);
    return result;
  };
  /** The exit code, showing what the command printed when it is not the expected one. */
  const expectExit = (result: CommandResult, code: number) => {
    if (result.code !== code) throw new Error(`expected exit ${code}, got ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
  };
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  /** `buildctl debug workers` against one host, as a client would: true when the daemon answers with a worker. */
  function probe(host: HostName): Promise<boolean> {
    const endpoint = endpoints.find((e) => e.name === host)!;
    return new Promise((resolve) => {
      execFile("buildctl", ["--addr", endpoint.buildkitHost, "debug", "workers"], { env: dockerEnv[host], timeout: 10_000 }, (error, stdout) =>
        resolve(!error && stdout.trim().split("\n").length >= 2),
      );
    });
  }

  it("deploys one proven daemon per host and outputs each host's endpoint", async () => {
    const result = await testStack.stack.up(quiet);
    endpoints = result.outputs.fleetEndpoints.value;
    expect(endpoints).toEqual([
      { name: "local", buildkitHost: "docker-container://g-fleet-local" },
      { name: "ssh-1", buildkitHost: "docker-container://g-fleet-ssh-1", dockerHost: hostEnv.FLEET_SSH_DOCKER_HOST },
      { name: "tls-1", buildkitHost: "docker-container://g-fleet-tls-1", dockerHost: hostEnv.FLEET_TLS_DOCKER_HOST },
    ]);
    for (const host of HOSTS) {
      expect(result.outputs.fleetSmokeTests.value[host]).toMatch(/^worker \S+ platforms linux\/amd64\S*; test build ok at \S+$/);
      expect(docker(host, ["inspect", "-f", "{{.State.Health.Status}}", containerOf(host)]).trim()).toBe("healthy");
      expect(imageOf(host)).toBe(`moby/buildkit:${PREVIOUS}`);
    }
    // Each daemon really is on its own engine: the others do not have its container.
    expect(run("docker", ["inspect", containerOf("ssh-1")], { env: dockerEnv.local }).code).not.toBe(0);
    expect(run("docker", ["inspect", containerOf("local")], { env: dockerEnv["tls-1"] }).code).not.toBe(0);
    expect(result.outputs.buildkitHost).toBeUndefined();
  });

  it("builds a Dockerfile with RUN steps through every host", () => {
    for (const host of HOSTS) {
      const endpoint = endpoints.find((e) => e.name === host)!;
      const context = writeBuildContext(`FROM busybox\nRUN echo "built on ${host}" > /where && cat /where\n`);
      const build = run("buildctl", ["--addr", endpoint.buildkitHost, "build", "--progress=plain", "--frontend", "dockerfile.v0", "--local", `context=${context}`, "--local", `dockerfile=${context}`], {
        env: dockerEnv[host],
      });
      expect({ host, code: build.code, stderr: build.code === 0 ? "" : build.stderr }).toEqual({ host, code: 0, stderr: "" });
      expect(build.stderr).toContain(`built on ${host}`);
    }
  });

  it("routes a repository to one host with `npm run route`, and a build goes there", () => {
    const saved = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "g-fleet-route-")), "fleet.json");
    fs.writeFileSync(saved, mustRun("pulumi", ["stack", "output", "fleetEndpoints", "--json", "--stack", "fleet"], { cwd: testStack.workDir, env: testStack.env }));
    const key = "github.com/acme/api:services/api";
    const printed = mustRun("npm", ["run", "-s", "route", "--", key, "--from", saved], { cwd: repoRoot });
    const chosen = /# fleet host: (\S+)/.exec(printed)![1] as HostName;
    expect(HOSTS).toContain(chosen);
    // Same key, same host: the cache stays where the repository builds.
    expect(mustRun("npm", ["run", "-s", "route", "--", key, "--from", saved], { cwd: repoRoot })).toBe(printed);
    const context = writeBuildContext("FROM busybox\nRUN echo routed\n");
    const shell = run("sh", ["-c", `${printed}\nbuildctl build --progress=plain --frontend dockerfile.v0 --local context=${context} --local dockerfile=${context}`], {
      // Only what the route printed, plus the ambient engine a "local" host means (DOCKER_HOST, if the user set one).
      env: { ...dockerEnv[chosen], DOCKER_HOST: chosen === "local" ? (process.env.DOCKER_HOST ?? "") : "" },
    });
    expect({ code: shell.code, stderr: shell.code === 0 ? "" : shell.stderr }).toEqual({ code: 0, stderr: "" });
    // The build's cache record is on the chosen host's daemon.
    const du = run("buildctl", ["--addr", `docker-container://${containerOf(chosen)}`, "du", "--verbose"], { env: dockerEnv[chosen] });
    expect(du.stdout).toContain("echo routed");
  });

  it("shows no changes in a second preview", async () => {
    const preview = await testStack.stack.preview(quiet);
    expect(changes(preview.changeSummary)).toEqual({});
  });

  it("rolls an upgrade host by host, at least two hosts serving at every moment, keeping each cache", async () => {
    // A marker in each cache volume: if the volume survives the roll, so does the marker.
    const marker = `kept across ${PREVIOUS} -> ${CURRENT} ${Date.now()}`;
    for (const host of HOSTS) docker(host, ["exec", containerOf(host), "sh", "-c", `echo "${marker}" > /var/lib/buildkit/fleet-marker`]);
    await testStack.stack.setConfig("buildkit:image", { value: `moby/buildkit:${CURRENT}` });
    const preview = await testStack.stack.preview(quiet);
    expect(changes(preview.changeSummary).delete).toBeUndefined();
    for (const host of HOSTS) expect(preview.stdout).toMatch(new RegExp(`\\+-\\s+docker:index:Container\\s+buildkit-${host}-daemon\\s+replace`));

    // Capacity as clients see it: every host probed in a loop for the whole `up`.
    const samples: { at: number; host: HostName; ok: boolean }[] = [];
    let polling = true;
    const pollers = HOSTS.map(async (host) => {
      while (polling) {
        const ok = await probe(host);
        samples.push({ at: Date.now(), host, ok });
        // A probe interval, not a wait for a condition: leaves the two cores to the deploy itself.
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    });
    const events: { at: number; urn: string; type: string; op: string; phase: "pre" | "done" }[] = [];
    const onEvent = (event: EngineEvent) => {
      const pre = event.resourcePreEvent?.metadata;
      const done = event.resOutputsEvent?.metadata;
      if (pre) events.push({ at: Date.now(), urn: pre.urn, type: pre.type, op: pre.op, phase: "pre" });
      if (done) events.push({ at: Date.now(), urn: done.urn, type: done.type, op: done.op, phase: "done" });
    };
    const started = Date.now();
    let result;
    try {
      result = await testStack.stack.up({ ...quiet, onEvent });
    } finally {
      polling = false;
      await Promise.all(pollers);
    }
    const finished = Date.now();
    for (const host of HOSTS) expect(result.outputs.fleetSmokeTests.value[host]).toMatch(/test build ok at \S+$/);

    // Order: host k+1's old container goes only after host k's new smoke test passed.
    const index = (host: HostName, type: string, phase: "pre" | "done", ops: string[]) =>
      events.findIndex((e) => e.urn.endsWith(`::buildkit-${host}-${type === "command:local:Command" ? "smoke-test" : "daemon"}`) && e.type === type && e.phase === phase && ops.includes(e.op));
    const stopped = HOSTS.map((host) => index(host, "docker:index/container:Container", "pre", ["delete-replaced", "replace"]));
    const proven = HOSTS.map((host) => index(host, "command:local:Command", "done", ["create-replacement", "replace"]));
    expect([...stopped, ...proven].every((i) => i >= 0)).toBe(true);
    expect(stopped[0]).toBeLessThan(proven[0]);
    expect(proven[0]).toBeLessThan(stopped[1]);
    expect(stopped[1]).toBeLessThan(proven[1]);
    expect(proven[1]).toBeLessThan(stopped[2]);

    // Capacity: at every sample, how many hosts answered at their latest probe.
    samples.sort((a, b) => a.at - b.at);
    const latest = new Map<HostName, boolean>(HOSTS.map((host) => [host, true]));
    let minimum: number = HOSTS.length;
    for (const sample of samples) {
      latest.set(sample.host, sample.ok);
      minimum = Math.min(minimum, [...latest.values()].filter(Boolean).length);
    }
    const outages = HOSTS.map((host) => outageSeconds(samples.filter((s) => s.host === host)));
    const report = {
      upgrade: `${PREVIOUS} -> ${CURRENT}`,
      upSeconds: (finished - started) / 1000,
      probes: samples.length,
      minimumHostsServing: minimum,
      outageSecondsPerHost: Object.fromEntries(HOSTS.map((host, i) => [host, outages[i]])),
      stoppedAt: Object.fromEntries(HOSTS.map((host, i) => [host, (events[stopped[i]].at - started) / 1000])),
      provenAt: Object.fromEntries(HOSTS.map((host, i) => [host, (events[proven[i]].at - started) / 1000])),
    };
    console.log(`fleet rolling upgrade: ${JSON.stringify(report)}`);
    fs.writeFileSync(path.join(os.tmpdir(), "g-fleet-capacity.json"), JSON.stringify({ report, samples: samples.map((s) => ({ ...s, at: s.at - started })) }, null, 1));
    // The probes can see a host go out (else "never below 2" would prove nothing): a probe
    // through ssh takes ~1 s and a host's outage 1-2 s, so one may fall between two probes;
    // the roll order above is proven by the engine's events, host by host ...
    expect(outages.filter((seconds) => seconds > 0).length).toBeGreaterThanOrEqual(1);
    // ... and never two at once.
    expect(minimum).toBeGreaterThanOrEqual(2);

    for (const host of HOSTS) {
      expect(imageOf(host)).toBe(`moby/buildkit:${CURRENT}`);
      expect({ host, marker: docker(host, ["exec", containerOf(host), "cat", "/var/lib/buildkit/fleet-marker"]).trim() }).toEqual({ host, marker });
    }
    expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
  });

  it("stops the roll at a host whose engine is down, names it, and leaves the hosts after it untouched", async () => {
    const tlsBefore = idOf("tls-1");
    mustRun("bash", [HOST_SCRIPT, "stop", "ssh"]);
    await testStack.stack.setConfig("buildkit:image", { value: `moby/buildkit:${PREVIOUS}` });
    const failure = await testStack.stack.up(quiet).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure).toBeDefined();
    // The error is about the ssh host, by its resource names.
    expect(String(failure)).toMatch(/buildkit-ssh-1/);
    // Host 1 rolled before the broken host; host 3 was never touched.
    expect(imageOf("local")).toBe(`moby/buildkit:${PREVIOUS}`);
    expect(idOf("tls-1")).toBe(tlsBefore);
    expect(imageOf("tls-1")).toBe(`moby/buildkit:${CURRENT}`);
  });

  it("drift and doctor name the dead host and still check the others; --heal heals what drifted there, and the stopped roll waits", () => {
    const tlsBefore = idOf("tls-1");
    // Out-of-band drift on a host that answers, while ssh-1 is still down.
    docker("local", ["stop", containerOf("local")]);
    const dead = `host ssh-1: unreachable: the Docker engine at ${escape(hostEnv.FLEET_SSH_DOCKER_HOST)} does not answer \\(.+\\)`;

    const drift = cli("drift");
    expectExit(drift, 1);
    expect(drift.stdout).toMatch(/^drift in stack fleet \(1 of 3 hosts unreachable, not checked\):$/m);
    expect(drift.stdout).toMatch(new RegExp(`^  ${dead}; not checked$`, "m"));
    expect(drift.stdout).toMatch(new RegExp(`^  host local: container ${containerOf("local")}: stopped out of band .*→ will be started$`, "m"));
    // The roll that stopped at ssh-1 is still pending on the host after it: shown, not hidden.
    expect(drift.stdout).toMatch(new RegExp(`^  host tls-1: container ${containerOf("tls-1")}: differs from the program .*→ will be replaced \\(image\\)$`, "m"));

    const doctor = cli("doctor");
    expectExit(doctor, 1);
    expect(doctor.stdout).toMatch(new RegExp(`^FAIL  host ssh-1: engine: unreachable at ${escape(hostEnv.FLEET_SSH_DOCKER_HOST)}: .+$`, "m"));
    expect(doctor.stdout).toMatch(new RegExp(`^FAIL  host local: container ${containerOf("local")}: not running`, "m"));
    expect(doctor.stdout).toMatch(new RegExp(`^ok    host tls-1: buildctl --addr docker-container://${containerOf("tls-1")} debug workers: 1 worker`, "m"));
    // One line per host at the end.
    const summary = doctor.stdout.slice(doctor.stdout.indexOf("hosts of stack fleet:"));
    expect(summary.split("\n").filter((line) => /^(ok|FAIL) +host /.test(line))).toEqual([
      expect.stringMatching(/^FAIL  host local: \d+ checks? failed$/),
      `FAIL  host ssh-1: unreachable at ${hostEnv.FLEET_SSH_DOCKER_HOST}`,
      "ok    host tls-1: healthy",
    ]);
    expect(doctor.stdout).toMatch(/^2 of 3 hosts failed: stack fleet$/m);

    // And a pause on the TLS host, behind the stopped roll: unpausing it must not roll it.
    docker("tls-1", ["pause", containerOf("tls-1")]);
    const heal = cli("drift", "--heal");
    expectExit(heal, 1);
    expect(heal.stdout).toMatch(/^heal: host ssh-1 skipped: unreachable \(.+\)$/m);
    expect(heal.stdout).toMatch(new RegExp(`^heal: host tls-1: docker unpause ${containerOf("tls-1")}$`, "m"));
    expect(heal.stdout).toMatch(new RegExp(`^heal: pulumi up --refresh --target '[^']+::buildkit-local-daemon'( --target '[^']+::buildkit-local-[a-z-]+')* --policy-pack policy --policy-pack-config policy/config\\.json --stack fleet$`, "m"));
    expect(heal.stdout).toMatch(/^healed: stack fleet on the hosts that answer \(skipped: ssh-1\)$/m);
    expect(docker("local", ["inspect", "-f", "{{.State.Running}}", containerOf("local")]).trim()).toBe("true");
    expect(docker("tls-1", ["inspect", "-f", "{{.State.Paused}}", containerOf("tls-1")]).trim()).toBe("false");
    // The heal did not push the roll past the dead host: tls-1 keeps its container until ssh-1 is back.
    expect(idOf("tls-1")).toBe(tlsBefore);
  });

  it("heals: with the engine back, the roll resumes where it stopped and ends clean", async () => {
    mustRun("bash", [HOST_SCRIPT, "start", "ssh"]);
    const result = await testStack.stack.up({ ...quiet, refresh: true });
    for (const host of HOSTS) {
      expect(result.outputs.fleetSmokeTests.value[host]).toMatch(/test build ok at \S+$/);
      expect(imageOf(host)).toBe(`moby/buildkit:${PREVIOUS}`);
    }
    expect(changes((await testStack.stack.preview(quiet)).changeSummary)).toEqual({});
    const drift = cli("drift");
    expectExit(drift, 0);
    expect(drift.stdout.trim().split("\n")).toEqual([
      expect.stringMatching(/^no drift: stack fleet matches the engines of all 3 hosts \(/),
      ...HOSTS.map((host) => `  host ${host}: no drift (1 container checked)`),
    ]);
    console.log(`fleet drift and doctor runs: ${cliSeconds.join(", ")}`);
    // Stopping and starting a host engine (it has address pools of its own) leaves the Debian engine's default
    // bridge on this machine alone: dockerd deletes it on such a restart unless live-restore is on.
    const defaultBridge = mustRun("docker", ["-H", "unix:///var/run/docker.sock", "network", "inspect", "bridge", "-f", '{{index .Options "com.docker.network.bridge.name"}}']).trim();
    expect(run("ip", ["link", "show", defaultBridge]).code).toBe(0);
  });

  it("destroys every host's daemon, network and cache volume", async () => {
    await testStack.stack.destroy(quiet);
    for (const host of HOSTS) {
      expect(run("docker", ["inspect", containerOf(host)], { env: dockerEnv[host] }).code).not.toBe(0);
      expect(run("docker", ["volume", "inspect", `${containerOf(host)}-cache`], { env: dockerEnv[host] }).code).not.toBe(0);
    }
  });
});

/** Seconds a host was observed out: from its first failed probe to the next successful one, summed. */
function outageSeconds(samples: { at: number; ok: boolean }[]): number {
  let total = 0;
  let downSince: number | undefined;
  for (const sample of samples) {
    if (!sample.ok && downSince === undefined) downSince = sample.at;
    if (sample.ok && downSince !== undefined) {
      total += sample.at - downSince;
      downSince = undefined;
    }
  }
  return total / 1000;
}
