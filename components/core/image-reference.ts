/**
 * What "pinned" means for an image reference, in one place: config validation
 * (`buildkit:requirePinnedImage`) and the policy pack (production-image-pinned)
 * both import it, so a reviewer's policy and the program cannot disagree.
 */

/**
 * A release tag: a version, `v` optional, with one to three numeric parts and
 * an optional suffix (`v0.32.2`, `0.32`, `v0.32.2-rootless`, `1.2.3-rc1`).
 * Branch and channel tags (`master`, `nightly`, `buildx-stable-1`, `rootless`,
 * `latest`) move by design.
 */
const VERSION_TAG = /^v?\d+(?:\.\d+){0,2}(?:[-+][\w.-]+)?$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** The accepted form of a pinned image, for messages. */
export const PINNED_FORM = "a digest (@sha256:…) or a version tag (v0.32.2, 0.32, v0.32.2-rootless)";

/**
 * True when the reference names an image that does not move: a digest, or a
 * version tag. Anything else (`latest`, no tag, `master`, `nightly`) can point
 * at another image tomorrow.
 */
export function isPinned(image: string): boolean {
  const at = image.indexOf("@");
  if (at >= 0) return DIGEST.test(image.slice(at + 1));
  // The tag is after the last ':' of the last path segment (a registry's ':port' comes before a '/').
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  const colon = lastSegment.indexOf(":");
  return colon >= 0 && VERSION_TAG.test(lastSegment.slice(colon + 1));
}
