/**
 * The config module: every `buildkit:*` value as `pulumi.runtime.allConfig()`
 * hands it over (strings, namespaced keys), each bad one refused with a
 * message naming the full key, the value given and the form accepted, all
 * problems of a stack file reported in one error.
 */
import * as fs from "fs";
import * as path from "path";

import { load as loadYaml } from "js-yaml";

import {
  BuildkitSettings,
  CONFIG_KEYS,
  ConfigError,
  DEFAULT_IMAGE,
  DEFAULT_ROOTLESS_IMAGE,
  isPinned,
  parseSettings,
  parseSize,
} from "../../components/config";

const ROOT = path.join(__dirname, "..", "..");
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const DIGEST = "sha256:" + "a".repeat(64);
const PEM = (what: string) => `-----BEGIN ${what}-----\nx\n-----END ${what}-----`;

/** Runs the parser and returns its problems, or fails the test if it accepted the config. */
function problemsOf(raw: Record<string, unknown>, stack = "dev"): string[] {
  let settings: BuildkitSettings;
  try {
    settings = parseSettings(raw, { stack });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error(`config was accepted: ${JSON.stringify(raw)} => ${JSON.stringify(settings)}`);
}

// The forms, spelt once so a change of wording shows up here.
const SIZE = "a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples)";
const NAME = "a docker object name: two or more letters, digits, '_', '.', '-', starting with a letter or digit";
const IMAGE = "an image reference like moby/buildkit:v0.32.2, registry:5000/moby/buildkit:TAG or moby/buildkit@sha256:<64 hex>";
const BOOL = "true or false";
const PORT = "a TCP port from 1 to 65535";
const KNOWN = CONFIG_KEYS.join(", ");
const TCP_NEEDS_TLS = (port: number) =>
  `buildkit:tcpPort is ${port} but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root. ` +
  "Set buildkit:tlsCa, buildkit:tlsCert and buildkit:tlsKey (as secrets), or remove buildkit:tcpPort";
const NEEDS_PRIVILEGE = (byDefault: boolean) =>
  `buildkit:allowPrivileged is false${byDefault ? " (the default in production)" : ""} but buildkit:rootless is false; ` +
  "buildkitd needs --privileged unless it runs rootless: set buildkit:rootless to true, or buildkit:allowPrivileged to true to accept a privileged daemon";
const NOT_PINNED = (image: string) =>
  `buildkit:image is "${image}" but buildkit:requirePinnedImage is in force (default in production); ` +
  "expected a digest (@sha256:…) or a tag other than latest, like moby/buildkit:v0.32.2";
const REQUIRED_IN_PRODUCTION = {
  memory: `buildkit:memory is required when buildkit:production is true (expected ${SIZE}); an unbounded daemon can starve everything else on the host`,
  cpus: "buildkit:cpus is required when buildkit:production is true (expected a positive number of CPUs, like 1 or 2.5); an unbounded daemon can starve everything else on the host",
  cacheMaxUsedSpace: `buildkit:cacheMaxUsedSpace is required when buildkit:production is true (expected ${SIZE}); without a ceiling the build cache grows until the disk is full`,
};
const MEMORY_TOO_SMALL = (given: string, bytes: number) =>
  `buildkit:memory is "${given}" (${bytes} bytes); expected at least 6m, docker's minimum memory limit (the container's limit is set in whole MiB)`;
const SHM_TOO_SMALL = (given: string, bytes: number) =>
  `buildkit:shmSize is "${given}" (${bytes} bytes); expected at least 1m (the container's shm size is set in whole MiB)`;
/** A production stack that satisfies every production rule, to vary one thing at a time. */
const PRODUCTION = {
  "buildkit:production": "true",
  "buildkit:allowPrivileged": "true",
  "buildkit:memory": "4g",
  "buildkit:cpus": "2",
  "buildkit:cacheMaxUsedSpace": "20g",
};

/** [what is wrong, the config as allConfig() gives it, the exact problems]. */
const BAD_CONFIGS: [string, Record<string, unknown>, string[]][] = [
  // One key, one value the key's form refuses.
  ["an unparseable memory size", { "buildkit:memory": "4 gigs" }, [`buildkit:memory is "4 gigs"; expected ${SIZE}`]],
  ["a memory size with two decimal points", { "buildkit:memory": "1.2.3m" }, [`buildkit:memory is "1.2.3m"; expected ${SIZE}`]],
  ["a zero shm size", { "buildkit:shmSize": "0" }, [`buildkit:shmSize is "0"; expected ${SIZE}`]],
  ["an unparseable free-space floor", { "buildkit:cacheMinFreeSpace": "lots" }, [`buildkit:cacheMinFreeSpace is "lots"; expected ${SIZE}`]],
  ["a negative CPU count", { "buildkit:cpus": "-1" }, ['buildkit:cpus is "-1"; expected a positive number of CPUs, like 1 or 2.5']],
  ["more CPUs than any host has", { "buildkit:cpus": "2000" }, ['buildkit:cpus is "2000"; expected a positive number of CPUs, like 1 or 2.5']],
  ["an invalid image reference", { "buildkit:image": "Bad Image" }, [`buildkit:image is "Bad Image"; expected ${IMAGE}`]],
  ["an image with an upper-case repository", { "buildkit:image": "moby/BuildKit:v1" }, [`buildkit:image is "moby/BuildKit:v1"; expected ${IMAGE}`]],
  ["an image with a truncated digest", { "buildkit:image": "moby/buildkit@sha256:abc" }, [`buildkit:image is "moby/buildkit@sha256:abc"; expected ${IMAGE}`]],
  ["an unknown restart policy", { "buildkit:restartPolicy": "sometimes" }, ['buildkit:restartPolicy is "sometimes"; expected one of no, always, unless-stopped, on-failure']],
  [
    "negative retries",
    { "buildkit:restartPolicy": "on-failure", "buildkit:restartMaxRetries": "-2" },
    ['buildkit:restartMaxRetries is "-2"; expected a whole number of retries > 0 (only with restartPolicy on-failure)'],
  ],
  ["a boolean spelt yes", { "buildkit:rootless": "yes" }, [`buildkit:rootless is "yes"; expected ${BOOL}`]],
  ["a boolean spelt 1", { "buildkit:debug": "1" }, [`buildkit:debug is "1"; expected ${BOOL}`]],
  ["a boolean given as the number 1", { "buildkit:smokeTest": 1 }, [`buildkit:smokeTest is 1; expected ${BOOL}`]],
  ["a port out of range", { "buildkit:tcpPort": "70000" }, [`buildkit:tcpPort is "70000"; expected ${PORT}`]],
  ["port zero", { "buildkit:tcpPort": "0" }, [`buildkit:tcpPort is "0"; expected ${PORT}`]],
  [
    "a host name as TCP address",
    { "buildkit:tcpAddress": "localhost", "buildkit:tcpPort": "1" },
    [
      'buildkit:tcpAddress is "localhost"; expected an IP address of this Docker host to publish the TCP listener on, like 127.0.0.1',
      TCP_NEEDS_TLS(1),
    ],
  ],
  [
    "mirrors that are not a list",
    { "buildkit:registryMirrors": "mirror" },
    ['buildkit:registryMirrors is "mirror"; expected a list of registry hosts like ["mirror.example.com", "http://host.docker.internal:5000"] (http:// marks a plain-HTTP mirror)'],
  ],
  [
    "a mirror with a path",
    { "buildkit:registryMirrors": '["http://mirror:5000/v2"]' },
    ['buildkit:registryMirrors is "[\\"http://mirror:5000/v2\\"]"; expected a list of registry hosts like ["mirror.example.com", "http://host.docker.internal:5000"] (http:// marks a plain-HTTP mirror)'],
  ],
  [
    "an extra host without an address",
    { "buildkit:extraHosts": '["nohost"]' },
    ['buildkit:extraHosts is "[\\"nohost\\"]"; expected a list of HOST:IP entries, like ["host.docker.internal:host-gateway"]'],
  ],
  ["labels that are not a map", { "buildkit:labels": "[1]" }, ['buildkit:labels is "[1]"; expected a map of label names to string values']],
  ["a label with a number value", { "buildkit:labels": '{"team":1}' }, ['buildkit:labels is "{\\"team\\":1}"; expected a map of label names to string values']],
  ["a log size without unit", { "buildkit:logMaxSize": "10" }, ['buildkit:logMaxSize is "10"; expected a json-file log size like 10m (k, m, g)']],
  ["zero rotated log files", { "buildkit:logMaxFiles": "0" }, ['buildkit:logMaxFiles is "0"; expected a whole number of rotated log files > 0']],
  ["more than 100 rotated log files", { "buildkit:logMaxFiles": "101" }, ['buildkit:logMaxFiles is "101"; expected a whole number of rotated log files > 0']],
  ["a fractional parallelism", { "buildkit:maxParallelism": "1.5" }, ['buildkit:maxParallelism is "1.5"; expected a whole number of parallel build steps > 0']],
  ["zero parallelism", { "buildkit:maxParallelism": "0" }, ['buildkit:maxParallelism is "0"; expected a whole number of parallel build steps > 0']],
  [
    "a Docker host without scheme",
    { "buildkit:dockerHost": "localhost" },
    ['buildkit:dockerHost is "localhost"; expected a Docker endpoint like unix:///var/run/docker.sock, ssh://user@host or tcp://host:2376'],
  ],
  ["a container name starting with a dash", { "buildkit:containerName": "-bad" }, [`buildkit:containerName is "-bad"; expected ${NAME}`]],
  // Docker refuses one-character container and volume names at create time.
  ["a one-character container name", { "buildkit:containerName": "b" }, [`buildkit:containerName is "b"; expected ${NAME}`]],
  ["a volume name with a slash", { "buildkit:cacheVolumeName": "cache/vol" }, [`buildkit:cacheVolumeName is "cache/vol"; expected ${NAME}`]],
  ["a network name with a space", { "buildkit:networkName": "my net" }, [`buildkit:networkName is "my net"; expected ${NAME}`]],
  [
    "a TLS key that is not PEM, alone",
    { "buildkit:tlsKey": "nope" },
    [
      "buildkit:tlsKey is [secret]; expected a PEM-encoded server private key, set with `pulumi config set --secret`",
      "buildkit:tlsKey is set but buildkit:tlsCa, buildkit:tlsCert are not; set all three TLS settings (CA, server certificate, server key) or none",
    ],
  ],
  // Unknown keys.
  ["a misspelt key", { "buildkit:memroy": "1g" }, [`buildkit:memroy is not a setting this program reads; known settings: ${KNOWN}`]],
  ["a key that is a JavaScript object member", { "buildkit:constructor": "x" }, [`buildkit:constructor is not a setting this program reads; known settings: ${KNOWN}`]],
  ["an unprefixed misspelt key", { tlsCert_: "x" }, [`buildkit:tlsCert_ is not a setting this program reads; known settings: ${KNOWN}`]],
  // Rules across keys.
  ["a TCP port without TLS", { "buildkit:tcpPort": "1234" }, [TCP_NEEDS_TLS(1234)]],
  [
    "a CA without certificate and key",
    { "buildkit:tlsCa": PEM("CA") },
    ["buildkit:tlsCa is set but buildkit:tlsCert, buildkit:tlsKey are not; set all three TLS settings (CA, server certificate, server key) or none"],
  ],
  [
    "a CA and certificate without key",
    { "buildkit:tlsCa": PEM("CA"), "buildkit:tlsCert": PEM("CERT") },
    ["buildkit:tlsCa, buildkit:tlsCert are set but buildkit:tlsKey is not; set all three TLS settings (CA, server certificate, server key) or none"],
  ],
  ["a client certificate without its key", { "buildkit:tlsClientCert": PEM("C") }, ["buildkit:tlsClientCert and buildkit:tlsClientKey go together; set both or neither"]],
  ["a client key without its certificate", { "buildkit:tlsClientKey": PEM("K") }, ["buildkit:tlsClientCert and buildkit:tlsClientKey go together; set both or neither"]],
  [
    "a TCP address without a port",
    { "buildkit:tcpAddress": "127.0.0.1" },
    ["buildkit:tcpAddress is set but buildkit:tcpPort is not; the address only applies to the TCP listener"],
  ],
  [
    "retries without on-failure",
    { "buildkit:restartMaxRetries": "3" },
    ['buildkit:restartMaxRetries is 3 but buildkit:restartPolicy is "no"; retries apply only to on-failure'],
  ],
  [
    "retries with always",
    { "buildkit:restartPolicy": "always", "buildkit:restartMaxRetries": "3" },
    ['buildkit:restartMaxRetries is 3 but buildkit:restartPolicy is "always"; retries apply only to on-failure'],
  ],
  [
    "retries with production's default policy",
    { ...PRODUCTION, "buildkit:restartMaxRetries": "5" },
    ['buildkit:restartMaxRetries is 5 but buildkit:restartPolicy is "unless-stopped"; retries apply only to on-failure'],
  ],
  [
    "a GC floor above the ceiling",
    { "buildkit:cacheReservedSpace": "2g", "buildkit:cacheMaxUsedSpace": "1g" },
    ["buildkit:cacheReservedSpace (2147483648 bytes) is above buildkit:cacheMaxUsedSpace (1073741824 bytes); the floor must not exceed the ceiling"],
  ],
  ["privileges refused without rootless", { "buildkit:allowPrivileged": "false" }, [NEEDS_PRIVILEGE(false)]],
  // Production rules.
  [
    "a production stack without limits, ceiling or privilege decision",
    { "buildkit:production": "true" },
    [NEEDS_PRIVILEGE(true), REQUIRED_IN_PRODUCTION.memory, REQUIRED_IN_PRODUCTION.cpus, REQUIRED_IN_PRODUCTION.cacheMaxUsedSpace],
  ],
  ["a production stack refusing privileges explicitly", { ...PRODUCTION, "buildkit:allowPrivileged": "false" }, [NEEDS_PRIVILEGE(false)]],
  ["a production stack without a memory limit", { ...PRODUCTION, "buildkit:memory": undefined }, [REQUIRED_IN_PRODUCTION.memory]],
  ["a production stack without a CPU limit", { ...PRODUCTION, "buildkit:cpus": undefined }, [REQUIRED_IN_PRODUCTION.cpus]],
  ["a production stack without a cache ceiling", { ...PRODUCTION, "buildkit:cacheMaxUsedSpace": undefined }, [REQUIRED_IN_PRODUCTION.cacheMaxUsedSpace]],
  // The value is wrong, not missing: say that once, not also "required".
  ["a production stack with an unparseable memory limit", { ...PRODUCTION, "buildkit:memory": "big" }, [`buildkit:memory is "big"; expected ${SIZE}`]],
  ["a latest image in production", { ...PRODUCTION, "buildkit:image": "moby/buildkit:latest" }, [NOT_PINNED("moby/buildkit:latest")]],
  ["an untagged image in production", { ...PRODUCTION, "buildkit:image": "moby/buildkit" }, [NOT_PINNED("moby/buildkit")]],
  [
    "an untagged image behind a registry port where pinning is required",
    { "buildkit:requirePinnedImage": "true", "buildkit:image": "localhost:5000/moby/buildkit" },
    [NOT_PINNED("localhost:5000/moby/buildkit")],
  ],
  // Sizes the container cannot honour: it takes memory and shm in whole MiB (0 = no limit / docker's default),
  // and docker refuses a memory limit under 6 MiB at create time.
  ["a memory limit under one MiB, which would mean no limit", { "buildkit:memory": "512k" }, [MEMORY_TOO_SMALL("512k", 524288)]],
  ["a memory limit under docker's 6 MiB minimum", { "buildkit:memory": "5m" }, [MEMORY_TOO_SMALL("5m", 5 * MIB)]],
  [
    "a production memory limit so small it would be unbounded",
    { ...PRODUCTION, "buildkit:memory": "1k" },
    [MEMORY_TOO_SMALL("1k", 1024)],
  ],
  ["an shm size under one MiB, which docker would ignore", { "buildkit:shmSize": "100k" }, [SHM_TOO_SMALL("100k", 102400)]],
  // A refused value is reported as given, and no other message describes its default as if it were set.
  ["an out-of-range port with an address", { "buildkit:tcpPort": "70000", "buildkit:tcpAddress": "127.0.0.1" }, [`buildkit:tcpPort is "70000"; expected ${PORT}`]],
  [
    "a misspelt restart policy with retries",
    { "buildkit:restartPolicy": "onfailure", "buildkit:restartMaxRetries": "3" },
    ['buildkit:restartPolicy is "onfailure"; expected one of no, always, unless-stopped, on-failure'],
  ],
  ["a production privilege decision spelt yes", { ...PRODUCTION, "buildkit:allowPrivileged": "yes" }, [`buildkit:allowPrivileged is "yes"; expected ${BOOL}`]],
  ["rootless spelt yes without privileges", { "buildkit:rootless": "yes", "buildkit:allowPrivileged": "false" }, [`buildkit:rootless is "yes"; expected ${BOOL}`]],
  [
    "a client certificate that is not PEM, with its key",
    { "buildkit:tlsClientCert": "nope", "buildkit:tlsClientKey": PEM("K") },
    ["buildkit:tlsClientCert is [secret]; expected a PEM-encoded client certificate, set with `pulumi config set --secret`"],
  ],
];

describe("bad stack configuration", () => {
  it("is tested on many more than 25 configs", () => {
    expect(BAD_CONFIGS.length).toBeGreaterThanOrEqual(25);
  });

  it.each(BAD_CONFIGS)("rejects %s with a message naming key, value and accepted form", (_title, raw, expected) => {
    // undefined removes a key from PRODUCTION, as if the stack file had no such line.
    const config = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined));
    expect(problemsOf(config)).toEqual(expected);
  });

  it("reports every problem of a config in one error, in the order of the stack file", () => {
    expect(
      problemsOf({
        "buildkit:memory": "4 gigs",
        "buildkit:restartPolicy": "sometimes",
        "buildkit:memroy": "1g",
        "buildkit:tcpPort": "1234",
        "buildkit:cacheReservedSpace": "2g",
        "buildkit:cacheMaxUsedSpace": "1g",
      }),
    ).toEqual([
      `buildkit:memory is "4 gigs"; expected ${SIZE}`,
      'buildkit:restartPolicy is "sometimes"; expected one of no, always, unless-stopped, on-failure',
      `buildkit:memroy is not a setting this program reads; known settings: ${KNOWN}`,
      TCP_NEEDS_TLS(1234),
      "buildkit:cacheReservedSpace (2147483648 bytes) is above buildkit:cacheMaxUsedSpace (1073741824 bytes); the floor must not exceed the ceiling",
    ]);
  });

  it("summarises the problems in the error message, one per line", () => {
    expect(() => parseSettings({ "buildkit:cpus": "0", "buildkit:debug": "on" }, { stack: "dev" })).toThrow(
      new ConfigError([
        'buildkit:cpus is "0"; expected a positive number of CPUs, like 1 or 2.5',
        `buildkit:debug is "on"; expected ${BOOL}`,
      ]),
    );
    expect(new ConfigError(["a", "b"]).message).toBe("Invalid stack configuration (2 problems):\n  - a\n  - b");
    expect(new ConfigError(["a"]).message).toBe("Invalid stack configuration (1 problem):\n  - a");
  });

  it("never echoes a secret value", () => {
    const problems = problemsOf({ "buildkit:tlsKey": "hunter2", "buildkit:tlsClientKey": "swordfish", "buildkit:tlsClientCert": PEM("C") });
    expect(problems.join("\n")).not.toMatch(/hunter2|swordfish/);
    expect(problems).toContain("buildkit:tlsClientKey is [secret]; expected a PEM-encoded client private key, set with `pulumi config set --secret`");
  });

  it("ignores other namespaces", () => {
    expect(parseSettings({ "aws:region": "eu-west-1", "docker:host": "unix:///x" }, { stack: "dev" }).containerName).toBe("buildkitd");
  });
});

