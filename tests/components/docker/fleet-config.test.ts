/**
 * `buildkit:hosts`: every host is the stack's base configuration with its own
 * overrides, held to parseDockerSettings' rules; every problem names its host; names
 * are derived per host; a stack without the list is not a fleet.
 */
import * as fs from "fs";
import * as path from "path";

import { load as loadYaml } from "js-yaml";

import { ConfigError } from "../../../components/core/config-keys";
import { FleetHostSettings, parseFleetSettings } from "../../../components/docker/fleet-config";
import { makeCertificates, tlsSettings } from "../certificates";

const PEM = (what: string) => `-----BEGIN ${what}-----\nx\n-----END ${what}-----`;
// buildkitd's own listener TLS, checked by config with node:crypto: real certificates for both hosts' containers.
const listenerCertificates = makeCertificates({ serverSans: ["DNS:buildkitd-a", "DNS:buildkitd-b", "IP:127.0.0.1"] });
const LISTENER_TLS = tlsSettings(listenerCertificates);
const TLS = { dockerTlsCa: PEM("CERTIFICATE"), dockerTlsCert: PEM("CERTIFICATE"), dockerTlsKey: PEM("PRIVATE KEY") };

/** Raw config as allConfig() hands it over: structured values arrive as JSON strings. */
function raw(hosts: unknown, base: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...base, "buildkit:hosts": JSON.stringify(hosts) };
}

function problemsOf(config: Record<string, unknown>): string[] {
  let fleet: FleetHostSettings[] | undefined;
  try {
    fleet = parseFleetSettings(config, { stack: "fleet" });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error(`config was accepted: ${JSON.stringify(fleet)}`);
}

describe("a stack without buildkit:hosts", () => {
  it("is not a fleet", () => {
    expect(parseFleetSettings({ "buildkit:memory": "1g" }, { stack: "dev" })).toBeUndefined();
  });
});

describe("a fleet", () => {
  const fleet = parseFleetSettings(
    raw(
      [
        { name: "local" },
        { name: "ssh-1", dockerHost: "ssh://ci@build-1", memory: "4g", maxParallelism: 8 },
        { name: "tls-1", dockerHost: "tcp://build-2:2376", ...TLS, containerName: "bk" },
      ],
      { "buildkit:memory": "1g", "buildkit:cpus": "1", "buildkit:registryMirrors": '["http://host.docker.internal:5000"]' },
    ),
    { stack: "fleet" },
  )!;

  it("keeps the hosts in the order given: the roll order", () => {
    expect(fleet.map((host) => host.name)).toEqual(["local", "ssh-1", "tls-1"]);
  });

  it("gives every host the base settings with its own overrides on top", () => {
    expect(fleet[0].settings).toMatchObject({ memoryBytes: 1024 ** 3, cpus: 1, registryMirrors: ["http://host.docker.internal:5000"] });
    expect(fleet[0].settings.dockerHost).toBeUndefined();
    expect(fleet[1].settings).toMatchObject({ memoryBytes: 4 * 1024 ** 3, cpus: 1, maxParallelism: 8, dockerHost: "ssh://ci@build-1" });
    expect(fleet[2].settings.dockerHost).toBe("tcp://build-2:2376");
  });

  it("gives a host another platform as an override, the others keeping what their daemons detect", () => {
    const hosts = parseFleetSettings(raw([{ name: "amd" }, { name: "arm", platforms: ["linux/arm64"] }]), { stack: "fleet" })!;
    expect(hosts.map((h) => [h.name, h.settings.platforms])).toEqual([["amd", []], ["arm", ["linux/arm64"]]]);
  });

  it("derives container, network and cache volume names from the host's name unless set", () => {
    expect(fleet.map((host) => [host.settings.containerName, host.settings.networkName, host.settings.cacheVolumeName])).toEqual([
      ["buildkitd-local", "buildkit-fleet-local", "buildkit-fleet-local-cache"],
      ["buildkitd-ssh-1", "buildkit-fleet-ssh-1", "buildkit-fleet-ssh-1-cache"],
      ["bk", "buildkit-fleet-tls-1", "buildkit-fleet-tls-1-cache"],
    ]);
  });

  it("carries a tcp:// host's Docker TLS material, and none for the others", () => {
    expect(fleet[2].dockerTls).toEqual({ ca: TLS.dockerTlsCa, cert: TLS.dockerTlsCert, key: TLS.dockerTlsKey });
    expect(fleet[0].dockerTls).toBeUndefined();
    expect(fleet[1].dockerTls).toBeUndefined();
  });

  it("accepts the host list as structured config, not only as a JSON string", () => {
    const hosts = parseFleetSettings({ "buildkit:hosts": [{ name: "a" }, { name: "b", "buildkit:cpus": "2" }] }, { stack: "s" })!;
    expect(hosts[1].settings.cpus).toBe(2);
  });

  it("accepts the example stack file Pulumi.fleet.yaml", () => {
    const file = loadYaml(fs.readFileSync(path.join(__dirname, "../../../Pulumi.fleet.yaml"), "utf8")) as { config: Record<string, unknown> };
    // Secrets in the example are placeholders the parser must not see as ciphertext objects.
    const config = Object.fromEntries(Object.entries(file.config).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)]));
    const hosts = parseFleetSettings(config, { stack: "fleet" })!;
    expect(hosts.map((host) => host.name)).toEqual(["local", "build-1", "build-2"]);
  });
});

