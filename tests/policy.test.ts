/**
 * The policy pack's rules, each shown to reject a violating resource set and to
 * pass a conforming one. The inputs are what the component registers (labels,
 * options, URNs) and the configuration the workflows pass (policy/config.json),
 * so these are the cases a reviewer meets in a preview.
 */
import * as fs from "fs";
import * as path from "path";

import type { PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";

import { CONTAINER_TYPE as CONTAINER, IMAGE_TYPE as IMAGE, VOLUME_TYPE as VOLUME } from "../components/resource-types";
import { policies, PRODUCTION_CONFIG_SCHEMA, ProductionConfig, stackOfUrn } from "../policy/policies";

/** What policy/config.json gives each production policy: prod is production. */
const PROD: ProductionConfig = { productionStacks: ["prod"] };
/** A configuration that names no production stack: only a stack's own label makes it production. */
const NONE: ProductionConfig = { productionStacks: [] };
const PRODUCTION_POLICIES = ["production-daemon-has-limits", "production-image-pinned", "production-cache-protected"];
const unconfigured =
  'The policy pack ran without its configuration, so it cannot tell which stacks are production; pass --policy-pack-config policy/config.json ({"<policy>": {"productionStacks": ["prod"]}} for every production policy, as in policy/config.json).';


const labels = (production: boolean, allowPrivileged = true) => [
  { label: "org.buildkit-stack.allow-privileged", value: String(allowPrivileged) },
  { label: "org.buildkit-stack.container", value: "buildkitd" },
  { label: "org.buildkit-stack.production", value: String(production) },
];

function resource(
  type: string,
  props: Record<string, unknown>,
  protect = false,
  propertyDependencies: Record<string, PolicyResource[]> = {},
  stack = "prod",
): PolicyResource {
  return {
    type,
    props,
    urn: `urn:pulumi:${stack}::buildkit::${type}::${String(props.name)}`,
    name: String(props.name),
    opts: { protect, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [] },
    dependencies: Object.values(propertyDependencies).flat(),
    // What the engine sends for `image: image.imageId`: the input depends on the RemoteImage.
    propertyDependencies,
    // What the analyzer gives a policy: a type check against the SDK class's Pulumi type.
    isType: (cls: { __pulumiType?: string }) => cls.__pulumiType === type,
    asType: (cls: { __pulumiType?: string }) => (cls.__pulumiType === type ? props : undefined),
  } as unknown as PolicyResource;
}

const policy = (name: string) => {
  const found = policies.find((p) => p.name === name);
  if (!found) throw new Error(`no policy named ${name}`);
  return found;
};

/** Violations a resource policy reports for one resource, configured with `config` (what the CLI hands the pack). */
async function resourceViolations(name: string, target: PolicyResource, config: object = PROD): Promise<string[]> {
  const violations: string[] = [];
  const validate = (policy(name) as ResourceValidationPolicy).validateResource;
  const validators = Array.isArray(validate) ? validate : [validate];
  const args = { ...target, getConfig: () => config, notApplicable: () => undefined } as unknown as ResourceValidationArgs;
  for (const v of validators) await v!(args, (message: string) => violations.push(message));
  return violations;
}

/** Violations a stack policy reports for a set of resources, configured with `config`. */
async function stackViolations(name: string, resources: PolicyResource[], config: object = PROD): Promise<string[]> {
  const violations: string[] = [];
  await (policy(name) as StackValidationPolicy).validateStack(
    { resources, getConfig: () => config, stackTags: new Map(), notApplicable: () => undefined } as never,
    (message: string) => violations.push(message),
  );
  return violations;
}

const prodContainer = (props: Record<string, unknown> = {}, propertyDependencies: Record<string, PolicyResource[]> = {}, stack = "prod") =>
  resource(
    CONTAINER,
    { name: "buildkitd", labels: labels(true), memory: 4096, cpus: "2.0", privileged: true, command: ["--config", "/etc/buildkit/buildkitd.toml"], ...props },
    false,
    propertyDependencies,
    stack,
  );

describe("every policy", () => {
  it("is mandatory and explains itself", () => {
    expect(policies.map((p) => p.name)).toEqual([
      "production-daemon-has-limits",
      "production-image-pinned",
      "production-cache-protected",
      "tcp-listener-requires-tls",
      "privileged-only-where-allowed",
    ]);
    for (const p of policies) {
      expect(p.enforcementLevel).toBe("mandatory");
      expect(p.description.length).toBeGreaterThan(20);
    }
  });

  it("that judges production takes the list of production stacks as required configuration", () => {
    expect(policies.filter((p) => p.configSchema).map((p) => p.name)).toEqual(PRODUCTION_POLICIES);
    for (const name of PRODUCTION_POLICIES) expect(policy(name).configSchema).toBe(PRODUCTION_CONFIG_SCHEMA);
    expect(PRODUCTION_CONFIG_SCHEMA.required).toEqual(["productionStacks"]);
  });
});

describe("policy/config.json, the configuration scripts/up.sh and every workflow pass", () => {
  const config = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "policy", "config.json"), "utf8"));

  it("names prod, and only prod, as production, the same for every production policy", () => {
    expect(Object.keys(config).sort()).toEqual([...PRODUCTION_POLICIES].sort());
    for (const name of PRODUCTION_POLICIES) expect({ name, config: config[name] }).toEqual({ name, config: PROD });
  });
});