describe("keys and values as the Pulumi runtime gives them", () => {
  it("reads booleans, numbers, lists and maps given as config strings", () => {
    const parsed = parseSettings(
      {
        "buildkit:debug": "true",
        "buildkit:smokeTest": "false",
        "buildkit:cpus": "2",
        "buildkit:maxParallelism": "3",
        "buildkit:logMaxFiles": "7",
        "buildkit:registryMirrors": '["http://mirror:5000","mirror.example.com"]',
        "buildkit:extraHosts": '["host.docker.internal:host-gateway","db:10.0.0.2"]',
        "buildkit:labels": '{"team":"platform"}',
      },
      { stack: "dev" },
    );
    expect(parsed).toMatchObject({
      debug: true,
      smokeTest: false,
      cpus: 2,
      maxParallelism: 3,
      logMaxFiles: 7,
      registryMirrors: ["http://mirror:5000", "mirror.example.com"],
      extraHosts: ["host.docker.internal:host-gateway", "db:10.0.0.2"],
      labels: { team: "platform" },
    });
  });

  it("also reads them as native values", () => {
    const parsed = parseSettings(
      { "buildkit:debug": true, "buildkit:cpus": 2.5, "buildkit:extraHosts": ["a:1.2.3.4"], "buildkit:labels": { team: "x" } },
      { stack: "dev" },
    );
    expect(parsed).toMatchObject({ debug: true, cpus: 2.5, extraHosts: ["a:1.2.3.4"], labels: { team: "x" } });
  });

  it("reads keys with or without the buildkit: prefix, and names them in full in problems", () => {
    expect(parseSettings({ memory: "512m", "buildkit:cpus": "1" }, { stack: "dev" })).toMatchObject({ memoryBytes: 512 * MIB, cpus: 1 });
    expect(problemsOf({ memory: "lots" })).toEqual([`buildkit:memory is "lots"; expected ${SIZE}`]);
    expect(problemsOf({ tcpAddress: "10.0.0.1" })).toEqual([
      "buildkit:tcpAddress is set but buildkit:tcpPort is not; the address only applies to the TCP listener",
    ]);
  });
});

