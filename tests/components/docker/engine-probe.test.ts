/**
 * Engine-dependent behaviour without an engine: API version comparison, the
 * healthcheck each engine gets (start interval only from API 1.44), what the
 * component sends for it under Pulumi mocks, and the error when no engine
 * answers the version question.
 */
import * as net from "net";

import * as pulumi from "@pulumi/pulumi";

import { parseDockerSettings } from "../../../components/docker/config";
import { apiAtLeast, engineApiVersion, probeEngine, START_INTERVAL_MIN_API } from "../../../components/docker/engine-probe";

const containers: Record<string, any>[] = [];
pulumi.runtime.setMocks(
  {
    newResource(args) {
      if (args.type === "docker:index/container:Container") containers.push(args.inputs);
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "docker:index/remoteImage:RemoteImage") state.imageId = "sha256:" + "1".repeat(64);
      return { id: `${args.name}-id`, state };
    },
    call: () => ({}),
  },
  "buildkit",
  "dev",
  false,
);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { BuildkitStack, daemonHealthcheck } = require("../../../components/docker/buildkit-stack") as typeof import("../../../components/docker/buildkit-stack");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { DockerEngine } = require("../../../components/docker/docker-engine") as typeof import("../../../components/docker/docker-engine");

describe("apiAtLeast", () => {
  it.each([
    ["1.41", "1.44", false],
    ["1.43", "1.44", false],
    ["1.44", "1.44", true],
    ["1.51", "1.44", true],
    ["1.100", "1.44", true],
    ["2.0", "1.44", true],
    ["0.99", "1.44", false],
  ])("%s >= %s is %s", (version, minimum, expected) => {
    expect(apiAtLeast(version, minimum)).toBe(expected);
  });

  it("refuses what is not an API version, naming it", () => {
    expect(() => apiAtLeast("28.5.2", "1.44")).toThrow(/"28.5.2" is not a Docker API version/);
  });
});

describe("the daemon's healthcheck per engine", () => {
  const tests = ["CMD", "buildctl", "--addr", "unix:///run/buildkit/buildkitd.sock", "debug", "workers"];

  it.each(["1.41", "1.43"])("keeps the start interval out on API %s (Docker 20.10–24 drop it)", (api) => {
    expect(daemonHealthcheck("privileged", api)).toEqual({ tests, interval: "5s", timeout: "5s", retries: 3, startPeriod: "2s" });
  });

  it("keeps the older form when the engine's API is not known", () => {
    expect(daemonHealthcheck("privileged")).not.toHaveProperty("startInterval");
  });

  it.each([START_INTERVAL_MIN_API, "1.51", "1.56"])("probes every second during a 30 s start period on API %s", (api) => {
    expect(daemonHealthcheck("privileged", api)).toEqual({ tests, interval: "5s", timeout: "5s", retries: 3, startPeriod: "30s", startInterval: "1s" });
  });

  it("writes every duration as Go's time.Duration.String() reads it back (no perpetual diff)", () => {
    const goDuration = /^(\d+h)?(\d+m)?\d+s$|^\d+ms$/;
    for (const api of ["1.41", "1.51"]) {
      const check = daemonHealthcheck("rootless", api);
      for (const field of ["interval", "timeout", "startPeriod", "startInterval"] as const) {
        if (check[field] !== undefined) expect(String(check[field])).toMatch(goDuration);
      }
    }
  });
});

describe("the component's container healthcheck", () => {
  beforeEach(() => containers.splice(0));

  async function healthcheckFor(engineApiVersion: string | undefined): Promise<Record<string, unknown>> {
    const settings = parseDockerSettings({}, { stack: "dev" });
    const engine = new DockerEngine(`hc-${engineApiVersion ?? "unknown"}-docker`, { apiVersion: engineApiVersion });
    new BuildkitStack(`hc-${engineApiVersion ?? "unknown"}`, { ...settings, engine });
    await new Promise((resolve) => setImmediate(resolve));
    // Resources register asynchronously; wait (bounded) for the container.
    for (let i = 0; i < 100 && containers.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(containers).toHaveLength(1);
    return containers[0].healthcheck;
  }

  it("sends the start interval to an engine with API 1.51", async () => {
    expect(await healthcheckFor("1.51")).toMatchObject({ startPeriod: "30s", startInterval: "1s" });
  });

  it("does not send it to an engine with API 1.41", async () => {
    const check = await healthcheckFor("1.41");
    expect(check).toMatchObject({ startPeriod: "2s", interval: "5s" });
    expect(check.startInterval).toBeUndefined();
  });
});

describe("engineApiVersion", () => {
  it("fails naming the host and the fix when no engine answers", async () => {
    await expect(engineApiVersion("unix:///nonexistent/buildkit-stack-test.sock")).rejects.toThrow(
      /Could not ask the Docker engine at unix:\/\/\/nonexistent\/buildkit-stack-test\.sock for its API version.*point buildkit:dockerHost or DOCKER_HOST at one/s,
    );
  });
});

describe("probing an engine", () => {
  it("says why an engine does not answer, bounded", async () => {
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
