/**
 * The config module: every `buildkit:*` value as `pulumi.runtime.allConfig()`
 * hands it over (strings, namespaced keys), each bad one refused with a
 * message naming the full key, the value given and the form accepted, all
 * problems of a stack file reported in one error.
 */
import { execFileSync } from "child_process";
import { X509Certificate } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { load as loadYaml } from "js-yaml";

import { DEFAULT_IMAGE, DEFAULT_ROOTLESS_IMAGE } from "../../../components/core/buildkitd";
import { ConfigError, LABEL_PREFIX } from "../../../components/core/config-keys";
import { MIN_MEMORY_BYTES } from "../../../components/core/daemon-settings";
import { isPinned } from "../../../components/core/image-reference";
import { DOCKER_KEYS, DockerSettings, parseDockerSettings, providerCpus } from "../../../components/docker/config";
import { CertificateSet, makeCertificates } from "../certificates";

const ROOT = path.join(__dirname, "..", "..", "..");
const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const DIGEST = "sha256:" + "a".repeat(64);
const PEM = (what: string) => `-----BEGIN ${what}-----\nx\n-----END ${what}-----`;

/** Runs the parser and returns its problems, or fails the test if it accepted the config. */
function problemsOf(raw: Record<string, unknown>, stack = "dev"): string[] {
  let settings: DockerSettings;
  // undefined removes a key, as if the stack file had no such line.
  const config = Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
  try {
    settings = parseDockerSettings(config, { stack });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error(`config was accepted: ${JSON.stringify(raw)} => ${JSON.stringify(settings)}`);
}

// The forms, spelt once so a change of wording shows up here.
const SIZE = "a size in docker's units, like 512m or 4g (b, k, m, g, t; binary multiples; at most 8191t)";
const NAME = "a docker object name: two or more letters, digits, '_', '.', '-', starting with a letter or digit";
const CONTAINER = `${NAME}, at most 63 characters between dots`;
const VOLUME = `${NAME}, at most 255 characters`;
const NETWORK = `${NAME}, other than bridge, host, none, default, ingress, docker_gwbridge`;
const CPUS = "a number of CPUs from 0.1 to 1024 with at most two decimals, like 1, 2.5 or 0.25";
const MIRRORS = 'a list of registry hosts like ["mirror.example.com", "http://host.docker.internal:5000"] (http:// marks a plain-HTTP mirror)';
const EXTRA_HOSTS = 'a list of HOST:IP entries, like ["db:10.0.0.2", "host.docker.internal:host-gateway"]';
const LABELS = "a map of label names to string values, no name under org.buildkit-stack.";
const LOG_SIZE = "a json-file log size above zero like 10m (k, m, g)";
const DOCKER_HOST = "a Docker endpoint like unix:///var/run/docker.sock, ssh://user@host or tcp://host:2376";
const IMAGE = "an image reference like moby/buildkit:v0.32.2, registry:5000/moby/buildkit:TAG or moby/buildkit@sha256:<64 hex>";
const BOOL = "true or false";
const PORT = "a TCP port from 1 to 65535";
const KNOWN = DOCKER_KEYS.join(", ");
const TCP_NEEDS_TLS = (port: number) =>
  `buildkit:tcpPort is ${port} but no TLS is configured; plaintext TCP would let anything that reaches the port run builds as root. ` +
  "Set buildkit:tlsCa, buildkit:tlsCert and buildkit:tlsKey (as secrets), or remove buildkit:tcpPort";
const NEEDS_PRIVILEGE = (byDefault: boolean) =>
  `buildkit:allowPrivileged is false${byDefault ? " (the default in production)" : ""} but buildkit:rootless is false; ` +
  "buildkitd needs --privileged unless it runs rootless: set buildkit:rootless to true, or buildkit:allowPrivileged to true to accept a privileged daemon";
const NOT_PINNED = (image: string) =>
  `buildkit:image is "${image}" but buildkit:requirePinnedImage is in force (default in production); ` +
  "expected a digest (@sha256:…) or a version tag (v0.32.2, 0.32, v0.32.2-rootless), like moby/buildkit:v0.32.2";
const REQUIRED_IN_PRODUCTION = {
  memory: `buildkit:memory is required when buildkit:production is true (expected ${SIZE}); an unbounded daemon can starve everything else on the host`,
  cpus: `buildkit:cpus is required when buildkit:production is true (expected ${CPUS}); an unbounded daemon can starve everything else on the host`,
  cacheMaxUsedSpace: `buildkit:cacheMaxUsedSpace is required when buildkit:production is true (expected ${SIZE}); without a ceiling the build cache grows until the disk is full`,
};
const MEMORY_TOO_SMALL = (given: string, bytes: number) =>
  `buildkit:memory is "${given}" (${bytes} bytes); expected at least 32m (the least buildkitd needs to become healthy and pass the smoke test, measured)`;
const PRODUCTION_MEMORY_TOO_SMALL = (given: string, bytes: number) =>
  `buildkit:memory is "${given}" (${bytes} bytes); expected at least 1g (in production: build steps share the daemon's limit, and real builds need more)`;
const SHM_TOO_SMALL = (given: string, bytes: number) =>
  `buildkit:shmSize is "${given}" (${bytes} bytes); expected at least 1m (docker ignores a smaller shm size)`;
const GC_TOO_SMALL = (key: string, given: string, bytes: number) =>
  `buildkit:${key} is "${given}" (${bytes} bytes); expected at least 1m (a GC size of a few bytes is a missing unit)`;
const NOT_WHOLE_MIB = (key: string, given: string, bytes: number, suggestion: string, what: string) =>
  `buildkit:${key} is "${given}" (${bytes} bytes); expected a whole number of MiB, like ${suggestion} (the container's ${what} is set in MiB)`;
const TLS_WITHOUT_PORT = (keys: string) =>
  `${keys} set but buildkit:tcpPort is not; TLS material is only for the TCP listener (it would be uploaded into the container for nothing): set buildkit:tcpPort, or remove them`;
const NEEDS_CLIENT_CERT = (port: number, missing: string) =>
  `buildkit:tcpPort is ${port} but ${missing} not set; buildkitd given a CA accepts only clients with a certificate it signed, and the smoke test connects with this one: ` +
  "set buildkit:tlsClientCert and buildkit:tlsClientKey (as secrets)";
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
  ["a negative CPU count", { "buildkit:cpus": "-1" }, [`buildkit:cpus is "-1"; expected ${CPUS}`]],
  ["more CPUs than any host has", { "buildkit:cpus": "2000" }, [`buildkit:cpus is "2000"; expected ${CPUS}`]],
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
    [`buildkit:registryMirrors is "mirror"; expected ${MIRRORS}`],
  ],
  [
    "a mirror with a path",
    { "buildkit:registryMirrors": '["http://mirror:5000/v2"]' },
    [`buildkit:registryMirrors is "[\\"http://mirror:5000/v2\\"]"; expected ${MIRRORS} ("http://mirror:5000/v2" is not a host, an optional :port and nothing else)`],
  ],
  [
    "an extra host without an address",
    { "buildkit:extraHosts": '["nohost"]' },
    [`buildkit:extraHosts is "[\\"nohost\\"]"; expected ${EXTRA_HOSTS} ("nohost" has no :IP)`],
  ],
  ["labels that are not a map", { "buildkit:labels": "[1]" }, [`buildkit:labels is "[1]"; expected ${LABELS}`]],
  ["a label with a number value", { "buildkit:labels": '{"team":1}' }, [`buildkit:labels is "{\\"team\\":1}"; expected ${LABELS}`]],
  ["a log size without unit", { "buildkit:logMaxSize": "10" }, [`buildkit:logMaxSize is "10"; expected ${LOG_SIZE}`]],
  ["zero rotated log files", { "buildkit:logMaxFiles": "0" }, ['buildkit:logMaxFiles is "0"; expected a whole number of rotated log files from 1 to 100']],
  ["more than 100 rotated log files", { "buildkit:logMaxFiles": "101" }, ['buildkit:logMaxFiles is "101"; expected a whole number of rotated log files from 1 to 100']],
  ["a fractional parallelism", { "buildkit:maxParallelism": "1.5" }, ['buildkit:maxParallelism is "1.5"; expected a whole number of parallel build steps from 1 to 1024']],
  ["zero parallelism", { "buildkit:maxParallelism": "0" }, ['buildkit:maxParallelism is "0"; expected a whole number of parallel build steps from 1 to 1024']],
  [
    "a Docker host without scheme",
    { "buildkit:dockerHost": "localhost" },
    [`buildkit:dockerHost is "localhost"; expected ${DOCKER_HOST}`],
  ],
  ["a container name starting with a dash", { "buildkit:containerName": "-bad" }, [`buildkit:containerName is "-bad"; expected ${CONTAINER}`]],
  // Docker refuses one-character container and volume names at create time.
  ["a one-character container name", { "buildkit:containerName": "b" }, [`buildkit:containerName is "b"; expected ${CONTAINER}`]],
  ["a volume name with a slash", { "buildkit:cacheVolumeName": "cache/vol" }, [`buildkit:cacheVolumeName is "cache/vol"; expected ${VOLUME}`]],
  ["a network name with a space", { "buildkit:networkName": "my net" }, [`buildkit:networkName is "my net"; expected ${NETWORK}`]],
  [
    "a TLS key that is not PEM, alone",
    { "buildkit:tlsKey": "nope" },
    [
      "buildkit:tlsKey is [secret]; expected a PEM-encoded server private key, set with `pulumi config set --secret`",
      TLS_WITHOUT_PORT("buildkit:tlsKey is"),
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
    { "buildkit:tcpPort": "1234", "buildkit:tlsCa": PEM("CA"), "buildkit:tlsClientCert": PEM("C"), "buildkit:tlsClientKey": PEM("K") },
    ["buildkit:tlsCa is set but buildkit:tlsCert, buildkit:tlsKey are not; set all three TLS settings (CA, server certificate, server key) or none"],
  ],
  [
    "a CA and certificate without key",
    { "buildkit:tcpPort": "1234", "buildkit:tlsCa": PEM("CA"), "buildkit:tlsCert": PEM("CERT"), "buildkit:tlsClientCert": PEM("C"), "buildkit:tlsClientKey": PEM("K") },
    ["buildkit:tlsCa, buildkit:tlsCert are set but buildkit:tlsKey is not; set all three TLS settings (CA, server certificate, server key) or none"],
  ],
  ["a client certificate without a TCP port", { "buildkit:tlsClientCert": PEM("C") }, [TLS_WITHOUT_PORT("buildkit:tlsClientCert is")]],
  [
    "server TLS without a TCP port (the key would be uploaded anyway)",
    { "buildkit:tlsCa": PEM("CA"), "buildkit:tlsCert": PEM("CERT"), "buildkit:tlsKey": PEM("KEY") },
    [TLS_WITHOUT_PORT("buildkit:tlsCa, buildkit:tlsCert, buildkit:tlsKey are")],
  ],
  [
    "a TCP listener with server TLS and no client certificate",
    { "buildkit:tcpPort": "1234", "buildkit:tlsCa": PEM("CA"), "buildkit:tlsCert": PEM("CERT"), "buildkit:tlsKey": PEM("KEY") },
    [NEEDS_CLIENT_CERT(1234, "buildkit:tlsClientCert and buildkit:tlsClientKey are")],
  ],
  [
    "a TCP listener with a client key and no client certificate",
    { "buildkit:tcpPort": "1234", "buildkit:tlsCa": PEM("CA"), "buildkit:tlsCert": PEM("CERT"), "buildkit:tlsKey": PEM("KEY"), "buildkit:tlsClientKey": PEM("K") },
    [NEEDS_CLIENT_CERT(1234, "buildkit:tlsClientCert is")],
  ],
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
    [PRODUCTION_MEMORY_TOO_SMALL("1k", 1024)],
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
    [
      "buildkit:tlsClientCert is [secret]; expected a PEM-encoded client certificate, set with `pulumi config set --secret`",
      TLS_WITHOUT_PORT("buildkit:tlsClientCert, buildkit:tlsClientKey are"),
    ],
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
    expect(() => parseDockerSettings({ "buildkit:cpus": "0", "buildkit:debug": "on" }, { stack: "dev" })).toThrow(
      new ConfigError([
        `buildkit:cpus is "0"; expected ${CPUS}`,
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
    expect(parseDockerSettings({ "aws:region": "eu-west-1", "docker:host": "unix:///x" }, { stack: "dev" }).containerName).toBe("buildkitd");
  });
});