describe("defaults", () => {
  const settings = parseSettings({}, { stack: "staging" });

  it("names the container like the seed and the network and volume per stack", () => {
    expect(settings).toMatchObject({ containerName: "buildkitd", networkName: "buildkit-staging", cacheVolumeName: "buildkit-staging-cache" });
    expect(parseSettings({}, { stack: "prod" })).toMatchObject({ networkName: "buildkit-prod", cacheVolumeName: "buildkit-prod-cache" });
  });

  it("runs the pinned privileged image, allowed outside production, with a smoke test and nothing else", () => {
    expect(settings).toEqual({
      containerName: "buildkitd",
      networkName: "buildkit-staging",
      cacheVolumeName: "buildkit-staging-cache",
      image: DEFAULT_IMAGE,
      rootless: false,
      allowPrivileged: true,
      production: false,
      memoryBytes: undefined,
      cpus: undefined,
      shmSizeBytes: undefined,
      restartPolicy: "no",
      restartMaxRetries: undefined,
      logMaxSize: "10m",
      logMaxFiles: 3,
      labels: {},
      cacheProtected: false,
      cacheReservedSpaceBytes: undefined,
      cacheMaxUsedSpaceBytes: undefined,
      cacheMinFreeSpaceBytes: undefined,
      maxParallelism: undefined,
      registryMirrors: [],
      extraHosts: [],
      debug: false,
      tcpPort: undefined,
      tcpAddress: "127.0.0.1",
      tls: undefined,
      smokeTest: true,
      dockerHost: undefined,
      requirePinnedImage: false,
      stopGraceSeconds: 600,
    });
    expect(DEFAULT_IMAGE).toBe("moby/buildkit:v0.32.2");
  });

  it("switches to the rootless image in hardened mode, unless an image is given", () => {
    expect(parseSettings({ "buildkit:rootless": "true" }, { stack: "dev" }).image).toBe(DEFAULT_ROOTLESS_IMAGE);
    expect(DEFAULT_ROOTLESS_IMAGE).toBe("moby/buildkit:v0.32.2-rootless");
    expect(parseSettings({ "buildkit:rootless": "true", "buildkit:image": "me/bk:1" }, { stack: "dev" }).image).toBe("me/bk:1");
  });

  it("in production, restarts the daemon, protects the cache and pins the image", () => {
    expect(parseSettings(PRODUCTION, { stack: "prod" })).toMatchObject({
      production: true,
      restartPolicy: "unless-stopped",
      cacheProtected: true,
      requirePinnedImage: true,
      stopGraceSeconds: 600,
      allowPrivileged: true,
      memoryBytes: 4 * GIB,
      cpus: 2,
      cacheMaxUsedSpaceBytes: 20 * GIB,
    });
  });

  it("in production, lets each default be overridden", () => {
    const relaxed = parseSettings(
      { ...PRODUCTION, "buildkit:restartPolicy": "always", "buildkit:cacheProtected": "false", "buildkit:requirePinnedImage": "false", "buildkit:image": "moby/buildkit:latest" },
      { stack: "prod" },
    );
    expect(relaxed).toMatchObject({ restartPolicy: "always", cacheProtected: false, requirePinnedImage: false, image: "moby/buildkit:latest" });
  });

  it("in production, refuses privileges by default but needs no decision when rootless", () => {
    const { "buildkit:allowPrivileged": _, ...undecided } = PRODUCTION;
    expect(problemsOf(undecided)).toEqual([NEEDS_PRIVILEGE(true)]);
    expect(parseSettings({ ...undecided, "buildkit:rootless": "true" }, { stack: "prod" })).toMatchObject({
      rootless: true,
      allowPrivileged: false,
      image: DEFAULT_ROOTLESS_IMAGE,
    });
  });

  it("restarts on failure a given number of times", () => {
    expect(parseSettings({ "buildkit:restartPolicy": "on-failure", "buildkit:restartMaxRetries": "4" }, { stack: "dev" })).toMatchObject({
      restartPolicy: "on-failure",
      restartMaxRetries: 4,
    });
  });

  it("accepts a GC floor equal to the ceiling", () => {
    expect(parseSettings({ "buildkit:cacheReservedSpace": "1g", "buildkit:cacheMaxUsedSpace": "1024m" }, { stack: "dev" })).toMatchObject({
      cacheReservedSpaceBytes: GIB,
      cacheMaxUsedSpaceBytes: GIB,
    });
  });
});

