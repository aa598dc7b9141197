/**
 * The program (index.ts) without `buildkit:hosts`, under Pulumi mocks: it must
 * declare exactly the resources, under exactly the URNs, that it declared
 * before fleets existed, so an existing single-host stack upgrades with no
 * replacement. The list below is what the program on main registered when
 * fleets were added; it is written out, not computed, on purpose.
 */
import * as pulumi from "@pulumi/pulumi";

pulumi.runtime.setMocks(
  {
    newResource(args) {
      const state: Record<string, unknown> = { ...args.inputs };
      if (args.type === "docker:index/remoteImage:RemoteImage") state.imageId = "sha256:" + "1".repeat(64);
      if (args.type === "command:local:Command") state.stdout = "worker w platforms linux/amd64; test build ok";
      return { id: `${args.name}-id`, state };
    },
    call: () => ({}),
  },
  "buildkit",
  "dev",
  false,
);
pulumi.runtime.setAllConfig({
  "buildkit:memory": "1g",
  "buildkit:cpus": "1",
  "buildkit:registryMirrors": '["http://host.docker.internal:5000"]',
  "buildkit:extraHosts": '["host.docker.internal:host-gateway"]',
});
// eslint-disable-next-line @typescript-eslint/no-require-imports
// Not a cluster stack: the program exports its outputs themselves (a cluster stack's come once its cluster answered).
const program = require("../../index") as Exclude<typeof import("../../index"), Promise<unknown>>;

const promiseOf = <T>(output: pulumi.Output<T>): Promise<T> => new Promise((resolve) => output.apply(resolve));

describe("a stack without buildkit:hosts", () => {
  it("declares the same resources under the same URNs as before fleets existed", async () => {
    await promiseOf(program.smokeTestSummary!);
    // The mock monitor keeps every registration under the URN it computed, as the engine would.
    const monitor = (pulumi.runtime as unknown as { getMonitor(): { getRegisteredResources(): Map<string, unknown> } }).getMonitor();
    expect([...monitor.getRegisteredResources().keys()].sort()).toEqual(
      [
        "urn:pulumi:dev::buildkit::pulumi:providers:docker::docker-host",
        "urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack::buildkit",
        "urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack$docker:index/remoteImage:RemoteImage::buildkit-image",
        "urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack$docker:index/network:Network::buildkit-network",
        "urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack$docker:index/volume:Volume::buildkit-cache",
        "urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack$docker:index/container:Container::buildkit-daemon",
        "urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack$command:local:Command::buildkit-smoke-test",
        // Added since: the cache guard, a new resource (created on the next up; nothing above is replaced).
        "urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack$command:local:Command::buildkit-cache-owner",
      ].sort(),
    );
  });

  it("exports the single-host outputs, and no fleet outputs", async () => {
    expect(await promiseOf(program.buildkitHost!)).toBe("docker-container://buildkitd");
    expect(program.fleetEndpoints).toBeUndefined();
    expect(program.fleetSmokeTests).toBeUndefined();
    expect(program.fleetBuildxNodes).toBeUndefined();
  });
});