/**
 * What an adversarial new user writes, key by key: each value was accepted
 * before and then either did something other than what it says on the engine
 * (no limit, 20 bytes, a registry host) or failed mid-deploy leaving resources
 * behind. Each is now refused before any resource is declared.
 */
const IMAGE_CAPITALS = (image: string, first: string) =>
  `buildkit:image is "${image}"; expected ${IMAGE} (docker reads a first segment with capitals, "${first}", as a registry host; repository names are lower-case)`;
const RESERVED_NETWORK = (network: string) => `buildkit:networkName is "${network}"; expected ${NETWORK} ("${network}" is a network docker keeps for itself)`;
const CPUS_READ_BACK = (given: string, spelt: string) =>
  `buildkit:cpus is "${given}"; expected ${CPUS} (the docker provider reads ${given} back as "${spelt}"${spelt === "0.0" ? ", which is no limit at all" : ""})`;
const RETRIES = "a whole number of retries > 0 (only with restartPolicy on-failure)";
const RESTART = "one of no, always, unless-stopped, on-failure";
const OWN_LABEL = (key: string, raw: string) =>
  `buildkit:labels is ${JSON.stringify(raw)}; expected ${LABELS} (${JSON.stringify(key)} is under org.buildkit-stack., which the program's own labels use)`;
const BAD_HOST = (raw: string, why: string) => `buildkit:extraHosts is ${JSON.stringify(raw)}; expected ${EXTRA_HOSTS} (${why})`;
const BAD_MIRROR = (raw: string, why: string) => `buildkit:registryMirrors is ${JSON.stringify(raw)}; expected ${MIRRORS} (${why})`;
const PLATFORMS = 'a list of platforms like ["linux/arm64"] or ["linux/amd64", "linux/arm/v7"] (os/arch[/variant], linux only; the first is the default)';
const BAD_PLATFORMS = (raw: string, why: string) => `buildkit:platforms is ${JSON.stringify(raw)}; expected ${PLATFORMS} (${why})`;
const PRODUCTION_CEILING = (given: string, bytes: number) =>
  `buildkit:cacheMaxUsedSpace is "${given}" (${bytes} bytes); expected at least 1g (in production: a smaller ceiling prunes the layers a build just made, so every build starts cold)`;

