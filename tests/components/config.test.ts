import * as fs from "fs";
import * as path from "path";

import { load as loadYaml } from "js-yaml";

import {
  ConfigError,
  DEFAULT_IMAGE,
  DEFAULT_ROOTLESS_IMAGE,
  isPinned,
  parseSettings,
  parseSize,
} from "../../components/config";

/** Runs the parser and returns its problems, or fails the test if it accepted the config. */
function problemsOf(raw: Record<string, unknown>): string[] {
  try {
    parseSettings(raw, { stack: "dev" });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error(`config was accepted: ${JSON.stringify(raw)}`);
}

/** Values as pulumi.runtime.allConfig() hands them over: strings, namespaced keys. */
const BAD_CONFIGS: [string, Record<string, string>, string[]][] = [
  [
    "an unparseable memory size",
    {"buildkit:memory": "4 gigs"},
    [
        "buildkit:memory is \"4 gigs\"; expected a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples)"
    ],
  ],
  [
    "a TCP port without TLS",
    {"buildkit:tcpPort": "1234"},
    [
        "buildkit:tcpPort is 1234 but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root. Set buildkit:tlsCa, buildkit:tlsCert and buildkit:tlsKey (as secrets), or remove buildkit:tcpPort"
    ],
  ],
  [
    "a production stack without limits, ceiling or privilege decision",
    {"buildkit:production": "true"},
    [
        "buildkit:allowPrivileged is false (the default in production) but buildkit:rootless is false; buildkitd needs --privileged unless it runs rootless: set buildkit:rootless to true, or buildkit:allowPrivileged to true to accept a privileged daemon",
        "buildkit:memory is required when buildkit:production is true (expected a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples)); an unbounded daemon can starve everything else on the host",
        "buildkit:cpus is required when buildkit:production is true (expected a positive number of CPUs, like 1 or 2.5); an unbounded daemon can starve everything else on the host",
        "buildkit:cacheMaxUsedSpace is required when buildkit:production is true (expected a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples)); without a ceiling the build cache grows until the disk is full"
    ],
  ],
  [
    "a CA without certificate and key",
    {"buildkit:tlsCa": "-----BEGIN x"},
    [
        "buildkit:tlsCa is set but buildkit:tlsCert, buildkit:tlsKey are not; set all three TLS settings (CA, server certificate, server key) or none"
    ],
  ],
  [
    "a negative CPU count",
    {"buildkit:cpus": "-1"},
    [
        "buildkit:cpus is \"-1\"; expected a positive number of CPUs, like 1 or 2.5"
    ],
  ],
  [
    "an invalid image reference",
    {"buildkit:image": "Bad Image"},
    [
        "buildkit:image is \"Bad Image\"; expected an image reference like moby/buildkit:v0.32.2, registry:5000/moby/buildkit:TAG or moby/buildkit@sha256:<64 hex>"
    ],
  ],
  [
    "an unknown restart policy",
    {"buildkit:restartPolicy": "sometimes"},
    [
        "buildkit:restartPolicy is \"sometimes\"; expected one of no, always, unless-stopped, on-failure"
    ],
  ],
  [
    "a misspelt key",
    {"buildkit:memroy": "1g"},
    [
        "buildkit:memroy is not a setting this program reads; known settings: containerName, networkName, cacheVolumeName, image, rootless, allowPrivileged, production, memory, cpus, shmSize, restartPolicy, restartMaxRetries, logMaxSize, logMaxFiles, labels, cacheProtected, cacheReservedSpace, cacheMaxUsedSpace, cacheMinFreeSpace, maxParallelism, registryMirrors, extraHosts, debug, tcpPort, tcpAddress, tlsCa, tlsCert, tlsKey, tlsClientCert, tlsClientKey, smokeTest, dockerHost, requirePinnedImage"
    ],
  ],
  [
    "a port out of range",
    {"buildkit:tcpPort": "70000"},
    [
        "buildkit:tcpPort is \"70000\"; expected a TCP port from 1 to 65535"
    ],
  ],
  [
    "a TCP address without a port",
    {"buildkit:tcpAddress": "127.0.0.1"},
    [
        "buildkit:tcpAddress is set but buildkit:tcpPort is not; the address only applies to the TCP listener"
    ],
  ],
  [
    "retries without on-failure",
    {"buildkit:restartMaxRetries": "3"},
    [
        "buildkit:restartMaxRetries is 3 but buildkit:restartPolicy is \"no\"; retries apply only to on-failure"
    ],
  ],
  [
    "a GC floor above the ceiling",
    {"buildkit:cacheReservedSpace": "2g", "buildkit:cacheMaxUsedSpace": "1g"},
    [
        "buildkit:cacheReservedSpace (2147483648 bytes) is above buildkit:cacheMaxUsedSpace (1073741824 bytes); the floor must not exceed the ceiling"
    ],
  ],
  [
    "a boolean spelt yes",
    {"buildkit:rootless": "yes"},
    [
        "buildkit:rootless is \"yes\"; expected true or false"
    ],
  ],
  [
    "mirrors that are not a list",
    {"buildkit:registryMirrors": "mirror"},
    [
        "buildkit:registryMirrors is \"mirror\"; expected a list of registry hosts like [\"mirror.example.com\", \"http://host.docker.internal:5000\"] (http:// marks a plain-HTTP mirror)"
    ],
  ],
  [
    "an extra host without an address",
    {"buildkit:extraHosts": "[\"nohost\"]"},
    [
        "buildkit:extraHosts is \"[\\\"nohost\\\"]\"; expected a list of HOST:IP entries, like [\"host.docker.internal:host-gateway\"]"
    ],
  ],
  [
    "labels that are not a map",
    {"buildkit:labels": "[1]"},
    [
        "buildkit:labels is \"[1]\"; expected a map of label names to string values"
    ],
  ],
  [
    "a log size without unit",
    {"buildkit:logMaxSize": "10"},
    [
        "buildkit:logMaxSize is \"10\"; expected a json-file log size like 10m (k, m, g)"
    ],
  ],
  [
    "zero rotated log files",
    {"buildkit:logMaxFiles": "0"},
    [
        "buildkit:logMaxFiles is \"0\"; expected a whole number of rotated log files > 0"
    ],
  ],
  [
    "a fractional parallelism",
    {"buildkit:maxParallelism": "1.5"},
    [
        "buildkit:maxParallelism is \"1.5\"; expected a whole number of parallel build steps > 0"
    ],
  ],
  [
    "a Docker host without scheme",
    {"buildkit:dockerHost": "localhost"},
    [
        "buildkit:dockerHost is \"localhost\"; expected a Docker endpoint like unix:///var/run/docker.sock, ssh://user@host or tcp://host:2376"
    ],
  ],
  [
    "a container name starting with a dash",
    {"buildkit:containerName": "-bad"},
    [
        "buildkit:containerName is \"-bad\"; expected a docker object name: letters, digits, '_', '.', '-', starting with a letter or digit"
    ],
  ],
  [
    "a client certificate without its key",
    {"buildkit:tlsClientCert": "-----BEGIN c"},
    [
        "buildkit:tlsClientCert and buildkit:tlsClientKey go together; set both or neither"
    ],
  ],
  [
    "a TLS key that is not PEM, alone",
    {"buildkit:tlsKey": "nope"},
    [
        "buildkit:tlsKey is [secret]; expected a PEM-encoded server private key, set with `pulumi config set --secret`",
        "buildkit:tlsKey is set but buildkit:tlsCa, buildkit:tlsCert are not; set all three TLS settings (CA, server certificate, server key) or none"
    ],
  ],
  [
    "an untagged image where pinning is required",
    {"buildkit:requirePinnedImage": "true", "buildkit:image": "localhost:5000/moby/buildkit"},
    [
        "buildkit:image is \"localhost:5000/moby/buildkit\" but buildkit:requirePinnedImage is in force (default in production); expected a digest (@sha256:…) or a tag other than latest, like moby/buildkit:v0.32.2"
    ],
  ],
  [
    "privileges refused without rootless",
    {"buildkit:allowPrivileged": "false"},
    [
        "buildkit:allowPrivileged is false but buildkit:rootless is false; buildkitd needs --privileged unless it runs rootless: set buildkit:rootless to true, or buildkit:allowPrivileged to true to accept a privileged daemon"
    ],
  ],
  [
    "a latest image in production",
    {"buildkit:production": "true", "buildkit:allowPrivileged": "true", "buildkit:memory": "1g", "buildkit:cpus": "1", "buildkit:cacheMaxUsedSpace": "1g", "buildkit:image": "moby/buildkit:latest"},
    [
        "buildkit:image is \"moby/buildkit:latest\" but buildkit:requirePinnedImage is in force (default in production); expected a digest (@sha256:…) or a tag other than latest, like moby/buildkit:v0.32.2"
    ],
  ],
  [
    "a zero shm size",
    {"buildkit:shmSize": "0"},
    [
        "buildkit:shmSize is \"0\"; expected a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples)"
    ],
  ],
  [
    "an unparseable free-space floor",
    {"buildkit:cacheMinFreeSpace": "lots"},
    [
        "buildkit:cacheMinFreeSpace is \"lots\"; expected a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples)"
    ],
  ],
  [
    "a boolean spelt 1",
    {"buildkit:debug": "1"},
    [
        "buildkit:debug is \"1\"; expected true or false"
    ],
  ],
  [
    "a host name as TCP address",
    {"buildkit:tcpAddress": "localhost", "buildkit:tcpPort": "1"},
    [
        "buildkit:tcpAddress is \"localhost\"; expected an IP address of this Docker host to publish the TCP listener on, like 127.0.0.1",
        "buildkit:tcpPort is 1 but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root. Set buildkit:tlsCa, buildkit:tlsCert and buildkit:tlsKey (as secrets), or remove buildkit:tcpPort"
    ],
  ],
];

describe("bad stack configuration", () => {
  it.each(BAD_CONFIGS)("rejects %s with a message naming key, value and accepted form", (_title, raw, expected) => {
    expect(problemsOf(raw)).toEqual(expected);
  });

  it("reports every problem of a config in one error", () => {
    const problems = problemsOf({ "buildkit:memory": "4 gigs", "buildkit:restartPolicy": "sometimes", "buildkit:memroy": "1g", "buildkit:tcpPort": "1234" });
    expect(problems).toHaveLength(4);
    expect(problems.map((p) => p.split(" ")[0])).toEqual(["buildkit:memory", "buildkit:restartPolicy", "buildkit:memroy", "buildkit:tcpPort"]);
  });

  it("summarises the problems in the error message", () => {
    expect(() => parseSettings({ "buildkit:cpus": "0" }, { stack: "dev" })).toThrow(/^Invalid stack configuration \(1 problem\):\n  - buildkit:cpus is "0"/);
  });

  it("never echoes a secret value", () => {
    const problems = problemsOf({ "buildkit:tlsKey": "hunter2" });
    expect(problems.join("\n")).not.toContain("hunter2");
  });

  it("ignores other namespaces", () => {
    expect(parseSettings({ "aws:region": "eu-west-1" }, { stack: "dev" }).containerName).toBe("buildkitd");
  });
});

describe("defaults", () => {
  const settings = parseSettings({}, { stack: "staging" });

  it("names the container like the seed and the network and volume per stack", () => {
    expect(settings).toMatchObject({ containerName: "buildkitd", networkName: "buildkit-staging", cacheVolumeName: "buildkit-staging-cache" });
  });

  it("runs the pinned privileged image, allowed outside production, with a smoke test", () => {
    expect(settings).toMatchObject({ image: DEFAULT_IMAGE, rootless: false, allowPrivileged: true, smokeTest: true, restartPolicy: "no" });
    expect(settings).toMatchObject({ cacheProtected: false, requirePinnedImage: false, logMaxSize: "10m", logMaxFiles: 3, tcpAddress: "127.0.0.1" });
    expect(settings.tls).toBeUndefined();
  });

  it("switches to the rootless image in hardened mode", () => {
    expect(parseSettings({ "buildkit:rootless": "true" }, { stack: "dev" }).image).toBe(DEFAULT_ROOTLESS_IMAGE);
  });

  it("protects the cache, pins the image and restarts the daemon in production", () => {
    const production = parseSettings(
      { "buildkit:production": "true", "buildkit:allowPrivileged": "true", "buildkit:memory": "4g", "buildkit:cpus": "2", "buildkit:cacheMaxUsedSpace": "20g" },
      { stack: "prod" },
    );
    expect(production).toMatchObject({ restartPolicy: "unless-stopped", cacheProtected: true, requirePinnedImage: true, memoryBytes: 4 * 1024 ** 3, cpus: 2 });
  });

  it("reads booleans, numbers, lists and maps as config strings or as values", () => {
    const parsed = parseSettings(
      {
        "buildkit:debug": true,
        "buildkit:maxParallelism": "3",
        "buildkit:registryMirrors": '["http://mirror:5000"]',
        "buildkit:extraHosts": ["host.docker.internal:host-gateway"],
        "buildkit:labels": '{"team":"platform"}',
      },
      { stack: "dev" },
    );
    expect(parsed).toMatchObject({
      debug: true,
      maxParallelism: 3,
      registryMirrors: ["http://mirror:5000"],
      extraHosts: ["host.docker.internal:host-gateway"],
      labels: { team: "platform" },
    });
  });

  it("accepts a complete TLS listener", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----";
    const parsed = parseSettings(
      { "buildkit:tcpPort": "1234", "buildkit:tcpAddress": "0.0.0.0", "buildkit:tlsCa": pem, "buildkit:tlsCert": pem, "buildkit:tlsKey": pem },
      { stack: "dev" },
    );
    expect(parsed).toMatchObject({ tcpPort: 1234, tcpAddress: "0.0.0.0", tls: { ca: pem, cert: pem, key: pem } });
  });
});

