/**
 * The one image-reference grammar of the program: how `buildkit:image` is
 * read, what "pinned" means, which tags are rootless, and where a tag is
 * resolved. Config validation, the tag registry, the rootless rule and the
 * policy pack all read references through {@link parseImageReference}.
 */

// Docker's reference grammar (distribution/reference), reduced: [registry[:port]/]path[:tag][@digest].
// A first segment is a registry only with a '.' or a ':', or as `localhost`.
const REGISTRY = String.raw`(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?=:))(?::\d{1,5})?`;
const PATH_COMPONENT = String.raw`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`;
const REFERENCE_PATTERN = new RegExp(
  String.raw`^(?:(${REGISTRY})\/)?(${PATH_COMPONENT}(?:\/${PATH_COMPONENT})*)(?::([\w][\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}))?$`,
);
/** distribution/reference's NameTotalLengthMax. */
export const IMAGE_NAME_MAX = 255;

/** Docker Hub's names: an image without a registry is pulled from there. */
export const DOCKER_HUB_HOSTS = ["docker.io", "index.docker.io", "registry-1.docker.io"];
/** Where Docker Hub answers the registry API (`docker.io` itself does not). */
export const DOCKER_HUB_API_HOST = "registry-1.docker.io";

/** An image reference split as docker reads it. */
export interface ImageReference {
  /** `host[:port]` as written; undefined for Docker Hub (no registry, or one of its names). */
  registry?: string;
  /** The repository path as written, without registry: `moby/buildkit`. */
  path: string;
  /** The tag as written; undefined when none is (docker then pulls `latest`). */
  tag?: string;
  /** `sha256:<64 hex>` when pinned by digest. */
  digest?: string;
}

/**
 * Reads an image reference as docker does. A reference docker would refuse, or
 * read otherwise than the user meant, gives `why` (empty when the form alone
 * says it: the caller then names the accepted form).
 */
export function parseImageReference(text: string): { reference: ImageReference } | { why: string } {
  const match = REFERENCE_PATTERN.exec(text);
  const port = match?.[1]?.split(":")[1];
  if (port !== undefined && !(Number(port) >= 1 && Number(port) <= 65535)) return { why: `registry port ${port} is not from 1 to 65535` };
  if (match && text.length <= IMAGE_NAME_MAX) {
    const [, registry, path, tag, digest] = match;
    const dockerHub = registry === undefined || DOCKER_HUB_HOSTS.includes(registry.toLowerCase());
    return { reference: { registry: dockerHub ? undefined : registry, path, tag, digest } };
  }
  const first = text.split("/")[0];
  if (text.includes("/") && !/[.:]/.test(first) && first !== "localhost" && first !== first.toLowerCase()) {
    return { why: `docker reads a first segment with capitals, "${first}", as a registry host; repository names are lower-case` };
  }
  return { why: text.length > IMAGE_NAME_MAX ? `longer than docker's ${IMAGE_NAME_MAX} characters` : "" };
}

/** The parsed reference, or undefined when docker would not read it. */
function referenceOf(image: string): ImageReference | undefined {
  const parsed = parseImageReference(image);
  return "reference" in parsed ? parsed.reference : undefined;
}

/**
 * A release tag: a version, `v` optional, with one to three numeric parts and
 * an optional suffix (`v0.32.2`, `0.32`, `v0.32.2-rootless`, `1.2.3-rc1`).
 * Branch and channel tags (`master`, `nightly`, `buildx-stable-1`, `rootless`,
 * `latest`) move by design.
 */
const VERSION_TAG = /^v?\d+(?:\.\d+){0,2}(?:[-+][\w.-]+)?$/;

/** The accepted form of a pinned image, for messages. */
export const PINNED_FORM = "a digest (@sha256:…) or a version tag (v0.32.2, 0.32, v0.32.2-rootless)";

/**
 * True when the reference names an image that does not move: a digest, or a
 * version tag. Anything else (`latest`, no tag, `master`, `nightly`) can point
 * at another image tomorrow.
 */
export function isPinned(image: string): boolean {
  const reference = referenceOf(image);
  if (!reference) return false;
  return reference.digest !== undefined || (reference.tag !== undefined && VERSION_TAG.test(reference.tag));
}

/**
 * Whether `image` is BuildKit's own repository (moby/buildkit on Docker Hub),
 * whose tags say which image is rootless; other images are taken at their word.
 */
export function isBuildkitRepository(image: string): boolean {
  const reference = referenceOf(image);
  return reference !== undefined && reference.registry === undefined && /^(?:library\/)?moby\/buildkit$/.test(reference.path);
}

/** moby/buildkit's rootless tags: `rootless`, `v0.32.2-rootless`, `master-rootless`. */
export function isRootlessTag(image: string): boolean {
  return /(^|-)rootless$/.test(referenceOf(image)?.tag ?? "latest");
}

/**
 * Where a tag is resolved to the digest it points at now (`buildkit:tagRegistry`):
 * the registry the engine pulls the image from, asked on every preview.
 */
export interface TagRegistry {
  /** `host[:port]`, as the engine and the docker provider name it (Docker Hub: registry-1.docker.io). */
  host: string;
  /** Plain HTTP (`http://` given): a local mirror; otherwise HTTPS. */
  plainHttp: boolean;
  /** The reference to resolve there: `host/repository:tag` (Docker Hub names get their `library/`). */
  reference: string;
  /** The image as the engine pulls it, without tag or digest (`moby/buildkit`): the daemon runs `repository@digest`. */
  repository: string;
}

/** The registry `image` is pulled from: its own, or undefined for Docker Hub. */
export function registryOf(image: string): string | undefined {
  return referenceOf(image)?.registry;
}

/** Whether `image` is pinned by digest. */
export function hasDigest(image: string): boolean {
  return referenceOf(image)?.digest !== undefined;
}

/** The resolved form of a tag registry `given` (`host[:port]`, `http://` for plain HTTP) for a valid `image`. */
export function tagRegistryFor(image: string, given: string): TagRegistry {
  const { registry, path, tag } = referenceOf(image)!;
  const written = given.replace(/^https?:\/\//, "");
  const host = DOCKER_HUB_HOSTS.includes(written.toLowerCase()) ? DOCKER_HUB_API_HOST : written;
  // Docker Hub's official images live under library/ (`busybox` is library/busybox), in a mirror too.
  const hubPath = registry === undefined && !path.includes("/") ? `library/${path}` : path;
  return {
    host,
    plainHttp: given.startsWith("http://"),
    reference: `${host}/${hubPath}:${tag ?? "latest"}`,
    repository: registry === undefined ? path : `${registry}/${path}`,
  };
}
