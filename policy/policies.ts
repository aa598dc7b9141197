// Policies a reviewer would apply to every buildkit-stack preview. The
// component labels its container with what the stack declared (production,
// allow-privileged); the policies hold the resources to those declarations.
import { Policies, PolicyResource, ReportViolation, StackValidationArgs, validateResourceOfType } from "@pulumi/policy";
import * as docker from "@pulumi/docker";

// The rules the stack's config enforces, shared so that a reviewer's policy and the program agree.
import { LABEL_PREFIX } from "../components/core/config-keys";
import { isPinned } from "../components/core/image-reference";
import { CONTAINER_TYPE as CONTAINER, IMAGE_TYPE as REMOTE_IMAGE, VOLUME_TYPE as VOLUME } from "../components/resource-types";

type Labels = { label: string; value: string }[] | undefined;
const label = (labels: Labels, name: string): string | undefined => labels?.find((l) => l.label === `${LABEL_PREFIX}.${name}`)?.value;
const isProduction = (labels: Labels) => label(labels, "production") === "true";


const productionContainers = (args: StackValidationArgs) =>
  args.resources.filter((r) => r.type === CONTAINER && isProduction(r.props.labels as Labels));

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
      validateResource: validateResourceOfType(docker.Container, (container, _args, reportViolation) => {
        if (!isProduction(container.labels as Labels)) return;
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
      description: "A production daemon runs a pinned image: a digest or a tag other than latest.",
      enforcementLevel: "mandatory",
      validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
        // Once per image, however many production containers run it.
        const images = new Map(productionContainers(args).flatMap(imageReferences).map((image) => [`${image.urn} ${image.name}`, image]));
        for (const image of images.values()) {
          if (!isPinned(image.name)) {
            reportViolation(`Production image ${image.name} is not pinned; use a digest (@sha256:…) or a release tag such as moby/buildkit:v0.32.2.`, image.urn);
          }
        }
      },
    },
    {
      name: "production-cache-protected",
      description: "A production build cache volume is protected, so a stray destroy or replacement cannot delete it.",
      enforcementLevel: "mandatory",
      // The analyzer protocol (and so @pulumi/policy 1.21's PolicyResourceOptions) carries
      // `protect` but not `retainOnDelete`; the component sets both from buildkit:cacheProtected.
      validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
        const volumes = new Map(productionContainers(args).flatMap((container) => cacheVolumes(container, args)).map((volume) => [volume.urn, volume]));
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
