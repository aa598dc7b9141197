/**
 * The cache guard of a Docker host: a local program that runs first in every
 * `up`, before anything is touched, and refuses a root ↔ rootless switch that
 * would hand the new daemon the old daemon's cache volume. Docker keeps a
 * retained volume under its name, so a "replacement" of a protected cache
 * would give the same files back to a daemon that cannot use them.
 */
import * as pulumi from "@pulumi/pulumi";

import { full, LABEL_PREFIX } from "../core/config-keys";
import type { DockerSettings } from "./config";

/**
 * Who owns the files in the cache volume: the volume's replacement trigger. The
 * engine replaces only when a recorded value differs; stacks deployed before
 * the trigger existed have none recorded, so their volume is kept, and the
 * first `up` records it.
 */
export function cacheOwner(settings: Pick<DockerSettings, "rootless">): string {
  return settings.rootless ? "rootless (uid 1000 in its own user namespace)" : "root";
}

/**
 * The cache guard's script. It records, in its output, whose cache the volume
 * holds and whether Pulumi keeps it on delete; the next run (any change of
 * those) reads the record back (PULUMI_COMMAND_STDOUT) and refuses a mode
 * switch of the same volume when the last deploy retained it: the replacement
 * would "create" the kept volume again under its name. Without a record (a new
 * stack, or one deployed before the guard) it asks the engine which mode the
 * daemons using the volume run in, and refuses a switch it cannot judge.
 */
export function cacheGuardScript(): string {
  return [
    "set -eu",
    'record="cache $VOLUME owner $OWNER retained $RETAINED"',
    'previous="${PULUMI_COMMAND_STDOUT:-}"',
    'if [ -n "$previous" ]; then',
    "  set -- $previous",
    '  if [ "$2" = "$VOLUME" ] && [ "$4" != "$OWNER" ] && [ "$6" = true ]; then',
    `    echo "refused before anything was touched: ${full("rootless")} switches the cache volume $VOLUME from a $4 daemon to a $OWNER one, but the last deploy protected it (${full("cacheProtected")} true), so Pulumi keeps it on delete and docker would hand the same volume, with the $4 daemon's files, to the new daemon, which cannot use them and never becomes healthy. Instead: set ${full("cacheProtected")} false (keep ${full("rootless")} as deployed) and pulumi up, then switch ${full("rootless")} in a second up (a fresh cache)." >&2`,
    "    exit 1",
    "  fi",
    "else",
    `  modes=$(docker ps -a --filter "volume=$VOLUME" --format '{{.Label "${LABEL_PREFIX}.rootless"}}')`,
    "  for mode in $modes; do",
    '    if [ "$mode" != "$ROOTLESS" ]; then',
    `      echo "refused before anything was touched: the cache volume $VOLUME is used by a daemon with ${full("rootless")} $mode, and this stack has no record of who owns the cache yet (deployed before this version): switching now would give the new daemon the old daemon's files. Deploy once as you are (${full("rootless")} $mode) to record it, then switch." >&2`,
    "      exit 1",
    "    fi",
    "  done",
    "fi",
    'echo "$record"',
  ].join("\n");
}

/** What the guard's script reads: the volume, whose it is now, and whether Pulumi keeps it on delete. */
export function cacheGuardEnvironment(settings: Pick<DockerSettings, "cacheVolumeName" | "rootless" | "cacheProtected">): Record<string, pulumi.Input<string>> {
  return {
    VOLUME: settings.cacheVolumeName,
    OWNER: settings.rootless ? "rootless" : "root",
    ROOTLESS: String(settings.rootless),
    // Retained on delete exactly when protected (see the volume's options).
    RETAINED: String(settings.cacheProtected),
  };
}
