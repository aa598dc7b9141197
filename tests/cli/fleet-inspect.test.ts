/**
 * How drift and doctor see a fleet before they touch an engine: which
 * recorded resources are on which host, each host's docker environment (TLS
 * files in a private directory, gone afterwards), which URNs a dead host
 * keeps out of the preview, and a bounded engine probe.
 */
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

import {
  dockerCommandFor,
  fleetHostsOf,
  hostOfUrn,
  openHostEngine,
  probeEngine,
  unreachableExcludes,
  unreachableLine,
} from "../../cli/fleet-inspect";
import { COMMAND_TYPE, CONTAINER_TYPE } from "../../components/resource-types";
import { TLS, childUrn, fleetState, hostResources, providerUrn, singleHostState, stackUrn } from "./fleet-state";

describe("the hosts of a fleet, from its state", () => {
  it("are not there for a single-host stack", () => {
    expect(fleetHostsOf(singleHostState())).toBeUndefined();
  });

  it("come in roll order, each with its engine, its TLS files only where its provider has them", () => {
    const hosts = fleetHostsOf(fleetState())!;
    expect(hosts.map((h) => [h.name, h.dockerHost, h.tls])).toEqual([
      ["local", "unix:///run/buildkit-stack/docker-29.sock", undefined],
      ["ssh-1", "ssh://root@127.0.0.1:18421", undefined],
      ["tls-1", "tcp://127.0.0.1:18422", TLS],
    ]);
  });

  it("own every resource declared for them, the smoke test on the command provider included, and nothing of another host", () => {
    const hosts = fleetHostsOf(fleetState())!;
    const ssh = hosts.find((h) => h.name === "ssh-1")!;
    expect(new Set(ssh.urns)).toEqual(
      new Set([
        providerUrn("ssh-1"),
        stackUrn("ssh-1"),
        ...["cache", "network", "image", "daemon", "smoke-test"].map((suffix) => hostResources("ssh-1", {}).find((r) => r.urn.endsWith(`-${suffix}`))!.urn),
      ]),
    );
    expect(hosts.flatMap((h) => h.urns).length).toBe(new Set(hosts.flatMap((h) => h.urns)).size);
    expect(hostOfUrn(hosts, childUrn("tls-1", COMMAND_TYPE, "smoke-test"))?.name).toBe("tls-1");
  });

  it("claim a resource the program would add by its name, the longest host name first", () => {
    const state = [...fleetState(), ...hostResources("ssh-1-big", { host: "ssh://root@10.0.0.9" })];
    const hosts = fleetHostsOf(state)!;
    expect(hostOfUrn(hosts, childUrn("ssh-1-big", CONTAINER_TYPE, "extra"))?.name).toBe("ssh-1-big");
    expect(hostOfUrn(hosts, childUrn("ssh-1", CONTAINER_TYPE, "extra"))?.name).toBe("ssh-1");
    expect(hostOfUrn(hosts, "urn:pulumi:fa-unit::buildkit::pulumi:pulumi:Stack::buildkit-fa-unit")).toBeUndefined();
  });
});

describe("a dead host kept out of the preview", () => {
  const hosts = fleetHostsOf(fleetState())!;

  it("excludes nothing when every host answers: the whole stack is previewed, as for one host", () => {
    expect(unreachableExcludes(hosts, new Set())).toBeUndefined();
  });

  it("excludes exactly the dead host's resources, so the hosts after it in the roll are still checked", () => {
    const excluded = unreachableExcludes(hosts, new Set(["ssh-1"]))!;
    expect(new Set(excluded)).toEqual(new Set(hosts.find((h) => h.name === "ssh-1")!.urns));
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
    const engine = openHostEngine(hosts[2], ambient);
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
      engine.cleanup();
    }
    expect(fs.existsSync(dir)).toBe(false);
  });

  it("drops the shell's TLS settings for a host without TLS: they belong to another engine", () => {
    const engine = openHostEngine(hosts[1], ambient);
    expect(engine.env.DOCKER_HOST).toBe("ssh://root@127.0.0.1:18421");
    expect(engine.env.DOCKER_TLS_VERIFY).toBeUndefined();
    expect(engine.env.DOCKER_CERT_PATH).toBeUndefined();
    engine.cleanup();
  });

  it("gives the user a docker line for the host's engine, never the TLS key itself", () => {
    expect(dockerCommandFor(hosts[1], ["unpause", "bk-fa-ssh-1"])).toBe("DOCKER_HOST=ssh://root@127.0.0.1:18421 docker unpause bk-fa-ssh-1");
    const tls = dockerCommandFor(hosts[2], ["unpause", "bk-fa-tls-1"]);
    expect(tls).toMatch(/^DOCKER_HOST=tcp:\/\/127\.0\.0\.1:18422 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=.* docker unpause bk-fa-tls-1$/);
    expect(tls).not.toContain("PRIVATE KEY");
  });
});

describe("probing a host's engine", () => {
  it("says why an engine does not answer", async () => {
    const probe = await probeEngine({ ...process.env, DOCKER_HOST: "unix:///nonexistent/bk-fa-docker.sock" });
    expect(probe).toEqual({ ok: false, reason: expect.stringMatching(/nonexistent\/bk-fa-docker\.sock/) });
  });

  it("gives up on an engine that accepts but never answers, within its bound", async () => {
    // A listener that takes the connection and says nothing: a hung ssh or a wedged dockerd, as the client sees it.
    const sockets: net.Socket[] = [];
    const server = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const started = Date.now();
      const probe = await probeEngine({ ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: "" }, 1500);
      expect(probe).toEqual({ ok: false, reason: "docker version did not answer within 1.5s" });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    }
  });
});