const ADVERSARIAL: [string, Record<string, unknown>, string[]][] = [
  // Names docker refuses, or keeps for itself (the network create fails mid-deploy).
  ["containerName", { "buildkit:containerName": "_bk" }, [`buildkit:containerName is "_bk"; expected ${CONTAINER}`]],
  ["containerName", { "buildkit:containerName": "" }, [`buildkit:containerName is ""; expected ${CONTAINER}`]],
  ["cacheVolumeName", { "buildkit:cacheVolumeName": "../etc" }, [`buildkit:cacheVolumeName is "../etc"; expected ${VOLUME}`]],
  // Lengths: what DNS resolves a container by, and what a volume directory can be named.
  ["containerName", { "buildkit:containerName": "b".repeat(64) }, [`buildkit:containerName is "${"b".repeat(64)}"; expected ${CONTAINER} (its part "${"b".repeat(20)}…" is 64 characters; containers on its network find it by DNS, where a name's dot-separated parts hold 63 at most)`]],
  ["containerName", { "buildkit:containerName": Array(5).fill("c".repeat(60)).join(".") }, [`buildkit:containerName is "${Array(5).fill("c".repeat(60)).join(".")}"; expected ${CONTAINER} (it is 304 characters; containers on its network find it by DNS, where a name holds 253 at most)`]],
  ["cacheVolumeName", { "buildkit:cacheVolumeName": "v".repeat(256) }, [`buildkit:cacheVolumeName is "${"v".repeat(256)}"; expected ${VOLUME} (it is 256 characters; the volume is a directory on the engine's disk, whose names hold 255)`]],
  ["networkName", { "buildkit:networkName": "host" }, [RESERVED_NETWORK("host")]],
  ["networkName", { "buildkit:networkName": "bridge" }, [RESERVED_NETWORK("bridge")]],
  ["networkName", { "buildkit:networkName": "none" }, [RESERVED_NETWORK("none")]],
  ["networkName", { "buildkit:networkName": "default" }, [RESERVED_NETWORK("default")]],
  ["networkName", { "buildkit:networkName": "ingress" }, [RESERVED_NETWORK("ingress")]],
  ["networkName", { "buildkit:networkName": "docker_gwbridge" }, [RESERVED_NETWORK("docker_gwbridge")]],
  // Image references docker reads differently, or not at all.
  ["image", { "buildkit:image": "Moby/buildkit:v1" }, [IMAGE_CAPITALS("Moby/buildkit:v1", "Moby")]],
  ["image", { "buildkit:image": "MyTeam/buildkit/daemon:v1" }, [IMAGE_CAPITALS("MyTeam/buildkit/daemon:v1", "MyTeam")]],
  ["image", { "buildkit:image": "moby/buildkit:" }, [`buildkit:image is "moby/buildkit:"; expected ${IMAGE}`]],
  ["image", { "buildkit:image": "moby//buildkit" }, [`buildkit:image is "moby//buildkit"; expected ${IMAGE}`]],
  ["image", { "buildkit:image": "moby/buildkit:v1:v2" }, [`buildkit:image is "moby/buildkit:v1:v2"; expected ${IMAGE}`]],
  ["image", { "buildkit:image": `moby/buildkit@sha256:${"A".repeat(64)}` }, [`buildkit:image is "moby/buildkit@sha256:${"A".repeat(64)}"; expected ${IMAGE}`]],
  [
    "image",
    { "buildkit:image": "localhost:99999/moby/buildkit:v1" },
    [`buildkit:image is "localhost:99999/moby/buildkit:v1"; expected ${IMAGE} (registry port 99999 is not from 1 to 65535)`],
  ],
  ["image", { "buildkit:image": `team/${"b".repeat(260)}` }, [`buildkit:image is "team/${"b".repeat(260)}"; expected ${IMAGE} (longer than docker's 255 characters)`]],
  [
    "image",
    { "buildkit:image": "moby/buildkit:v0.32.2-rootless" },
    [
      'buildkit:image is "moby/buildkit:v0.32.2-rootless", a rootless image, but buildkit:rootless is false; ' +
        "set buildkit:rootless to true, or use a tag without -rootless, like moby/buildkit:v0.32.2",
    ],
  ],
  [
    "image",
    { "buildkit:rootless": "true", "buildkit:image": "moby/buildkit:v0.32.2" },
    ['buildkit:image is "moby/buildkit:v0.32.2" but buildkit:rootless is true; the rootless daemon needs a moby/buildkit rootless tag, like moby/buildkit:v0.32.2-rootless'],
  ],
  // Booleans are true or false, nothing that looks like one.
  ["rootless", { "buildkit:rootless": "TRUE" }, [`buildkit:rootless is "TRUE"; expected ${BOOL}`]],
  ["production", { "buildkit:production": "True" }, [`buildkit:production is "True"; expected ${BOOL}`]],
  ["cacheProtected", { "buildkit:cacheProtected": "0" }, [`buildkit:cacheProtected is "0"; expected ${BOOL}`]],
  ["requirePinnedImage", { "buildkit:requirePinnedImage": "" }, [`buildkit:requirePinnedImage is ""; expected ${BOOL}`]],
  ["allowPrivileged", { "buildkit:allowPrivileged": "no" }, [`buildkit:allowPrivileged is "no"; expected ${BOOL}`]],
  ["smokeTest", { "buildkit:smokeTest": "off" }, [`buildkit:smokeTest is "off"; expected ${BOOL}`]],
  // Memory: the measured floor, whole MiB, and sizes that are not sizes.
  ["memory", { "buildkit:memory": "6.5m" }, [MEMORY_TOO_SMALL("6.5m", 6815744)]],
  ["memory", { "buildkit:memory": "31m" }, [MEMORY_TOO_SMALL("31m", 31 * MIB)]],
  ["memory", { "buildkit:memory": "16m" }, [MEMORY_TOO_SMALL("16m", 16 * MIB)]],
  ["memory", { "buildkit:memory": "100.5m" }, [NOT_WHOLE_MIB("memory", "100.5m", 105381888, "100m", "limit")]],
  ["memory", { "buildkit:memory": "1000000k" }, [NOT_WHOLE_MIB("memory", "1000000k", 1024000000, "976m", "limit")]],
  ["memory", { "buildkit:memory": "9999999t" }, [`buildkit:memory is "9999999t"; expected ${SIZE}`]],
  ["memory", { "buildkit:memory": "20ib" }, [`buildkit:memory is "20ib"; expected ${SIZE}`]],
  ["memory", { "buildkit:memory": "1e3m" }, [`buildkit:memory is "1e3m"; expected ${SIZE}`]],
  ["memory", { "buildkit:memory": "0x10m" }, [`buildkit:memory is "0x10m"; expected ${SIZE}`]],
  ["memory", { "buildkit:memory": "-5g" }, [`buildkit:memory is "-5g"; expected ${SIZE}`]],
  ["memory", { "buildkit:memory": "Infinity" }, [`buildkit:memory is "Infinity"; expected ${SIZE}`]],
  ["memory", { "buildkit:memory": "1p" }, [`buildkit:memory is "1p"; expected ${SIZE}`]],
  ["memory", { "buildkit:memory": 1073741824 }, [`buildkit:memory is 1073741824; expected ${SIZE}`]],
  ["memory in production", { ...PRODUCTION, "buildkit:memory": "512m" }, [PRODUCTION_MEMORY_TOO_SMALL("512m", 512 * MIB)]],
  // CPUs: what the provider cannot spell back (0.01-0.09 become "0.0", no limit), and non-decimal spellings.
  ["cpus", { "buildkit:cpus": "0.001" }, [`buildkit:cpus is "0.001"; expected ${CPUS}`]],
  ["cpus", { "buildkit:cpus": "0.01" }, [CPUS_READ_BACK("0.01", "0.0")]],
  ["cpus", { "buildkit:cpus": "0.03" }, [CPUS_READ_BACK("0.03", "0.0")]],
  ["cpus", { "buildkit:cpus": "0.05" }, [CPUS_READ_BACK("0.05", "0.1")]],
  ["cpus", { "buildkit:cpus": "10.05" }, [CPUS_READ_BACK("10.05", "10.1")]],
  ["cpus", { "buildkit:cpus": "20.01" }, [CPUS_READ_BACK("20.01", "20.0")]],
  ["cpus in production", { ...PRODUCTION, "buildkit:cpus": "0.03" }, [CPUS_READ_BACK("0.03", "0.0")]],
  ["cpus", { "buildkit:cpus": "0x10" }, [`buildkit:cpus is "0x10"; expected ${CPUS}`]],
  ["cpus", { "buildkit:cpus": "1e1" }, [`buildkit:cpus is "1e1"; expected ${CPUS}`]],
  ["cpus", { "buildkit:cpus": " 2" }, [`buildkit:cpus is " 2"; expected ${CPUS}`]],
  ["cpus", { "buildkit:cpus": "2." }, [`buildkit:cpus is "2."; expected ${CPUS}`]],
  ["cpus", { "buildkit:cpus": "NaN" }, [`buildkit:cpus is "NaN"; expected ${CPUS}`]],
  ["cpus", { "buildkit:cpus": 0.001 }, [`buildkit:cpus is 0.001; expected ${CPUS}`]],
  // shm: whole MiB, at least one.
  ["shmSize", { "buildkit:shmSize": "512k" }, [SHM_TOO_SMALL("512k", 512 * 1024)]],
  ["shmSize", { "buildkit:shmSize": "1.5m" }, [NOT_WHOLE_MIB("shmSize", "1.5m", 1572864, "1m", "shm size")]],
  // Restart policy and retries.
  ["restartPolicy", { "buildkit:restartPolicy": "On-Failure" }, [`buildkit:restartPolicy is "On-Failure"; expected ${RESTART}`]],
  ["restartPolicy", { "buildkit:restartPolicy": "unless_stopped" }, [`buildkit:restartPolicy is "unless_stopped"; expected ${RESTART}`]],
  ["restartMaxRetries", { "buildkit:restartPolicy": "on-failure", "buildkit:restartMaxRetries": "0x10" }, [`buildkit:restartMaxRetries is "0x10"; expected ${RETRIES}`]],
  ["restartMaxRetries", { "buildkit:restartPolicy": "on-failure", "buildkit:restartMaxRetries": "1e3" }, [`buildkit:restartMaxRetries is "1e3"; expected ${RETRIES}`]],
  [
    "restartMaxRetries",
    { "buildkit:restartPolicy": "on-failure", "buildkit:restartMaxRetries": "9007199254740993" },
    [`buildkit:restartMaxRetries is "9007199254740993"; expected ${RETRIES}`],
  ],
  // Log rotation docker would refuse at create time.
  ["logMaxSize", { "buildkit:logMaxSize": "0m" }, [`buildkit:logMaxSize is "0m"; expected ${LOG_SIZE}`]],
  ["logMaxSize", { "buildkit:logMaxSize": "10mb" }, [`buildkit:logMaxSize is "10mb"; expected ${LOG_SIZE}`]],
  ["logMaxSize", { "buildkit:logMaxSize": "99999999999999g" }, [`buildkit:logMaxSize is "99999999999999g"; expected ${LOG_SIZE}`]],
  ["logMaxFiles", { "buildkit:logMaxFiles": "3.0" }, ['buildkit:logMaxFiles is "3.0"; expected a whole number of rotated log files from 1 to 100']],
  ["stopGracePeriod", { "buildkit:stopGracePeriod": "2h" }, ['buildkit:stopGracePeriod is "2h"; expected a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)']],
  ["stopGracePeriod", { "buildkit:stopGracePeriod": "1.5m" }, ['buildkit:stopGracePeriod is "1.5m"; expected a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)']],
  ["stopGracePeriod", { "buildkit:stopGracePeriod": "0x10" }, ['buildkit:stopGracePeriod is "0x10"; expected a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)']],
  ["stopGracePeriod", { "buildkit:stopGracePeriod": "010" }, ['buildkit:stopGracePeriod is "010"; expected a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)']],
  ["stopGracePeriod", { "buildkit:stopGracePeriod": "10d" }, ['buildkit:stopGracePeriod is "10d"; expected a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)']],
  ["stopGracePeriod", { "buildkit:stopGracePeriod": "-5" }, ['buildkit:stopGracePeriod is "-5"; expected a duration up to 1h, like 10m, 90s or 600 (seconds; s, m, h)']],
  ["logMaxFiles", { "buildkit:logMaxFiles": "0x3" }, ['buildkit:logMaxFiles is "0x3"; expected a whole number of rotated log files from 1 to 100']],
  // Labels: not the program's own, not empty.
  [
    "labels",
    { "buildkit:labels": '{"org.buildkit-stack.production":"false"}' },
    [OWN_LABEL("org.buildkit-stack.production", '{"org.buildkit-stack.production":"false"}')],
  ],
  ["labels", { "buildkit:labels": '{"ORG.Buildkit-Stack.managed-by":"me"}' }, [OWN_LABEL("ORG.Buildkit-Stack.managed-by", '{"ORG.Buildkit-Stack.managed-by":"me"}')]],
  ["labels", { "buildkit:labels": { [LABEL_PREFIX]: "x" } }, [`buildkit:labels is {"org.buildkit-stack":"x"}; expected ${LABELS} ("org.buildkit-stack" is under org.buildkit-stack., which the program's own labels use)`]],
  ["labels", { "buildkit:labels": '{"":"x"}' }, [`buildkit:labels is "{\\"\\":\\"x\\"}"; expected ${LABELS} (label name "" is empty or has a space or '=')`]],
  ["labels", { "buildkit:labels": '{"a b":"x"}' }, [`buildkit:labels is "{\\"a b\\":\\"x\\"}"; expected ${LABELS} (label name "a b" is empty or has a space or '=')`]],
  ["labels", { "buildkit:labels": '{"team":null}' }, [`buildkit:labels is "{\\"team\\":null}"; expected ${LABELS}`]],
  ["labels", { "buildkit:labels": "team=platform" }, [`buildkit:labels is "team=platform"; expected ${LABELS}`]],
  // GC sizes of a few bytes, and past int64.
  ["cacheReservedSpace", { "buildkit:cacheReservedSpace": "1b" }, [GC_TOO_SMALL("cacheReservedSpace", "1b", 1)]],
  ["cacheMaxUsedSpace", { "buildkit:cacheMaxUsedSpace": "1b" }, [GC_TOO_SMALL("cacheMaxUsedSpace", "1b", 1)]],
  ["cacheMaxUsedSpace", { "buildkit:cacheMaxUsedSpace": "20ib" }, [`buildkit:cacheMaxUsedSpace is "20ib"; expected ${SIZE}`]],
  ["cacheMaxUsedSpace", { "buildkit:cacheMaxUsedSpace": "9999999t" }, [`buildkit:cacheMaxUsedSpace is "9999999t"; expected ${SIZE}`]],
  ["cacheMaxUsedSpace in production", { ...PRODUCTION, "buildkit:cacheMaxUsedSpace": "512m" }, [PRODUCTION_CEILING("512m", 512 * MIB)]],
  ["cacheMinFreeSpace", { "buildkit:cacheMinFreeSpace": "512" }, [GC_TOO_SMALL("cacheMinFreeSpace", "512", 512)]],
  ["maxParallelism", { "buildkit:maxParallelism": "1025" }, ['buildkit:maxParallelism is "1025"; expected a whole number of parallel build steps from 1 to 1024']],
  ["maxParallelism", { "buildkit:maxParallelism": "1e2" }, ['buildkit:maxParallelism is "1e2"; expected a whole number of parallel build steps from 1 to 1024']],
  // Mirrors: one entry per host (an http:// one downgrades the https:// one), real hosts and ports.
  [
    "registryMirrors",
    { "buildkit:registryMirrors": '["https://a","http://a"]' },
    ['buildkit:registryMirrors lists a 2 times ("https://a", "http://a"); list each mirror once: its http:// entry would make every entry of that host plain HTTP'],
  ],
  ["registryMirrors", { "buildkit:registryMirrors": '["a","a"]' }, ['buildkit:registryMirrors lists a 2 times ("a", "a"); list each mirror once']],
  ["registryMirrors", { "buildkit:registryMirrors": '["mirror:99999"]' }, [BAD_MIRROR('["mirror:99999"]', "port 99999 is not from 1 to 65535")]],
  ["registryMirrors", { "buildkit:registryMirrors": '["ftp://mirror"]' }, [BAD_MIRROR('["ftp://mirror"]', '"ftp://mirror" is not a host, an optional :port and nothing else')]],
  ["registryMirrors", { "buildkit:registryMirrors": '["-bad-.example"]' }, [BAD_MIRROR('["-bad-.example"]', '"-bad-.example" is not a host name or IPv4 address')]],
  ["registryMirrors", { "buildkit:registryMirrors": '[""]' }, [BAD_MIRROR('[""]', '"" is not a host, an optional :port and nothing else')]],
  // Extra hosts: docker refuses an address that is not one at create time.
  ["extraHosts", { "buildkit:extraHosts": '["db:abc"]' }, [BAD_HOST('["db:abc"]', '"abc" is not an IPv4 or IPv6 address, nor host-gateway')]],
  ["extraHosts", { "buildkit:extraHosts": '["db:1.2.3"]' }, [BAD_HOST('["db:1.2.3"]', '"1.2.3" is not an IPv4 or IPv6 address, nor host-gateway')]],
  ["extraHosts", { "buildkit:extraHosts": '["db:999.1.1.1"]' }, [BAD_HOST('["db:999.1.1.1"]', '"999.1.1.1" is not an IPv4 or IPv6 address, nor host-gateway')]],
  ["extraHosts", { "buildkit:extraHosts": '["db:01.2.3.4"]' }, [BAD_HOST('["db:01.2.3.4"]', '"01.2.3.4" is not an IPv4 or IPv6 address, nor host-gateway')]],
  ["extraHosts", { "buildkit:extraHosts": '["db:fe80::1%eth0"]' }, [BAD_HOST('["db:fe80::1%eth0"]', '"fe80::1%eth0" is not an IPv4 or IPv6 address, nor host-gateway')]],
  ["extraHosts", { "buildkit:extraHosts": '[":1.2.3.4"]' }, [BAD_HOST('[":1.2.3.4"]', '"" is not a host name')]],
  ["extraHosts", { "buildkit:extraHosts": ["ok:10.0.0.1", "db host:10.0.0.2"] }, [`buildkit:extraHosts is ["ok:10.0.0.1","db host:10.0.0.2"]; expected ${EXTRA_HOSTS} ("db host" is not a host name)`]],
  // Worker platforms: what the worker advertises is matched against builds' --platform as written.
  ["platforms", { "buildkit:platforms": "linux/arm64" }, [`buildkit:platforms is "linux/arm64"; expected ${PLATFORMS}`]],
  ["platforms", { "buildkit:platforms": '["linux/aarch64"]' }, [BAD_PLATFORMS('["linux/aarch64"]', '"aarch64" is not an architecture as Go and OCI spell it (amd64, arm64, arm, 386, ppc64le, s390x, riscv64, mips64le, mips64, loong64)')]],
  ["platforms", { "buildkit:platforms": '["windows/amd64"]' }, [BAD_PLATFORMS('["windows/amd64"]', '"windows/amd64": the OCI worker runs linux containers only, not windows')]],
  ["platforms", { "buildkit:platforms": '["Linux/ARM64"]' }, [BAD_PLATFORMS('["Linux/ARM64"]', '"Linux/ARM64" is not os/arch or os/arch/variant in lower case')]],
  ["platforms", { "buildkit:platforms": '["arm64"]' }, [BAD_PLATFORMS('["arm64"]', '"arm64" is not os/arch or os/arch/variant in lower case')]],
  ["platforms", { "buildkit:platforms": '["linux/arm/7"]' }, [BAD_PLATFORMS('["linux/arm/7"]', '"linux/arm/7" is not os/arch or os/arch/variant in lower case')]],
  ["platforms", { "buildkit:platforms": ["linux/amd64", 64] }, [`buildkit:platforms is ["linux/amd64",64]; expected ${PLATFORMS}`]],
  ["platforms", { "buildkit:platforms": "[]" }, ["buildkit:platforms is []; expected at least one platform, or no buildkit:platforms at all for what buildkitd detects on its host"]],
  ["platforms", { "buildkit:platforms": '["linux/arm64","linux/amd64","linux/arm64"]' }, ['buildkit:platforms lists "linux/arm64" more than once; list each platform once']],
  // Variants that do not exist: advertised as written, they match no build and no image in an index.
  ["platforms", { "buildkit:platforms": '["linux/amd64/v9"]' }, [BAD_PLATFORMS('["linux/amd64/v9"]', '"linux/amd64/v9": amd64 has no variant v9 (its variants: v1, v2, v3, v4)')]],
  ["platforms", { "buildkit:platforms": '["linux/arm/v4"]' }, [BAD_PLATFORMS('["linux/arm/v4"]', '"linux/arm/v4": arm has no variant v4 (its variants: v5, v6, v7, v8)')]],
  ["platforms", { "buildkit:platforms": '["linux/arm64/v7"]' }, [BAD_PLATFORMS('["linux/arm64/v7"]', '"linux/arm64/v7": arm64 has no variant v7 (its variants: v8, v8.0-v8.9, v9, v9.0-v9.5)')]],
  ["platforms", { "buildkit:platforms": '["linux/arm64/v9.6"]' }, [BAD_PLATFORMS('["linux/arm64/v9.6"]', '"linux/arm64/v9.6": arm64 has no variant v9.6 (its variants: v8, v8.0-v8.9, v9, v9.0-v9.5)')]],
  ["platforms", { "buildkit:platforms": '["linux/amd64/v2.1"]' }, [BAD_PLATFORMS('["linux/amd64/v2.1"]', '"linux/amd64/v2.1": amd64 has no variant v2.1 (its variants: v1, v2, v3, v4)')]],
  ["platforms", { "buildkit:platforms": '["linux/riscv64/v1"]' }, [BAD_PLATFORMS('["linux/riscv64/v1"]', '"linux/riscv64/v1": riscv64 has no variants; write linux/riscv64')]],
  // Extra hosts: one address per name (the first /etc/hosts line wins; the provider keeps a set).
  [
    "extraHosts",
    { "buildkit:extraHosts": '["db:10.0.0.2","DB:10.0.0.3","gw:host-gateway"]' },
    ['buildkit:extraHosts maps "db" to 10.0.0.2 and 10.0.0.3 ("db:10.0.0.2", "DB:10.0.0.3"); list each host once, with the one address it should resolve to'],
  ],
  ["extraHosts", { "buildkit:extraHosts": '["db:10.0.0.2","db:10.0.0.2"]' }, ['buildkit:extraHosts lists "db:10.0.0.2" 2 times; list each host once']],
  // Ports and addresses.
  ["tcpPort", { "buildkit:tcpPort": "0x10" }, [`buildkit:tcpPort is "0x10"; expected ${PORT}`]],
  ["tcpPort", { "buildkit:tcpPort": "1e3" }, [`buildkit:tcpPort is "1e3"; expected ${PORT}`]],
  ["tcpPort", { "buildkit:tcpPort": "080" }, [`buildkit:tcpPort is "080"; expected ${PORT}`]],
  ["tcpPort", { "buildkit:tcpPort": 1234.5 }, [`buildkit:tcpPort is 1234.5; expected ${PORT}`]],
  [
    "tcpAddress",
    { "buildkit:tcpPort": "1", "buildkit:tcpAddress": "127.1" },
    ['buildkit:tcpAddress is "127.1"; expected an IP address of this Docker host to publish the TCP listener on, like 127.0.0.1', TCP_NEEDS_TLS(1)],
  ],
  // Docker endpoints.
  ["dockerHost", { "buildkit:dockerHost": "tcp://host:99999" }, [`buildkit:dockerHost is "tcp://host:99999"; expected ${DOCKER_HOST}`]],
  ["dockerHost", { "buildkit:dockerHost": "unix://relative.sock" }, [`buildkit:dockerHost is "unix://relative.sock"; expected ${DOCKER_HOST}`]],
  ["dockerHost", { "buildkit:dockerHost": "ssh://" }, [`buildkit:dockerHost is "ssh://"; expected ${DOCKER_HOST}`]],
  // A plaintext Docker API is root on that host for anyone on the path: tcp:// only with TLS, for one host as for a fleet.
  ["dockerHost", { "buildkit:dockerHost": "tcp://build-host:2376" }, [
    'buildkit:dockerHost is "tcp://build-host:2376" but no Docker TLS material is set; a plaintext Docker API is root on that host for anyone who reaches the port. ' +
      "Set buildkit:dockerTlsCa, buildkit:dockerTlsCert and buildkit:dockerTlsKey (secrets), or reach the host over ssh://",
  ]],
  ["dockerTlsCa", { "buildkit:dockerHost": "tcp://h:2376", "buildkit:dockerTlsCa": "ca", "buildkit:dockerTlsCert": PEM("CERTIFICATE"), "buildkit:dockerTlsKey": PEM("PRIVATE KEY") }, [
    "buildkit:dockerTlsCa is [secret]; expected a PEM-encoded CA certificate of the Docker engine (docker's ca.pem), set with `pulumi config set --secret`",
  ]],
  ["dockerTlsCert", { "buildkit:dockerHost": "tcp://h:2376", "buildkit:dockerTlsCert": PEM("CERTIFICATE") }, [
    "buildkit:dockerTlsCert set but buildkit:dockerTlsCa, buildkit:dockerTlsKey not; set all three Docker TLS files (CA, client certificate, client key) or none",
  ]],
  ["dockerTlsKey", { "buildkit:dockerHost": "ssh://u@h", "buildkit:dockerTlsCa": PEM("CERTIFICATE"), "buildkit:dockerTlsCert": PEM("CERTIFICATE"), "buildkit:dockerTlsKey": PEM("PRIVATE KEY") }, [
    'buildkit:dockerTlsCa, buildkit:dockerTlsCert and buildkit:dockerTlsKey are set but buildkit:dockerHost is "ssh://u@h"; Docker TLS material applies only to a tcp:// engine',
  ]],
  ["dockerHost", { "buildkit:dockerHost": "http://host:2375" }, [`buildkit:dockerHost is "http://host:2375"; expected ${DOCKER_HOST}`]],
  ["dockerHost", { "buildkit:dockerHost": "tcp://host:2376/path" }, [`buildkit:dockerHost is "tcp://host:2376/path"; expected ${DOCKER_HOST}`]],
  ["tagRegistry", { "buildkit:tagRegistry": "http://127.0.0.1:5000/v2" }, ['buildkit:tagRegistry is "http://127.0.0.1:5000/v2"; expected the registry the engine pulls the image from, host[:port] (http:// for plain HTTP), like http://127.0.0.1:5000 for a local mirror or registry-1.docker.io for Docker Hub ("http://127.0.0.1:5000/v2" is not a host, an optional :port and nothing else)']],
  ["tagRegistry", { "buildkit:tagRegistry": "127.0.0.1:70000" }, ['buildkit:tagRegistry is "127.0.0.1:70000"; expected the registry the engine pulls the image from, host[:port] (http:// for plain HTTP), like http://127.0.0.1:5000 for a local mirror or registry-1.docker.io for Docker Hub (port 70000 is not from 1 to 65535)']],
  ["tagRegistry", { "buildkit:tagRegistry": "ftp://mirror" }, ['buildkit:tagRegistry is "ftp://mirror"; expected the registry the engine pulls the image from, host[:port] (http:// for plain HTTP), like http://127.0.0.1:5000 for a local mirror or registry-1.docker.io for Docker Hub ("ftp://mirror" is not a host, an optional :port and nothing else)']],
  ["tagRegistry", { "buildkit:tagRegistry": true }, ['buildkit:tagRegistry is true; expected the registry the engine pulls the image from, host[:port] (http:// for plain HTTP), like http://127.0.0.1:5000 for a local mirror or registry-1.docker.io for Docker Hub']],
  // Keys spelt with another case are other keys.
  ["an unknown key", { "buildkit:Memory": "1g" }, [`buildkit:Memory is not a setting this program reads; known settings: ${KNOWN}`]],
];

