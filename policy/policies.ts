// Policies a reviewer would apply to every buildkit-stack preview. Which
// stacks are production is the reviewer's word, not the stack's: it comes from
// the pack's configuration (`--policy-pack-config policy/config.json`, passed
// by scripts/up.sh and every workflow), matched against the stack name in each
// resource's URN, which the engine writes and the program cannot. The
// container's own `production` label can only add a stack to production,
// never take one out: a pull request that sets `buildkit:production false` on
// prod is still judged as prod.
import { Policies, PolicyConfigSchema, PolicyResource, ReportViolation, StackValidationArgs, validateResourceOfType } from "@pulumi/policy";
import * as docker from "@pulumi/docker";

// The rules the stack's config enforces, shared so that a reviewer's policy and the program agree.
import { LABEL_PREFIX } from "../components/core/config-keys";
import { isPinned, PINNED_FORM } from "../components/core/image-reference";
import { CONTAINER_TYPE as CONTAINER, IMAGE_TYPE as REMOTE_IMAGE, VOLUME_TYPE as VOLUME } from "../components/resource-types";

type Labels = { label: string; value: string }[] | undefined;
const label = (labels: Labels, name: string): string | undefined => labels?.find((l) => l.label === `${LABEL_PREFIX}.${name}`)?.value;

/** The configuration every production policy takes: the same list in each of their entries of policy/config.json. */
export interface ProductionConfig {
  /** Stack names judged as production, whatever their config says. */
  productionStacks?: string[];
}

/** What the CLI validates a production policy's configuration against (a missing list is an error, not "no production"). */
export const PRODUCTION_CONFIG_SCHEMA: PolicyConfigSchema = {
  properties: {
    productionStacks: {
      type: "array",
      items: { type: "string" },
      description: "The stacks held to the production rules, whatever their buildkit:production says (policy/config.json).",
    },
  },
  required: ["productionStacks"],
};

/** The accepted form of the pack's configuration, for messages. */
const CONFIG_FORM = '{"<policy>": {"productionStacks": ["prod"]}} for every production policy, as in policy/config.json';

/** The stack a resource belongs to: `urn:pulumi:<stack>::<project>::<type>::<name>`. */
export function stackOfUrn(urn: string): string {
  const match = /^urn:pulumi:(.*?)::/.exec(urn);
  if (!match) throw new Error(`not a Pulumi URN: ${urn}`);
  return match[1];
}

/**
 * The production stacks the pack was configured with. A pack run without its
 * configuration cannot tell prod from dev, so it refuses rather than judging
 * every stack as development. Pulumi 3.276 already refuses to start the pack
 * without it (the schema's `required`); this holds wherever the schema is not
 * checked first (an older CLI, a malformed list).
 */
function productionStacks(config: ProductionConfig, reportViolation: ReportViolation): string[] | undefined {
  const stacks = config.productionStacks;
  if (Array.isArray(stacks) && stacks.every((s) => typeof s === "string")) return stacks;
  reportViolation(`The policy pack ran without its configuration, so it cannot tell which stacks are production; pass --policy-pack-config policy/config.json (${CONFIG_FORM}).`);
  return undefined;
}

/** Whether this resource's stack is held to the production rules: named by the configuration, or declaring itself production. */
function isProduction(stacks: string[], urn: string, labels: Labels): boolean {
  return stacks.includes(stackOfUrn(urn)) || label(labels, "production") === "true";
}

const productionContainers = (args: StackValidationArgs, stacks: string[]) =>
  args.resources.filter((r) => r.type === CONTAINER && isProduction(stacks, r.urn, r.props.labels as Labels));

/**
 * The image references a container runs, with the resource to blame. The
 * component passes `image.imageId`, unknown until the pull, so the reference
 * is the `name` of the RemoteImage the `image` input depends on. An input with
 * no dependencies is a literal, judged as written; one computed from anything
 * else is not read (an unknown value would demote the whole policy to advisory).
 */
function imageReferences(container: PolicyResource): { name: string; urn: string }[] {
  const sources = container.propertyDependencies.image ?? [];
  if (sources.length > 0) {
    return sources.filter((r) => r.type === REMOTE_IMAGE).map((image) => ({ name: String(image.props.name ?? ""), urn: image.urn }));
  }
  return typeof container.props.image === "string" ? [{ name: container.props.image, urn: container.urn }] : [];
}

/**
 * The volumes a container mounts: its cache. (Volumes carry no label naming
 * their daemon: a label change would replace the cache, so they have none
 * that config can change; the mount is the link.)
 */