describe("TLS and the TCP listener", () => {
  it("accepts a complete TLS listener with a client certificate", () => {
    const parsed = parseSettings(
      {
        "buildkit:tcpPort": "1234",
        "buildkit:tcpAddress": "0.0.0.0",
        "buildkit:tlsCa": PEM("CA"),
        "buildkit:tlsCert": PEM("CERT"),
        "buildkit:tlsKey": PEM("KEY"),
        "buildkit:tlsClientCert": PEM("CC"),
        "buildkit:tlsClientKey": PEM("CK"),
      },
      { stack: "dev" },
    );
    expect(parsed).toMatchObject({
      tcpPort: 1234,
      tcpAddress: "0.0.0.0",
      tls: { ca: PEM("CA"), cert: PEM("CERT"), key: PEM("KEY"), clientCert: PEM("CC"), clientKey: PEM("CK") },
    });
  });

  it("publishes on 127.0.0.1 unless an address is given, and takes IPv6 addresses", () => {
    const tls = { "buildkit:tlsCa": PEM("CA"), "buildkit:tlsCert": PEM("CERT"), "buildkit:tlsKey": PEM("KEY") };
    expect(parseSettings({ ...tls, "buildkit:tcpPort": "65535" }, { stack: "dev" })).toMatchObject({ tcpPort: 65535, tcpAddress: "127.0.0.1" });
    expect(parseSettings({ ...tls, "buildkit:tcpPort": "1", "buildkit:tcpAddress": "::1" }, { stack: "dev" })).toMatchObject({ tcpPort: 1, tcpAddress: "::1" });
  });
});