describe("key material only as Pulumi secrets", () => {
  const keyMaterial = {
    "buildkit:tcpPort": "1234",
    "buildkit:tlsCa": PEM("CERTIFICATE"),
    "buildkit:tlsCert": PEM("CERTIFICATE"),
    "buildkit:tlsKey": PEM("PRIVATE KEY"),
    "buildkit:tlsClientCert": PEM("CERTIFICATE"),
    "buildkit:tlsClientKey": PEM("PRIVATE KEY"),
  };
  const storedAs = (secret: string[]) => ({ stack: "dev", isSecret: (key: string) => secret.includes(key) });

  it("refuses every PEM key stored in plain text, naming it and the command, never the value", () => {
    let problems: string[] = [];
    try {
      parseDockerSettings(keyMaterial, storedAs(["buildkit:tlsCa"]));
    } catch (error) {
      problems = (error as ConfigError).problems;
    }
    expect(problems.slice(0, 4)).toEqual(
      ["tlsCert", "tlsKey", "tlsClientCert", "tlsClientKey"].map(
        (key) =>
          `buildkit:${key} is key material stored in plain text in the stack file (and so in git); ` +
          `store it as a secret: pulumi config set --secret buildkit:${key} < file.pem, then check the plain value is gone from Pulumi.<stack>.yaml`,
      ),
    );
    expect(problems.join("\n")).not.toContain("-----BEGIN");
  });

  it("reads them when they are secrets (what the Pulumi runtime reports), and checks nothing when not asked", () => {
    const problemsOf = (context: { stack: string; isSecret?: (key: string) => boolean }) => {
      try {
        parseDockerSettings(keyMaterial, context);
        return [];
      } catch (error) {
        return (error as ConfigError).problems.filter((p) => p.includes("plain text"));
      }
    };
    expect(problemsOf(storedAs(Object.keys(keyMaterial)))).toEqual([]);
    expect(problemsOf({ stack: "dev" })).toEqual([]);
  });
});