function cacheVolumes(container: PolicyResource, args: StackValidationArgs): PolicyResource[] {
  const mounted = (container.propertyDependencies.volumes ?? []).map((r) => r.urn);
  return args.resources.filter((r) => r.type === VOLUME && mounted.includes(r.urn));
}

/** The pack's policies; index.ts serves them, tests call them directly. */
export const policies: Policies = [
    {
      name: "production-daemon-has-limits",
      description: "A production buildkitd sets a memory and a CPU limit, so a build cannot starve the host.",
      enforcementLevel: "mandatory",
      configSchema: PRODUCTION_CONFIG_SCHEMA,
      validateResource: validateResourceOfType(docker.Container, (container, args, reportViolation) => {
        const stacks = productionStacks(args.getConfig<ProductionConfig>(), reportViolation);
        if (!stacks || !isProduction(stacks, args.urn, container.labels as Labels)) return;
        // The provider takes CPUs as a decimal string: "0.0" (what 0.03 used to be spelt as) is no limit at all.
        const cpus = container.cpus === undefined ? undefined : Number(container.cpus);
        const missing = [!container.memory ? "memory" : "", !(cpus !== undefined && cpus > 0) ? "cpus" : ""].filter(Boolean);
        if (missing.length > 0) {
          const zeroCpus = container.cpus !== undefined && missing.includes("cpus") ? ` (cpus ${JSON.stringify(container.cpus)} is no limit)` : "";
          reportViolation(
            `Production container ${container.name} has no ${missing.join(" and no ")} limit${zeroCpus}; set ${missing.map((key) => `buildkit:${key}`).join(" and ")}.`,
          );
        }
      }),
    },
    {
      name: "production-image-pinned",
      description: "A production daemon runs a pinned image: a digest or a version tag (not latest, master, nightly or another moving tag).",
      enforcementLevel: "mandatory",
      configSchema: PRODUCTION_CONFIG_SCHEMA,
      validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
        const stacks = productionStacks(args.getConfig<ProductionConfig>(), reportViolation);
        if (!stacks) return;
        // Once per image, however many production containers run it.
        const images = new Map(productionContainers(args, stacks).flatMap(imageReferences).map((image) => [`${image.urn} ${image.name}`, image]));
        for (const image of images.values()) {
          if (!isPinned(image.name)) {
            reportViolation(`Production image ${image.name} is not pinned; use ${PINNED_FORM}, such as moby/buildkit:v0.32.2.`, image.urn);
          }
        }
      },
    },
    {
      name: "production-cache-protected",
      description: "A production build cache volume is protected, so a stray destroy or replacement cannot delete it.",
      enforcementLevel: "mandatory",
      configSchema: PRODUCTION_CONFIG_SCHEMA,
      // The analyzer protocol (and so @pulumi/policy 1.21's PolicyResourceOptions) carries
      // `protect` but not `retainOnDelete`; the component sets both from buildkit:cacheProtected.
      validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
        const stacks = productionStacks(args.getConfig<ProductionConfig>(), reportViolation);
        if (!stacks) return;
        const volumes = new Map(productionContainers(args, stacks).flatMap((container) => cacheVolumes(container, args)).map((volume) => [volume.urn, volume]));
        for (const volume of volumes.values()) {
          if (!volume.opts.protect) {
            reportViolation(`Production cache volume ${volume.props.name} is not protected; set buildkit:cacheProtected to true.`, volume.urn);
          }
        }
      },
    },
    {
      name: "tcp-listener-requires-tls",
      description: "buildkitd is published on TCP only with mTLS: anything that reaches a plaintext port can run builds as root.",
      enforcementLevel: "mandatory",
      validateResource: validateResourceOfType(docker.Container, (container, _args, reportViolation) => {
        if (!container.ports || container.ports.length === 0) return;
        const command = container.command ?? [];
        const missing = ["--tlscacert", "--tlscert", "--tlskey"].filter((flag) => !command.includes(flag));
        if (missing.length > 0) {
          reportViolation(`Container ${container.name} publishes ports without TLS (missing ${missing.join(", ")}); configure buildkit:tlsCa, buildkit:tlsCert and buildkit:tlsKey.`);
        }
      }),
    },
    {
      name: "privileged-only-where-allowed",
      description: "A privileged daemon runs only where the stack explicitly allows it (buildkit:allowPrivileged).",
      enforcementLevel: "mandatory",
      validateResource: validateResourceOfType(docker.Container, (container, _args, reportViolation) => {
        if (container.privileged && label(container.labels as Labels, "allow-privileged") !== "true") {
          reportViolation(`Container ${container.name} is privileged but its stack does not allow it; set buildkit:rootless to true, or buildkit:allowPrivileged to true.`);
        }
      }),
    },
];