describe("sizes in docker's units", () => {
  it.each([
    ["512m", 512 * MIB],
    ["4g", 4 * GIB],
    ["1.5g", 1.5 * GIB],
    ["1024", 1024],
    ["4GiB", 4 * GIB],
    ["64MB", 64 * MIB],
    ["2T", 2 * 1024 ** 4],
    ["100k", 100 * 1024],
    ["10b", 10],
    [" 8 g ", 8 * GIB],
  ])("reads %j as %d bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(["", "4 gigs", "-1g", "0", "0.4", "g", "1.2.3m", "4x", "4p", "1,5g", "m512"])("refuses %j", (text) => {
    expect(parseSize(text)).toBeUndefined();
  });

  it("resolves every size setting to bytes", () => {
    const parsed = parseSettings(
      {
        "buildkit:memory": "1.5g",
        "buildkit:shmSize": "64m",
        "buildkit:cacheReservedSpace": "512m",
        "buildkit:cacheMaxUsedSpace": "4GiB",
        "buildkit:cacheMinFreeSpace": "1073741824",
      },
      { stack: "dev" },
    );
    expect(parsed).toMatchObject({
      memoryBytes: 1.5 * GIB,
      shmSizeBytes: 64 * MIB,
      cacheReservedSpaceBytes: 512 * MIB,
      cacheMaxUsedSpaceBytes: 4 * GIB,
      cacheMinFreeSpaceBytes: GIB,
    });
  });
});