describe("adversarial values, key by key", () => {
  it("covers at least 60 values", () => {
    expect(ADVERSARIAL.length).toBeGreaterThanOrEqual(60);
  });

  it("touches every key but the PEM ones (checked with real certificates below) and the two defaults-only ones", () => {
    const touched = new Set(ADVERSARIAL.flatMap(([, raw]) => Object.keys(raw).map((k) => k.replace(/^buildkit:/, ""))));
    const untested = DOCKER_KEYS.filter((k) => !touched.has(k));
    expect(untested).toEqual(["debug", "tlsCa", "tlsCert", "tlsKey", "tlsClientCert", "tlsClientKey"]);
  });

  it.each(ADVERSARIAL)("refuses %s %j, naming key, value and accepted form", (_key, raw, expected) => {
    expect(problemsOf(raw)).toEqual(expected);
  });
});

describe("values at the edges that work as written", () => {
  it.each([
    ["memory", { "buildkit:memory": "32m" }, { memoryBytes: MIN_MEMORY_BYTES }],
    ["memory", { "buildkit:memory": "1.5g" }, { memoryBytes: 1536 * MIB }],
    ["cpus", { "buildkit:cpus": "0.1" }, { cpus: 0.1 }],
    ["cpus", { "buildkit:cpus": "0.25" }, { cpus: 0.25 }],
    ["cpus", { "buildkit:cpus": "10" }, { cpus: 10 }],
    ["cpus", { "buildkit:cpus": "100.05" }, { cpus: 100.05 }],
    ["cacheMaxUsedSpace", { "buildkit:cacheMaxUsedSpace": "1m" }, { cacheMaxUsedSpaceBytes: MIB }],
    ["cacheMaxUsedSpace", { "buildkit:cacheMaxUsedSpace": "8191t" }, { cacheMaxUsedSpaceBytes: 8191 * 1024 ** 4 }],
    ["registryMirrors", { "buildkit:registryMirrors": '["http://a:5000","https://b","10.0.0.1:443"]' }, { registryMirrors: ["http://a:5000", "https://b", "10.0.0.1:443"] }],
    ["extraHosts", { "buildkit:extraHosts": '["db:::1","db6:2001:db8::1","gw:host-gateway"]' }, { extraHosts: ["db:::1", "db6:2001:db8::1", "gw:host-gateway"] }],
    ["labels", { "buildkit:labels": '{"org.example.team":"platform","buildkit-stack":"mine"}' }, { labels: { "org.example.team": "platform", "buildkit-stack": "mine" } }],
    ["image", { "buildkit:image": "Registry.Example.com:5000/team/buildkit:v1" }, { image: "Registry.Example.com:5000/team/buildkit:v1" }],
    ["image", { "buildkit:image": "localhost/moby/buildkit:v1" }, { image: "localhost/moby/buildkit:v1" }],
    ["image", { "buildkit:rootless": "true", "buildkit:image": "moby/buildkit:rootless" }, { image: "moby/buildkit:rootless" }],
    ["networkName", { "buildkit:networkName": "hosts" }, { networkName: "hosts" }],
    ["containerName", { "buildkit:containerName": `${"b".repeat(63)}.${"c".repeat(63)}` }, { containerName: `${"b".repeat(63)}.${"c".repeat(63)}` }],
    ["cacheVolumeName", { "buildkit:cacheVolumeName": "v".repeat(255) }, { cacheVolumeName: "v".repeat(255) }],
    ["dockerHost", { "buildkit:dockerHost": "ssh://builder@build-host:2222" }, { dockerHost: "ssh://builder@build-host:2222" }],
    ["restartMaxRetries", { "buildkit:restartPolicy": "on-failure", "buildkit:restartMaxRetries": 3 }, { restartMaxRetries: 3 }],
    ["platforms", { "buildkit:platforms": '["linux/arm64"]' }, { platforms: ["linux/arm64"] }],
    ["platforms", { "buildkit:platforms": ["linux/amd64", "linux/arm/v7", "linux/amd64/v3", "linux/riscv64"] }, { platforms: ["linux/amd64", "linux/arm/v7", "linux/amd64/v3", "linux/riscv64"] }],
    ["platforms", { "buildkit:platforms": ["linux/amd64/v1", "linux/amd64/v4", "linux/arm/v5", "linux/arm/v8", "linux/arm64/v8", "linux/arm64/v8.2", "linux/arm64/v9"] }, { platforms: ["linux/amd64/v1", "linux/amd64/v4", "linux/arm/v5", "linux/arm/v8", "linux/arm64/v8", "linux/arm64/v8.2", "linux/arm64/v9"] }],
    ["extraHosts", { "buildkit:extraHosts": '["db:10.0.0.2","db2:10.0.0.2","db.example:10.0.0.2"]' }, { extraHosts: ["db:10.0.0.2", "db2:10.0.0.2", "db.example:10.0.0.2"] }],
  ])("accepts %s %j", (_key, raw, expected) => {
    expect(parseDockerSettings(raw, { stack: "dev" })).toMatchObject(expected);
  });

  it("spells every accepted CPU count back unchanged through the provider", () => {
    for (let hundredths = 10; hundredths <= 102400; hundredths++) {
      const cpus = hundredths / 100;
      let accepted: number | undefined;
      try {
        accepted = parseDockerSettings({ "buildkit:cpus": String(cpus) }, { stack: "dev" }).cpus;
      } catch {
        continue;
      }
      if (Number(providerCpus(accepted!)) !== cpus) throw new Error(`${cpus} accepted but spelt ${providerCpus(accepted!)}`);
    }
  });
});

