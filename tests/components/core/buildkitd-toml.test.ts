/** buildkitd.toml, the same file for every target (components/core/buildkitd-toml.ts). */
import { parse as parseToml } from "smol-toml";

import { renderBuildkitdToml } from "../../../components/core/buildkitd-toml";
import { parseDockerSettings } from "../../../components/docker/config";

describe("buildkitd.toml", () => {
  // The file as a daemon with these settings gets it: from raw config, through a target's validation.
  const render = (raw: Record<string, unknown>) => renderBuildkitdToml(parseDockerSettings(raw, { stack: "dev" }));

  it("writes the GC floor, ceiling and free space in BuildKit's current fields, in bytes", () => {
    const toml = parseToml(
      render({ "buildkit:cacheReservedSpace": "1g", "buildkit:cacheMaxUsedSpace": "10g", "buildkit:cacheMinFreeSpace": "5g", "buildkit:maxParallelism": "4" }),
    ) as any;
    expect(toml.worker.oci).toEqual({
      enabled: true,
      gc: true,
      reservedSpace: 1024 ** 3,
      maxUsedSpace: 10 * 1024 ** 3,
      minFreeSpace: 5 * 1024 ** 3,
      "max-parallelism": 4,
    });
    expect(toml.worker.containerd).toEqual({ enabled: false });
  });

  it("writes only the GC fields that are configured", () => {
    const toml = parseToml(render({})) as any;
    expect(toml).toEqual({ debug: false, worker: { oci: { enabled: true, gc: true }, containerd: { enabled: false } } });
  });

  it("advertises the configured platforms from the OCI worker, first the default, and none unless configured", () => {
    const toml = parseToml(render({ "buildkit:platforms": '["linux/arm64","linux/arm/v7"]' })) as any;
    expect(toml.worker.oci.platforms).toEqual(["linux/arm64", "linux/arm/v7"]);
    expect((parseToml(render({})) as any).worker.oci.platforms).toBeUndefined();
  });

  it("never writes the deprecated keepBytes or gckeepstorage", () => {
    const text = render({ "buildkit:cacheReservedSpace": "1g", "buildkit:cacheMaxUsedSpace": "10g", "buildkit:cacheMinFreeSpace": "1g" });
    expect(text).not.toMatch(/keepBytes|keepDuration|gckeepstorage/i);
  });

  it("points Docker Hub at the mirrors and trusts a plain-HTTP one", () => {
    const toml = parseToml(render({ "buildkit:registryMirrors": '["http://host.docker.internal:5000","https://mirror.example.com","mirror2.example.com"]' })) as any;
    expect(toml.registry).toEqual({
      "docker.io": { mirrors: ["host.docker.internal:5000", "mirror.example.com", "mirror2.example.com"] },
      "host.docker.internal:5000": { http: true, insecure: true },
    });
  });

  it("sets debug logging, and no registry section without mirrors", () => {
    const toml = parseToml(render({ "buildkit:debug": "true" })) as any;
    expect(toml.debug).toBe(true);
    expect(toml.registry).toBeUndefined();
  });

  it("says where it came from", () => {
    expect(render({})).toMatch(/^# Rendered by buildkit-stack; edit the stack configuration, not this file\.\n/);
  });
});