describe("sizes in docker's units", () => {
  it.each([
    ["512m", 512 * 1024 ** 2],
    ["4g", 4 * 1024 ** 3],
    ["1.5g", 1.5 * 1024 ** 3],
    ["1024", 1024],
    ["4GiB", 4 * 1024 ** 3],
    ["64MB", 64 * 1024 ** 2],
    ["2T", 2 * 1024 ** 4],
  ])("reads %s as %d bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(["", "4 gigs", "-1g", "0", "g", "1.2.3m", "4x"])("refuses %j", (text) => {
    expect(parseSize(text)).toBeUndefined();
  });
});

describe("pinned images", () => {
  it.each([
    ["moby/buildkit:v0.32.2", true],
    ["moby/buildkit@sha256:" + "a".repeat(64), true],
    ["localhost:5000/moby/buildkit:v1", true],
    ["moby/buildkit:latest", false],
    ["moby/buildkit", false],
    ["localhost:5000/moby/buildkit", false],
  ])("%s is pinned: %s", (image, pinned) => {
    expect(isPinned(image as string)).toBe(pinned);
  });
});

describe("the repo's stack files", () => {
  const read = (stack: string) =>
    (loadYaml(fs.readFileSync(path.join(__dirname, "../..", `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> }).config;
  const projectDefaults = { "buildkit:containerName": "buildkitd", "buildkit:logMaxSize": "10m" };

  it("dev is valid: small limits, a mirror, a disposable cache", () => {
    const dev = parseSettings({ ...projectDefaults, ...read("dev") }, { stack: "dev" });
    expect(dev).toMatchObject({ memoryBytes: 1024 ** 3, cpus: 1, cacheProtected: false, production: false, registryMirrors: ["http://host.docker.internal:5000"] });
  });

  it("prod is valid under the production rules: the seed's limits, pinned image, protected cache with a ceiling", () => {
    const prod = parseSettings({ ...projectDefaults, ...read("prod") }, { stack: "prod" });
    expect(prod).toMatchObject({
      production: true,
      memoryBytes: 4 * 1024 ** 3,
      cpus: 2,
      cacheProtected: true,
      requirePinnedImage: true,
      restartPolicy: "unless-stopped",
      cacheMaxUsedSpaceBytes: 20 * 1024 ** 3,
    });
    expect(isPinned(prod.image)).toBe(true);
  });
});