describe("pinned images", () => {
  it.each([
    ["moby/buildkit:v0.32.2", true],
    [`moby/buildkit@${DIGEST}`, true],
    [`moby/buildkit:latest@${DIGEST}`, true],
    ["localhost:5000/moby/buildkit:v1", true],
    ["registry.example.com/moby/buildkit:v0.32.2-rootless", true],
    ["moby/buildkit:latest", false],
    ["moby/buildkit", false],
    ["localhost:5000/moby/buildkit", false],
    ["localhost:5000/moby/buildkit:latest", false],
  ])("%s is pinned: %s", (image, pinned) => {
    expect(isPinned(image as string)).toBe(pinned);
  });

  it.each([`moby/buildkit@${DIGEST}`, "localhost:5000/moby/buildkit:v1", "registry.example.com:443/team/buildkit:2025-01"])(
    "production accepts %s",
    (image) => {
      expect(parseSettings({ ...PRODUCTION, "buildkit:image": image }, { stack: "prod" }).image).toBe(image);
    },
  );

  it("is not required outside production unless asked for", () => {
    expect(parseSettings({ "buildkit:image": "moby/buildkit:latest" }, { stack: "dev" })).toMatchObject({
      image: "moby/buildkit:latest",
      requirePinnedImage: false,
      stopGraceSeconds: 600,
    });
    expect(problemsOf({ "buildkit:image": "moby/buildkit:latest", "buildkit:requirePinnedImage": "true" })).toEqual([NOT_PINNED("moby/buildkit:latest")]);
  });
});