describe("which stacks are production", () => {
  it("reads the stack from the URN the engine writes", () => {
    expect(stackOfUrn("urn:pulumi:prod::buildkit::docker:index/container:Container::buildkitd")).toBe("prod");
    expect(stackOfUrn("urn:pulumi:dev::buildkit::buildkit:index:BuildkitStack$docker:index/container:Container::buildkit-daemon")).toBe("dev");
  });

  // The bypass of issue 18: the stack's own label said development, so every production rule was off.
  it("judges a configured production stack by the production rules even when its label says development", async () => {
    const relabelled = prodContainer({ labels: labels(false), memory: undefined, cpus: undefined });
    expect(await resourceViolations("production-daemon-has-limits", relabelled)).toEqual([
      "Production container buildkitd has no memory and no cpus limit; set buildkit:memory and buildkit:cpus.",
    ]);
  });

  it("lets a stack's label add it to production, never take it out", async () => {
    const unlimited = { memory: undefined, cpus: undefined };
    // Not configured as production, but declaring itself so: held to the rules.
    expect(await resourceViolations("production-daemon-has-limits", prodContainer(unlimited, {}, "fleet"), NONE)).toHaveLength(1);
    // Neither: development.
    expect(await resourceViolations("production-daemon-has-limits", prodContainer({ ...unlimited, labels: labels(false) }, {}, "dev"))).toEqual([]);
  });

  it("refuses to judge when the pack runs without its configuration (it cannot tell prod from dev)", async () => {
    for (const config of [{}, { productionStacks: "prod" }]) {
      expect(await resourceViolations("production-daemon-has-limits", prodContainer({}, {}, "dev"), config)).toEqual([unconfigured]);
      expect(await stackViolations("production-image-pinned", [prodContainer({ image: "moby/buildkit:v0.32.2" })], config)).toEqual([unconfigured]);
      expect(await stackViolations("production-cache-protected", [prodContainer()], config)).toEqual([unconfigured]);
    }
  });
});

