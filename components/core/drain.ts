/**
 * The drain rule, for every target: a daemon being replaced or removed gets
 * SIGTERM and then `stopGracePeriod` to finish the builds it is running
 * (buildkitd stops taking new ones and finishes the rest: gRPC GracefulStop)
 * before the platform kills it; and whatever waits for the removal waits that
 * long plus a margin, so no timeout of ours cuts the grace short.
 */

/** Longest stop grace accepted: an upgrade that waits longer is an outage of its own. */
export const MAX_STOP_GRACE_SECONDS = 3600;
/** Long enough for typical builds, free when the daemon is idle (it exits as soon as nothing runs). */
export const DEFAULT_STOP_GRACE_SECONDS = 600;
/** Time the platform gets on top of the grace to remove the daemon. */
export const DRAIN_MARGIN_SECONDS = 120;

/** How long a removal of a daemon with this grace may take before it is a failure. */
export function removalTimeoutSeconds(stopGraceSeconds: number): number {
  return stopGraceSeconds + DRAIN_MARGIN_SECONDS;
}
