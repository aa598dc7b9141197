/**
 * How drift and doctor reach a stack's engines before they touch one: which
 * recorded resources are on which host, each engine's docker environment (TLS
 * files in a private directory, gone afterwards), and which URNs a dead host
 * keeps out of the preview.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { dockerCommandFor, engineOfUrn, openEngine, stackEngines, unreachableExcludes, unreachableLine } from "../../cli/stack-engines";
import { COMMAND_TYPE, CONTAINER_TYPE } from "../../components/resource-types";
import { TLS, childUrn, fleetState, hostResources, hostStack, providerUrn, singleHostState, stackUrn } from "./fleet-state";

const fleetHostsOf = (state: Parameters<typeof stackEngines>[0]) => stackEngines(state).engines;

describe("the engines of a stack, from its state", () => {
  it("are one for a single-host stack: the engine its provider recorded, holding everything", () => {
    const state = singleHostState();
    const { fleet, engines } = stackEngines(state);
    expect(fleet).toBe(false);
    expect(engines).toEqual([expect.objectContaining({ host: undefined, dockerHost: "unix:///var/run/docker.sock", urns: state.map((r) => r.urn) })]);
  });
});

describe("the hosts of a fleet, from its state", () => {
  it("are a fleet's", () => {
    expect(stackEngines(fleetState()).fleet).toBe(true);
  });

  it("come in roll order, each with its engine, its TLS files only where its provider has them", () => {
    const hosts = fleetHostsOf(fleetState())!;
    expect(hosts.map((h) => [h.host, h.dockerHost, h.tls])).toEqual([
      ["local", "unix:///run/buildkit-stack/docker-29.sock", undefined],
      ["ssh-1", "ssh://root@127.0.0.1:18421", undefined],
      ["tls-1", "tcp://127.0.0.1:18422", TLS],
    ]);
  });

  it("own every resource declared for them, the smoke test on the command provider included, and nothing of another host", () => {
    const hosts = fleetHostsOf(fleetState())!;
    const ssh = hosts.find((h) => h.host === "ssh-1")!;
    expect(new Set(ssh.urns)).toEqual(
      new Set([
        providerUrn("ssh-1"),
        stackUrn("ssh-1"),
        ...["cache", "network", "image", "daemon", "smoke-test"].map((suffix) => hostResources("ssh-1", {}).find((r) => r.urn.endsWith(`-${suffix}`))!.urn),
      ]),
    );
    expect(hosts.flatMap((h) => h.urns).length).toBe(new Set(hosts.flatMap((h) => h.urns)).size);
    expect(engineOfUrn(hosts, childUrn("tls-1", COMMAND_TYPE, "smoke-test"))?.host).toBe("tls-1");
  });

  it("claim a resource the program would add by its name, the longest host name first", () => {
    const state = [...fleetState(), hostStack("ssh-1-big"), ...hostResources("ssh-1-big", { host: "ssh://root@10.0.0.9" })];
    const hosts = fleetHostsOf(state)!;
    expect(engineOfUrn(hosts, childUrn("ssh-1-big", CONTAINER_TYPE, "extra"))?.host).toBe("ssh-1-big");
    expect(engineOfUrn(hosts, childUrn("ssh-1", CONTAINER_TYPE, "extra"))?.host).toBe("ssh-1");
    expect(engineOfUrn(hosts, "urn:pulumi:fa-unit::buildkit::pulumi:pulumi:Stack::buildkit-fa-unit")).toBeUndefined();
  });
});

describe("a dead host kept out of the preview", () => {
  const hosts = fleetHostsOf(fleetState())!;

  it("excludes nothing when every host answers: the whole stack is previewed, as for one host", () => {
    expect(unreachableExcludes(hosts, new Set())).toBeUndefined();
  });

  it("excludes exactly the dead host's resources, so the hosts after it in the roll are still checked", () => {
    const excluded = unreachableExcludes(hosts, new Set(["ssh-1"]))!;
    expect(new Set(excluded)).toEqual(new Set(hosts.find((h) => h.host === "ssh-1")!.urns));
    expect(excluded.some((urn) => urn.includes("buildkit-tls-1") || urn.includes("buildkit-local"))).toBe(false);
  });

  it("is named with its endpoint and the engine's own error", () => {
    expect(unreachableLine(hosts[1], "Cannot connect to the Docker daemon")).toBe(
      "host ssh-1: unreachable: the Docker engine at ssh://root@127.0.0.1:18421 does not answer (Cannot connect to the Docker daemon)",
    );
  });
});

describe("each host's docker environment", () => {
  const hosts = fleetHostsOf(fleetState())!;
  const ambient = { PATH: process.env.PATH, DOCKER_HOST: "unix:///elsewhere.sock", DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: "/home/me/.docker/other" };

  it("points a TLS host's docker CLI at its files, in a directory only this user can read, removed afterwards", () => {
    const engine = openEngine(hosts[2], ambient);
    const dir = engine.env.DOCKER_CERT_PATH!;
    try {
      expect(engine.env).toMatchObject({ DOCKER_HOST: "tcp://127.0.0.1:18422", DOCKER_TLS_VERIFY: "1" });
      expect(path.dirname(dir)).toBe(os.tmpdir());
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      for (const [file, content] of [["ca.pem", TLS.ca], ["cert.pem", TLS.cert], ["key.pem", TLS.key]]) {
        expect(fs.readFileSync(path.join(dir, file), "utf8")).toBe(content);
        expect(fs.statSync(path.join(dir, file)).mode & 0o777).toBe(0o600);
      }
    } finally {
      engine.close();
    }
    expect(fs.existsSync(dir)).toBe(false);
  });

  it("drops the shell's TLS settings for a host without TLS: they belong to another engine", () => {
    const engine = openEngine(hosts[1], ambient);
    expect(engine.env.DOCKER_HOST).toBe("ssh://root@127.0.0.1:18421");
    expect(engine.env.DOCKER_TLS_VERIFY).toBeUndefined();
    expect(engine.env.DOCKER_CERT_PATH).toBeUndefined();
    engine.close();
  });

  it("gives the user a docker line for the host's engine, never the TLS key itself", () => {
    expect(dockerCommandFor(hosts[1], ["unpause", "bk-fa-ssh-1"])).toBe("DOCKER_HOST=ssh://root@127.0.0.1:18421 docker unpause bk-fa-ssh-1");
    const tls = dockerCommandFor(hosts[2], ["unpause", "bk-fa-tls-1"]);
    expect(tls).toMatch(/^DOCKER_HOST=tcp:\/\/127\.0\.0\.1:18422 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=.* docker unpause bk-fa-tls-1$/);
    expect(tls).not.toContain("PRIVATE KEY");
  });
});