describe("production-daemon-has-limits", () => {
  it("rejects a production daemon without memory and cpu limits", async () => {
    expect(await resourceViolations("production-daemon-has-limits", prodContainer({ memory: undefined, cpus: undefined }))).toEqual([
      "Production container buildkitd has no memory and no cpus limit; set buildkit:memory and buildkit:cpus.",
    ]);
  });
  // What the program used to send for buildkit:cpus 0.01 to 0.04: the provider's spelling of "no limit".
  it.each(["0.0", "0"])("rejects a production daemon whose cpus %j is no limit", async (cpus) => {
    expect(await resourceViolations("production-daemon-has-limits", prodContainer({ cpus }))).toEqual([
      `Production container buildkitd has no cpus limit (cpus "${cpus}" is no limit); set buildkit:cpus.`,
    ]);
  });
  it("rejects a production daemon without a memory limit, naming only that", async () => {
    expect(await resourceViolations("production-daemon-has-limits", prodContainer({ memory: 0 }))).toEqual([
      "Production container buildkitd has no memory limit; set buildkit:memory.",
    ]);
  });
  it("passes a limited production daemon, and ignores development", async () => {
    expect(await resourceViolations("production-daemon-has-limits", prodContainer({ cpus: "0.1" }))).toEqual([]);
    expect(await resourceViolations("production-daemon-has-limits", prodContainer())).toEqual([]);
    expect(await resourceViolations("production-daemon-has-limits", resource(CONTAINER, { name: "dev", labels: labels(false) }, false, {}, "dev"))).toEqual([]);
  });
});

describe("production-image-pinned", () => {
  const image = (name: string, stack = "prod") => resource(IMAGE, { name }, false, {}, stack);
  const runs = (img: PolicyResource, labelsOf = labels(true), stack = "prod") =>
    resource(CONTAINER, { name: "buildkitd", labels: labelsOf }, false, { image: [img] }, stack);
  const unpinned = (name: string) =>
    `Production image ${name} is not pinned; use a digest (@sha256:…) or a version tag (v0.32.2, 0.32, v0.32.2-rootless), such as moby/buildkit:v0.32.2.`;

  // Tags that move: `latest` was the only one refused before issue 18.
  it.each([
    "moby/buildkit:master",
    "moby/buildkit:nightly",
    "moby/buildkit:buildx-stable-1",
    "moby/buildkit:rootless",
    "moby/buildkit:master-rootless",
    "moby/buildkit:latest",
    "localhost:5000/moby/buildkit",
    `moby/buildkit@sha256:${"a".repeat(12)}`,
  ])("rejects %s, a reference that can move", async (name) => {
    const img = image(name);
    expect(await stackViolations("production-image-pinned", [runs(img), img])).toEqual([unpinned(name)]);
  });
  it.each(["moby/buildkit:v0.32.2", "moby/buildkit:0.32", "moby/buildkit:v0.32.2-rootless", "localhost:5000/moby/buildkit:v0.32.2", `moby/buildkit:master@sha256:${"a".repeat(64)}`])(
    "passes %s, a version tag or a digest",
    async (name) => {
      const img = image(name);
      expect(await stackViolations("production-image-pinned", [runs(img), img])).toEqual([]);
    },
  );

  it("rejects a production container whose RemoteImage is latest or untagged", async () => {
    const latest = image("moby/buildkit:latest");
    const untagged = image("registry:5000/moby/buildkit");
    expect(await stackViolations("production-image-pinned", [runs(latest), latest])).toEqual([unpinned("moby/buildkit:latest")]);
    expect(await stackViolations("production-image-pinned", [runs(untagged), untagged])).toEqual([unpinned("registry:5000/moby/buildkit")]);
  });
  it("rejects a literal unpinned image reference, and reports a shared image once", async () => {
    expect(await stackViolations("production-image-pinned", [prodContainer({ image: "moby/buildkit" })])).toEqual([unpinned("moby/buildkit")]);
    const latest = image("moby/buildkit:latest");
    expect(await stackViolations("production-image-pinned", [runs(latest), runs(latest), latest])).toEqual([unpinned("moby/buildkit:latest")]);
  });
  it("passes a release tag or a digest, any image outside production, and images no production container runs", async () => {
    const tagged = image("moby/buildkit:v0.32.2");
    const digest = image(`moby/buildkit@sha256:${"a".repeat(64)}`);
    const latest = image("moby/buildkit:latest");
    expect(await stackViolations("production-image-pinned", [runs(tagged), tagged])).toEqual([]);
    expect(await stackViolations("production-image-pinned", [runs(digest), digest])).toEqual([]);
    expect(await stackViolations("production-image-pinned", [runs(image("moby/buildkit:latest", "dev"), labels(false), "dev"), latest])).toEqual([]);
    expect(await stackViolations("production-image-pinned", [runs(tagged), tagged, latest])).toEqual([]);
  });
});

