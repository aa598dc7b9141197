# Shared helpers for the project's shell scripts: logging, the cache location
# and bounded polling. Source it; it sets strict mode for the caller.
# shellcheck shell=bash
set -euo pipefail

BUILDKIT_STACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILDKIT_STACK_CACHE="${BUILDKIT_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/buildkit-stack}"
export BUILDKIT_STACK_ROOT BUILDKIT_STACK_CACHE

# shellcheck source=scripts/versions.sh
source "$BUILDKIT_STACK_ROOT/scripts/versions.sh"

log() { printf '[%s] %s\n' "${STEP:-buildkit-stack}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${STEP:-buildkit-stack}" "$*" >&2; exit 1; }

# wait_until SECONDS DESCRIPTION COMMAND...: poll COMMAND every half second
# until it succeeds, or fail naming what never became ready.
wait_until() {
  local bound=$1 what=$2; shift 2
  local deadline=$((SECONDS + bound))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${bound}s waiting for ${what}"
    fi
    sleep 0.5
  done
}

# A stamp file records that a cached artefact was built from exactly these
# inputs; a changed key means rebuild just that piece.
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
stamp_write() { mkdir -p "$(dirname "$1")"; printf '%s' "$2" >"$1"; }