describe("keys and values as the Pulumi runtime gives them", () => {
  it("reads booleans, numbers, lists and maps given as config strings", () => {
    const parsed = parseDockerSettings(
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
    const parsed = parseDockerSettings(
      { "buildkit:debug": true, "buildkit:cpus": 2.5, "buildkit:extraHosts": ["a:1.2.3.4"], "buildkit:labels": { team: "x" } },
      { stack: "dev" },
    );
    expect(parsed).toMatchObject({ debug: true, cpus: 2.5, extraHosts: ["a:1.2.3.4"], labels: { team: "x" } });
  });

  it("reads keys with or without the buildkit: prefix, and names them in full in problems", () => {
    expect(parseDockerSettings({ memory: "512m", "buildkit:cpus": "1" }, { stack: "dev" })).toMatchObject({ memoryBytes: 512 * MIB, cpus: 1 });
    expect(problemsOf({ memory: "lots" })).toEqual([`buildkit:memory is "lots"; expected ${SIZE}`]);
    expect(problemsOf({ tcpAddress: "10.0.0.1" })).toEqual([
      "buildkit:tcpAddress is set but buildkit:tcpPort is not; the address only applies to the TCP listener",
    ]);
  });
});

describe("defaults", () => {
  const settings = parseDockerSettings({}, { stack: "staging" });

  it("names the container like the seed and the network and volume per stack", () => {
    expect(settings).toMatchObject({ containerName: "buildkitd", networkName: "buildkit-staging", cacheVolumeName: "buildkit-staging-cache" });
    expect(parseDockerSettings({}, { stack: "prod" })).toMatchObject({ networkName: "buildkit-prod", cacheVolumeName: "buildkit-prod-cache" });
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
      platforms: [],
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
    expect(parseDockerSettings({ "buildkit:rootless": "true" }, { stack: "dev" }).image).toBe(DEFAULT_ROOTLESS_IMAGE);
    expect(DEFAULT_ROOTLESS_IMAGE).toBe("moby/buildkit:v0.32.2-rootless");
    expect(parseDockerSettings({ "buildkit:rootless": "true", "buildkit:image": "me/bk:1" }, { stack: "dev" }).image).toBe("me/bk:1");
  });

  it("in production, restarts the daemon, protects the cache and pins the image", () => {
    expect(parseDockerSettings(PRODUCTION, { stack: "prod" })).toMatchObject({
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
    const relaxed = parseDockerSettings(
      { ...PRODUCTION, "buildkit:restartPolicy": "always", "buildkit:cacheProtected": "false", "buildkit:requirePinnedImage": "false", "buildkit:image": "moby/buildkit:latest" },
      { stack: "prod" },
    );
    expect(relaxed).toMatchObject({ restartPolicy: "always", cacheProtected: false, requirePinnedImage: false, image: "moby/buildkit:latest" });
  });

  it("in production, refuses privileges by default but needs no decision when rootless", () => {
    const { "buildkit:allowPrivileged": _, ...undecided } = PRODUCTION;
    expect(problemsOf(undecided)).toEqual([NEEDS_PRIVILEGE(true)]);
    expect(parseDockerSettings({ ...undecided, "buildkit:rootless": "true" }, { stack: "prod" })).toMatchObject({
      rootless: true,
      allowPrivileged: false,
      image: DEFAULT_ROOTLESS_IMAGE,
    });
  });

  it("restarts on failure a given number of times", () => {
    expect(parseDockerSettings({ "buildkit:restartPolicy": "on-failure", "buildkit:restartMaxRetries": "4" }, { stack: "dev" })).toMatchObject({
      restartPolicy: "on-failure",
      restartMaxRetries: 4,
    });
  });

  it("accepts a GC floor equal to the ceiling", () => {
    expect(parseDockerSettings({ "buildkit:cacheReservedSpace": "1g", "buildkit:cacheMaxUsedSpace": "1024m" }, { stack: "dev" })).toMatchObject({
      cacheReservedSpaceBytes: GIB,
      cacheMaxUsedSpaceBytes: GIB,
    });
  });
});

describe("TLS and the TCP listener, checked with node:crypto", () => {
  const RESTRICTED = ["DNS:buildkitd", "IP:127.0.0.1"];
  let good: CertificateSet;
  let other: CertificateSet;
  let onlyAddress: CertificateSet;
  let expired: CertificateSet;
  let clientOnlyUsage: CertificateSet;
  beforeAll(() => {
    good = makeCertificates({ serverSans: [...RESTRICTED, "DNS:bk-remote", "IP:10.0.0.5", "IP:::1"] });
    other = makeCertificates({ serverSans: RESTRICTED });
    onlyAddress = makeCertificates({ serverSans: ["IP:127.0.0.1"] });
    expired = makeCertificates({ serverSans: RESTRICTED, expired: true });
    clientOnlyUsage = makeCertificates({ serverSans: RESTRICTED, serverUsage: "clientAuth" });
  });
  const listener = (set: CertificateSet, extra: Record<string, unknown> = {}) => ({
    "buildkit:tcpPort": "1234",
    "buildkit:tlsCa": set.ca,
    "buildkit:tlsCert": set.cert,
    "buildkit:tlsKey": set.key,
    "buildkit:tlsClientCert": set.clientCert,
    "buildkit:tlsClientKey": set.clientKey,
    ...extra,
  });
  const SAN_MISSING = (missing: string, has: string, container = "buildkitd") =>
    `buildkit:tlsCert does not cover ${missing.split(",").join(" and ")} in its subjectAltName (it has ${has}); ` +
    `the smoke test dials tcp://${container}:1234 and clients dial buildkit:tcpAddress: issue it with subjectAltName=${missing}`;

  it("accepts a complete listener whose server certificate names the container and the published address", () => {
    expect(parseDockerSettings(listener(good, { "buildkit:tcpAddress": "10.0.0.5", "buildkit:containerName": "bk-remote" }), { stack: "dev" })).toMatchObject({
      containerName: "bk-remote",
      tcpPort: 1234,
      tcpAddress: "10.0.0.5",
      tls: { ca: good.ca, cert: good.cert, key: good.key, clientCert: good.clientCert, clientKey: good.clientKey },
    });
  });

  it("publishes on 127.0.0.1 unless an address is given, and takes IPv6 addresses", () => {
    expect(parseDockerSettings(listener(good, { "buildkit:tcpPort": "65535" }), { stack: "dev" })).toMatchObject({ tcpPort: 65535, tcpAddress: "127.0.0.1" });
    expect(parseDockerSettings(listener(good, { "buildkit:tcpPort": "1", "buildkit:tcpAddress": "::1" }), { stack: "dev" })).toMatchObject({ tcpPort: 1, tcpAddress: "::1" });
  });

  it("checks only the container name when the listener is on every address (0.0.0.0, ::): clients then dial a name of yours", () => {
    expect(parseDockerSettings(listener(other, { "buildkit:tcpAddress": "0.0.0.0" }), { stack: "dev" }).tcpAddress).toBe("0.0.0.0");
    expect(problemsOf(listener(onlyAddress, { "buildkit:tcpAddress": "::" }))).toEqual([SAN_MISSING("DNS:buildkitd", "IP Address:127.0.0.1")]);
  });

  it("refuses a server certificate that does not name the container the smoke test dials", () => {
    expect(problemsOf(listener(onlyAddress))).toEqual([SAN_MISSING("DNS:buildkitd", "IP Address:127.0.0.1")]);
    expect(problemsOf(listener(other, { "buildkit:containerName": "bk-other" }))).toEqual([
      SAN_MISSING("DNS:bk-other", "DNS:buildkitd, IP Address:127.0.0.1", "bk-other"),
    ]);
  });

  it("refuses a server certificate that does not cover the published address clients are told to dial", () => {
    expect(problemsOf(listener(other, { "buildkit:tcpAddress": "10.0.0.5", "buildkit:containerName": "bk-x" }))).toEqual([
      SAN_MISSING("DNS:bk-x,IP:10.0.0.5", "DNS:buildkitd, IP Address:127.0.0.1", "bk-x"),
    ]);
  });

  it("refuses a key that is not the certificate's", () => {
    expect(problemsOf(listener(good, { "buildkit:tlsKey": good.clientKey, "buildkit:tlsClientKey": good.key }))).toEqual([
      "buildkit:tlsKey is not the private key of buildkit:tlsCert; set the key the certificate was issued for",
      "buildkit:tlsClientKey is not the private key of buildkit:tlsClientCert; set the key the certificate was issued for",
    ]);
  });

  it("refuses certificates another CA signed", () => {
    expect(problemsOf(listener(good, { "buildkit:tlsClientCert": other.clientCert, "buildkit:tlsClientKey": other.clientKey }))).toEqual([
      'buildkit:tlsClientCert is not signed by buildkit:tlsCa (issuer "CN=buildkit-stack test CA"); sign it with that CA, which both sides trust',
    ]);
    expect(problemsOf(listener(good, { "buildkit:tlsCa": other.ca }))).toEqual([
      'buildkit:tlsCert is not signed by buildkit:tlsCa (issuer "CN=buildkit-stack test CA"); sign it with that CA, which both sides trust',
      'buildkit:tlsClientCert is not signed by buildkit:tlsCa (issuer "CN=buildkit-stack test CA"); sign it with that CA, which both sides trust',
    ]);
  });

  it("refuses expired certificates", () => {
    const validity = (pem: string) => {
      const cert = new X509Certificate(pem);
      return `valid from ${cert.validFrom} to ${cert.validTo}, not now; issue a current one`;
    };
    expect(problemsOf(listener(expired))).toEqual([
      `buildkit:tlsCert is ${validity(expired.cert)}`,
      `buildkit:tlsClientCert is ${validity(expired.clientCert)}`,
    ]);
  });

  it("refuses a server certificate issued for client authentication only", () => {
    expect(problemsOf(listener(clientOnlyUsage))).toEqual([
      "buildkit:tlsCert has extended key usage 1.3.6.1.5.5.7.3.2 without serverAuth (1.3.6.1.5.5.7.3.1); issue it for serverAuth",
    ]);
  });

  it("refuses PEM text that is no certificate or key, without echoing it", () => {
    const problems = problemsOf(listener(good, { "buildkit:tlsCert": PEM("CERTIFICATE"), "buildkit:tlsClientKey": PEM("PRIVATE KEY") }));
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(
      /^buildkit:tlsCert is \[secret\]; expected a PEM-encoded server certificate, set with `pulumi config set --secret` \(node:crypto cannot read it as an X\.509 certificate: .+\)$/,
    );
    expect(problems[1]).toMatch(
      /^buildkit:tlsClientKey is \[secret\]; expected a PEM-encoded client private key, set with `pulumi config set --secret` \(node:crypto cannot read it as a private key: .+\)$/,
    );
  });

  it("accepts the certificates the configuration reference's openssl recipe makes", () => {
    const readme = fs.readFileSync(path.join(ROOT, "docs/configuration.md"), "utf8");
    const section = readme.slice(readme.indexOf("**TLS certificates for the TCP listener.**"));
    const recipe = /```sh\n([\s\S]*?)```/.exec(section)![1];
    // The openssl half; the pulumi config half stores exactly these files.
    const openssl = recipe.slice(0, recipe.indexOf("pulumi config set"));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildkit-stack-readme-tls-"));
    execFileSync("bash", ["-euo", "pipefail", "-c", openssl], { cwd: dir, stdio: "pipe" });
    const read = (file: string) => fs.readFileSync(path.join(dir, file), "utf8");
    const settings = parseDockerSettings(
      {
        "buildkit:tcpPort": "1234",
        "buildkit:tlsCa": read("ca.pem"),
        "buildkit:tlsCert": read("server.pem"),
        "buildkit:tlsKey": read("server.key"),
        "buildkit:tlsClientCert": read("client.pem"),
        "buildkit:tlsClientKey": read("client.key"),
      },
      { stack: "dev" },
    );
    expect(settings).toMatchObject({ containerName: "buildkitd", tcpAddress: "127.0.0.1", tcpPort: 1234 });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("says what is missing before judging the material", () => {
    expect(problemsOf({ ...listener(good), "buildkit:tlsClientKey": undefined, "buildkit:tlsKey": undefined })).toEqual([
      "buildkit:tlsCa, buildkit:tlsCert are set but buildkit:tlsKey is not; set all three TLS settings (CA, server certificate, server key) or none",
      NEEDS_CLIENT_CERT(1234, "buildkit:tlsClientKey is"),
    ]);
  });
});

describe("sizes in docker's units", () => {
  it("resolves every size setting to bytes", () => {
    const parsed = parseDockerSettings(
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
  it.each([`moby/buildkit@${DIGEST}`, "localhost:5000/moby/buildkit:v1", "registry.example.com:443/team/buildkit:2025-01"])(
    "production accepts %s",
    (image) => {
      expect(parseDockerSettings({ ...PRODUCTION, "buildkit:image": image }, { stack: "prod" }).image).toBe(image);
    },
  );

  it("is not required outside production unless asked for", () => {
    expect(parseDockerSettings({ "buildkit:image": "moby/buildkit:latest" }, { stack: "dev" })).toMatchObject({
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
    for (const key of Object.keys(project.config)) expect(DOCKER_KEYS).toContain(key);
  });

  it("dev is valid: small limits, a mirror, a disposable cache", () => {
    expect(parseDockerSettings(allConfig("dev"), { stack: "dev" })).toEqual({
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
      platforms: [],
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
    const prod = parseDockerSettings(allConfig("prod"), { stack: "prod" });
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
      platforms: [],
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
    expect(parseDockerSettings({ "buildkit:stopGracePeriod": given }, { stack: "dev" }).stopGraceSeconds).toBe(seconds);
  });
  it("defaults to 10 minutes: long enough for typical builds, free when the daemon is idle", () => {
    expect(parseDockerSettings({}, { stack: "dev" }).stopGraceSeconds).toBe(600);
  });
  it.each(["2h", "61m", "ten minutes", "1.5m", "-5s", "5d"])("refuses %p, naming the key, the value and the form", (given) => {
    expect(problemsOf({ "buildkit:stopGracePeriod": given })).toEqual([`buildkit:stopGracePeriod is ${JSON.stringify(given)}; expected ${FORM}`]);
  });
});

describe("buildkit:tagRegistry", () => {
  const DIGEST = "sha256:" + "a".repeat(64);
  const follow = (image: string | undefined, tagRegistry: string) =>
    parseDockerSettings({ ...(image ? { "buildkit:image": image } : {}), "buildkit:tagRegistry": tagRegistry }, { stack: "dev" }).tagRegistry;

  it("is off by default: the tag is pulled once", () => {
    expect(parseDockerSettings({}, { stack: "dev" }).tagRegistry).toBeUndefined();
  });

  it("resolves a Docker Hub image at the engine's plain-HTTP mirror, where the container runs it as repository@digest", () => {
    expect(follow(undefined, "http://127.0.0.1:5000")).toEqual({
      host: "127.0.0.1:5000",
      plainHttp: true,
      reference: "127.0.0.1:5000/moby/buildkit:v0.32.2",
      repository: "moby/buildkit",
    });
  });

  it("adds library/ to official images and latest to untagged ones, as docker does", () => {
    expect(follow("busybox", "http://127.0.0.1:5000")).toMatchObject({ reference: "127.0.0.1:5000/library/busybox:latest", repository: "busybox" });
  });

  it("asks Docker Hub's API host however Docker Hub is named", () => {
    for (const hub of ["docker.io", "index.docker.io", "registry-1.docker.io"]) {
      expect(follow("moby/buildkit:v0.32.1", hub)).toEqual({
        host: "registry-1.docker.io",
        plainHttp: false,
        reference: "registry-1.docker.io/moby/buildkit:v0.32.1",
        repository: "moby/buildkit",
      });
    }
    expect(follow("docker.io/moby/buildkit:v0.32.1", "docker.io")).toMatchObject({ repository: "moby/buildkit" });
  });

  it("follows an image of a registry of its own at that registry", () => {
    expect(follow("registry.example.com:5000/team/buildkit:stable", "registry.example.com:5000")).toEqual({
      host: "registry.example.com:5000",
      plainHttp: false,
      reference: "registry.example.com:5000/team/buildkit:stable",
      repository: "registry.example.com:5000/team/buildkit",
    });
  });

  it("refuses a digest, which never points at another image", () => {
    expect(problemsOf({ "buildkit:image": `moby/buildkit:v0.32.2@${DIGEST}`, "buildkit:tagRegistry": "http://127.0.0.1:5000" })).toEqual([
      `buildkit:tagRegistry is "http://127.0.0.1:5000" but buildkit:image is "moby/buildkit:v0.32.2@${DIGEST}", pinned by digest: a digest never points at another image. Remove buildkit:tagRegistry, or name a tag to follow`,
    ]);
  });

  it("refuses another registry than the one the engine pulls an image with a registry from", () => {
    expect(problemsOf({ "buildkit:image": "registry.example.com/team/buildkit:stable", "buildkit:tagRegistry": "http://127.0.0.1:5000" })).toEqual([
      'buildkit:tagRegistry is "http://127.0.0.1:5000" but buildkit:image is "registry.example.com/team/buildkit:stable", which the engine pulls from registry.example.com ' +
        "(registry mirrors serve Docker Hub images only); set buildkit:tagRegistry to registry.example.com (http://registry.example.com for plain HTTP)",
    ]);
  });

  it("is allowed in production with a pinned tag: preview and drift show a moved tag before up rolls to it", () => {
    const prod = parseDockerSettings(
      {
        "buildkit:production": "true",
        "buildkit:allowPrivileged": "true",
        "buildkit:memory": "4g",
        "buildkit:cpus": "2",
        "buildkit:cacheMaxUsedSpace": "20g",
        "buildkit:image": "moby/buildkit:v0.32.2",
        "buildkit:tagRegistry": "http://127.0.0.1:5000",
      },
      { stack: "prod" },
    );
    expect(prod.tagRegistry?.reference).toBe("127.0.0.1:5000/moby/buildkit:v0.32.2");
  });
});