describe("production-cache-protected", () => {
  const notProtected = "Production cache volume buildkit-prod-cache is not protected; set buildkit:cacheProtected to true.";
  it("rejects an unprotected production cache volume mounted by the daemon", async () => {
    const mounted = resource(VOLUME, { name: "buildkit-prod-cache" }, false);
    expect(await stackViolations("production-cache-protected", [prodContainer({}, { volumes: [mounted] }), mounted])).toEqual([notProtected]);
  });
  it("rejects it on prod when the stack relabels itself as development, and passes it where no configuration or label says production", async () => {
    const mounted = resource(VOLUME, { name: "buildkit-prod-cache" }, false);
    const relabelled = prodContainer({ labels: labels(false) }, { volumes: [mounted] });
    expect(await stackViolations("production-cache-protected", [relabelled, mounted])).toEqual([notProtected]);
    expect(await stackViolations("production-cache-protected", [relabelled, mounted], NONE)).toEqual([]);
  });
  it("passes a protected one, and volumes of development daemons", async () => {
    const protectedCache = resource(VOLUME, { name: "buildkit-prod-cache" }, true);
    expect(await stackViolations("production-cache-protected", [prodContainer({}, { volumes: [protectedCache] }), protectedCache])).toEqual([]);
    const devVolume = resource(VOLUME, { name: "buildkit-dev-cache" }, false);
    const dev = resource(CONTAINER, { name: "dev", labels: labels(false) }, false, { volumes: [devVolume] }, "dev");
    expect(await stackViolations("production-cache-protected", [dev, devVolume])).toEqual([]);
  });
});

describe("tcp-listener-requires-tls", () => {
  const ports = [{ internal: 1234, external: 1234, ip: "127.0.0.1" }];
  it("rejects published ports without TLS flags", async () => {
    expect(await resourceViolations("tcp-listener-requires-tls", prodContainer({ ports, command: ["--addr", "tcp://0.0.0.0:1234"] }))).toEqual([
      "Container buildkitd publishes ports without TLS (missing --tlscacert, --tlscert, --tlskey); configure buildkit:tlsCa, buildkit:tlsCert and buildkit:tlsKey.",
    ]);
  });
  it("passes a listener with mTLS, and a daemon without ports", async () => {
    const command = ["--addr", "tcp://0.0.0.0:1234", "--tlscacert", "a", "--tlscert", "b", "--tlskey", "c"];
    expect(await resourceViolations("tcp-listener-requires-tls", prodContainer({ ports, command }))).toEqual([]);
    expect(await resourceViolations("tcp-listener-requires-tls", prodContainer())).toEqual([]);
  });
});

describe("privileged-only-where-allowed", () => {
  it("rejects a privileged daemon whose stack did not allow it", async () => {
    expect(await resourceViolations("privileged-only-where-allowed", prodContainer({ labels: labels(true, false) }))).toEqual([
      "Container buildkitd is privileged but its stack does not allow it; set buildkit:rootless to true, or buildkit:allowPrivileged to true.",
    ]);
  });
  it("passes an allowed privileged daemon and a rootless one", async () => {
    expect(await resourceViolations("privileged-only-where-allowed", prodContainer())).toEqual([]);
    expect(await resourceViolations("privileged-only-where-allowed", prodContainer({ privileged: false, labels: labels(true, false) }))).toEqual([]);
  });
});
