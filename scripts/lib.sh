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

# install_debian_packages PACKAGE...: install those of the Debian packages not
# installed yet. A fresh machine has none of our build and run dependencies
# and may have no package lists, so a failed install runs `apt-get update`
# once and tries again. Needs root; says which packages otherwise.
install_debian_packages() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q ' installed$' || missing+=("$package")
  done
  ((${#missing[@]})) || return 0
  [[ $EUID -eq 0 ]] || die "Debian's ${missing[*]} not installed and we are not root to install: apt-get install -y ${missing[*]}"
  local apt_log="$BUILDKIT_STACK_CACHE/apt.log"
  mkdir -p "$BUILDKIT_STACK_CACHE"
  log "installing Debian's ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$apt_log" 2>&1 \
    || { apt-get update -qq >>"$apt_log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$apt_log" 2>&1; } \
    || die "apt-get install ${missing[*]} failed (see $apt_log)"
}

# start_daemon LOG COMMAND...: start COMMAND for good, in its own session,
# output appended to LOG, and print its pid. It keeps none of the caller's
# other open files: a daemon started under `flock /tmp/buildkit-stack-engine.lock …`
# (or by a script holding a lock of its own, as cluster.sh does) would
# otherwise hold that lock for as long as it lives.
start_daemon() {
  local log=$1 fd
  shift
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec ${fd}>&-" 2>/dev/null || true; fi
    done
    exec setsid nohup "$@" >>"$log" 2>&1 </dev/null
  ) &
  echo $!
}

# A stamp file records that a cached artefact was built from exactly these
# inputs; a changed key means rebuild just that piece.
stamp_ok() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }
stamp_write() { mkdir -p "$(dirname "$1")"; printf '%s' "$2" >"$1"; }

# go_module_field MODULE VERSION FIELD: a field of `go mod download -json`
# (Dir, GoMod) for MODULE@VERSION, fetched through the module proxy.
go_module_field() {
  go mod download -json "$1@$2" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
      const j = JSON.parse(s);
      if (j.Error) { console.error(j.Error); process.exit(1); }
      console.log(j[process.argv[1]]);
    });' "$3"
}

# cached_build BUILDS TIMES ARTEFACT KEY FUNCTION: run FUNCTION BUILDS/ARTEFACT
# unless ARTEFACT's stamp already records KEY and the Go version; log one line,
# and the cold build time to TIMES (a build-times.tsv).
cached_build() {
  local builds=$1 times=$2 artefact=$3 key fn=$5
  key="$4 $(go env GOVERSION)"
  local out="$builds/$artefact"
  if stamp_ok "$out.stamp" "$key"; then
    log "$artefact is built ($(du -sh "$out" | cut -f1))"
    return
  fi
  log "building $artefact (cold; log: $out.log)"
  rm -rf "$out" && mkdir -p "$out"
  local started=$SECONDS
  "$fn" "$out" >"$out.log" 2>&1 || die "building $artefact failed (see $out.log)"
  local took=$((SECONDS - started)) size
  size=$(du -sh "$out" | cut -f1)
  printf '%s\t%s\t%ss\t%s\t%s\n' "$(date -u +%FT%TZ)" "$artefact" "$took" "$size" "$key" >>"$times"
  stamp_write "$out.stamp" "$key"
  log "built $artefact in ${took}s ($size)"
}

# container_gateways: one address per line, every host address containers
# reach the registry mirror at. They name it host.docker.internal, which
# `--add-host …:host-gateway` resolves to the gateway of the engine's default
# bridge (docker0 here). Provisioning that runs engines with bridges of their
# own adds their gateways through BUILDKIT_STACK_CONTAINER_GATEWAYS (space
# separated), or extends this function; the registry answers on these and on
# loopback, and nowhere else.
container_gateways() {
  _container_gateway_candidates | awk 'NF && !seen[$0]++'
}
_container_gateway_candidates() {
  local bridge address
  bridge=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null || true)
  if [[ -n $bridge ]]; then
    # A bridge the engine names but the host lacks contributes nothing (the caller says so).
    ip -4 -o addr show dev "$bridge" 2>/dev/null | awk '{split($4, a, "/"); print a[1]}' || true
  fi
  for address in ${BUILDKIT_STACK_CONTAINER_GATEWAYS:-}; do printf '%s\n' "$address"; done
}

# require_local_engine: provisioning pushes to a registry on this machine's
# loopback and binds addresses of this machine's bridges, which only means
# something for an engine on this machine. Refuse any other, before anything
# is built or started.
require_local_engine() {
  local endpoint=${DOCKER_HOST:-}
  if [[ -z $endpoint ]]; then
    endpoint=$(docker context inspect -f '{{.Endpoints.docker.Host}}' 2>/dev/null || echo unix:///var/run/docker.sock)
  fi
  case $endpoint in
    unix://* | tcp://127.0.0.1:* | tcp://localhost:* | "tcp://[::1]:"*) return 0 ;;
  esac
  die "the Docker engine is $endpoint, not this machine's: provisioning pushes images to this machine's" \
    "loopback registry and serves it to this machine's bridges, which that engine cannot reach. Unset DOCKER_HOST" \
    "(or \`docker context use default\`) to provision the local engine; a remote host deploys through" \
    "buildkit:dockerHost and pulls its images from a registry it can reach."
}