describe("the repo's stack files", () => {
  /** A YAML value the way pulumi.runtime.allConfig() returns it: strings, with lists and maps as JSON. */
  const asConfigString = (value: unknown): string => (typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value));
  const readYaml = (file: string) => loadYaml(fs.readFileSync(path.join(ROOT, file), "utf8")) as Record<string, any>;

  /** Project defaults from Pulumi.yaml, overlaid with the stack file: what the program sees. */
  function allConfig(stack: string): Record<string, string> {
    const project = readYaml("Pulumi.yaml");
    const config: Record<string, string> = {};
    for (const [key, spec] of Object.entries<Record<string, unknown>>(project.config)) {
      if (spec.default !== undefined) config[`${project.name}:${key}`] = asConfigString(spec.default);
    }
    for (const [key, value] of Object.entries(readYaml(`Pulumi.${stack}.yaml`).config)) config[key] = asConfigString(value);
    return config;
  }

  it("declares only settings the program reads", () => {
    const project = readYaml("Pulumi.yaml");
    expect(project.name).toBe("buildkit");
    for (const key of Object.keys(project.config)) expect(CONFIG_KEYS).toContain(key);
  });

  it("dev is valid: small limits, a mirror, a disposable cache", () => {
    expect(parseSettings(allConfig("dev"), { stack: "dev" })).toEqual({
      containerName: "buildkitd",
      networkName: "buildkit-dev",
      cacheVolumeName: "buildkit-dev-cache",
      image: DEFAULT_IMAGE,
      rootless: false,
      allowPrivileged: true,
      production: false,
      memoryBytes: GIB,
      cpus: 1,
      shmSizeBytes: undefined,
      restartPolicy: "no",
      restartMaxRetries: undefined,
      logMaxSize: "10m",
      logMaxFiles: 3,
      labels: {},
      cacheProtected: false,
      cacheReservedSpaceBytes: 512 * MIB,
      cacheMaxUsedSpaceBytes: 5 * GIB,
      cacheMinFreeSpaceBytes: undefined,
      maxParallelism: 2,
      registryMirrors: ["http://host.docker.internal:5000"],
      extraHosts: ["host.docker.internal:host-gateway"],
      debug: false,
      tcpPort: undefined,
      tcpAddress: "127.0.0.1",
      tls: undefined,
      smokeTest: true,
      dockerHost: undefined,
      requirePinnedImage: false,
      stopGraceSeconds: 600,
    });
  });

  it("prod is valid under the production rules: the seed's limits, pinned image, protected cache with a ceiling", () => {
    const prod = parseSettings(allConfig("prod"), { stack: "prod" });
    expect(prod).toEqual({
      containerName: "buildkitd",
      networkName: "buildkit-prod",
      cacheVolumeName: "buildkit-prod-cache",
      image: "moby/buildkit:v0.32.2",
      rootless: false,
      allowPrivileged: true,
      production: true,
      memoryBytes: 4 * GIB,
      cpus: 2,
      shmSizeBytes: undefined,
      restartPolicy: "unless-stopped",
      restartMaxRetries: undefined,
      logMaxSize: "50m",
      logMaxFiles: 5,
      labels: {},
      cacheProtected: true,
      cacheReservedSpaceBytes: 2 * GIB,
      cacheMaxUsedSpaceBytes: 20 * GIB,
      cacheMinFreeSpaceBytes: 5 * GIB,
      maxParallelism: 4,
      registryMirrors: [],
      extraHosts: [],
      debug: false,
      tcpPort: undefined,
      tcpAddress: "127.0.0.1",
      tls: undefined,
      smokeTest: true,
      dockerHost: undefined,
      requirePinnedImage: true,
      stopGraceSeconds: 600,
    });
    expect(isPinned(prod.image)).toBe(true);
  });

  it("prod would fail without its explicit privilege decision, its limits or its pinned image", () => {
    const { "buildkit:allowPrivileged": _a, "buildkit:memory": _m, ...stripped } = allConfig("prod");
    expect(problemsOf({ ...stripped, "buildkit:image": "moby/buildkit:latest" }, "prod")).toEqual([
      NEEDS_PRIVILEGE(true),
      REQUIRED_IN_PRODUCTION.memory,
      NOT_PINNED("moby/buildkit:latest"),
    ]);
  });
});

describe("buildkit:stopGracePeriod", () => {
  const FORM = "a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)";
  it.each([
    ["10m", 600],
    ["90s", 90],
    ["1h", 3600],
    ["45", 45],
    [30, 30],
    ["0", 0],
  ])("reads %p as %p seconds", (given, seconds) => {
    expect(parseSettings({ "buildkit:stopGracePeriod": given }, { stack: "dev" }).stopGraceSeconds).toBe(seconds);
  });
  it("defaults to 10 minutes: long enough for typical builds, free when the daemon is idle", () => {
    expect(parseSettings({}, { stack: "dev" }).stopGraceSeconds).toBe(600);
  });
  it.each(["2h", "61m", "ten minutes", "1.5m", "-5s", "5d"])("refuses %p, naming the key, the value and the form", (given) => {
    expect(problemsOf({ "buildkit:stopGracePeriod": given })).toEqual([`buildkit:stopGracePeriod is ${JSON.stringify(given)}; expected ${FORM}`]);
  });
});