describe("a fleet's problems, each naming its host", () => {
  it.each([
    ["a bad override", [{ name: "a" }, { name: "b", memory: "4 gigs" }], ['host "b": buildkit:memory is "4 gigs"; expected a size in docker\'s units']],
    ["an unknown override", [{ name: "a", memroy: "1g" }], ['host "a": buildkit:memroy is not a setting this program reads']],
    ["a cross-key rule broken by an override", [{ name: "a" }, { name: "b", tcpPort: 1234 }], ['host "b": buildkit:tcpPort is 1234 but no TLS is configured']],
    ["a missing name", [{ dockerHost: "ssh://x@y" }], ['host "#0": buildkit:hosts[0].name is undefined; expected 1 to 32 lowercase letters']],
    ["a name docker cannot use", [{ name: "Build_1" }], ['host "Build_1": buildkit:hosts[0].name is "Build_1"; expected 1 to 32 lowercase']],
    ["a duplicate name", [{ name: "a" }, { name: "a" }], ['host "a": buildkit:hosts[1].name "a" is used by an earlier host']],
    ["a tcp:// host without TLS", [{ name: "a", dockerHost: "tcp://b:2376" }], ['host "a": buildkit:hosts[0]: dockerHost is "tcp://b:2376" but no Docker TLS material is set']],
    ["partial TLS material", [{ name: "a", dockerHost: "tcp://b:2376", dockerTlsCa: PEM("C") }], ['host "a": buildkit:hosts[0].dockerTlsCa set but buildkit:hosts[0].dockerTlsCert, buildkit:hosts[0].dockerTlsKey not']],
    ["TLS material that is not PEM", [{ name: "a", dockerHost: "tcp://b:2376", ...TLS, dockerTlsKey: "secret" }], ['host "a": buildkit:hosts[0].dockerTlsKey is [secret]; expected a PEM-encoded private key']],
    ["TLS material for an ssh:// host", [{ name: "a", dockerHost: "ssh://u@b", ...TLS }], ['host "a": buildkit:hosts[0] has Docker TLS material but its dockerHost is "ssh://u@b"']],
    ["two hosts claiming one container on one engine", [{ name: "a", containerName: "bk" }, { name: "b", containerName: "bk" }], ['host "b": its container "bk" on the local engine is already host "a"\'s']],
    ["two hosts claiming one port on one engine", [{ name: "a", tcpPort: 1234, ...LISTENER_TLS }, { name: "b", tcpPort: 1234, ...LISTENER_TLS }], ['host "b": its TCP port "127.0.0.1:1234" on the local engine is already host "a"\'s']],
    ["a platform misspelt on one host", [{ name: "a" }, { name: "arm", platforms: ["linux/aarch64"] }], ['host "arm": buildkit:platforms is ["linux/aarch64"]; expected a list of platforms like ["linux/arm64"]']],
    ["nested hosts", [{ name: "a", hosts: [] }], ['host "a": buildkit:hosts[0] sets buildkit:hosts; hosts cannot be nested']],
  ])("refuses %s", (_what, hosts, expected) => {
    const problems = problemsOf(raw(hosts));
    for (const text of expected) expect(problems).toContainEqual(expect.stringContaining(text));
  });

  it("refuses an empty list or one that is not a list, saying how to go back to one host", () => {
    for (const hosts of [[], { name: "a" }, "nope"]) {
      expect(problemsOf({ "buildkit:hosts": typeof hosts === "string" ? hosts : JSON.stringify(hosts) })).toEqual([
        expect.stringMatching(/^buildkit:hosts is .*; expected a non-empty list of hosts.*remove buildkit:hosts for a single-host stack\)$/),
      ]);
    }
  });

  it("reports a base problem once for all hosts it affects, and every host's own problems, together", () => {
    const problems = problemsOf(raw([{ name: "a" }, { name: "b", cpus: "lots" }], { "buildkit:memory": "x" }));
    expect(problems).toEqual([
      expect.stringMatching(/^hosts "a", "b": buildkit:memory is "x"/),
      expect.stringMatching(/^host "b": buildkit:cpus is "lots"/),
    ]);
  });

  it("holds production hosts to production rules, host by host", () => {
    const problems = problemsOf(raw([{ name: "big", memory: "8g", cpus: 4, cacheMaxUsedSpace: "50g" }, { name: "small" }], { "buildkit:production": "true", "buildkit:allowPrivileged": "true" }));
    expect(problems).toEqual([
      expect.stringMatching(/^host "small": buildkit:memory is required when buildkit:production is true/),
      expect.stringMatching(/^host "small": buildkit:cpus is required/),
      expect.stringMatching(/^host "small": buildkit:cacheMaxUsedSpace is required/),
    ]);
  });
});
