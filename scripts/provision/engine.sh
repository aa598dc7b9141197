#!/usr/bin/env bash
# Step: a Docker engine this machine's tests and deploys can use.
# An engine that already answers is left exactly as it is.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=engine

engine_dir="$BUILDKIT_STACK_CACHE/engine"
mkdir -p "$engine_dir"

if docker info >/dev/null 2>&1; then
  log "engine already running ($(docker version --format '{{.Server.Version}}')); leaving its configuration alone"
  exit 0
fi

[[ $EUID -eq 0 ]] || die "no Docker engine answers and we are not root: start one, or run this as root to install Debian's docker.io"
[[ -f /etc/debian_version ]] || die "no Docker engine answers and this is not Debian: start a Docker engine, then re-run"

command -v dockerd >/dev/null 2>&1 || install_debian_packages docker.io

# Privileged containers ask for every capability; if this host's bounding set
# lacks some, plain runc refuses them. Detect that from the kernel's own view.
bounding=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status)))
last_cap=$(cat /proc/sys/kernel/cap_last_cap)
all=$(((1 << (last_cap + 1)) - 1))
runtime_json=""
if ((bounding != all)); then
  log "capability bounding set lacks $(printf '0x%x' $((all & ~bounding))); using a runc wrapper that drops only those"
  install -m 0755 "$BUILDKIT_STACK_ROOT/scripts/provision/runc-dropcaps" "$engine_dir/runc-dropcaps"
  runtime_json=$(printf '"runtimes": {"runc-dropcaps": {"path": "%s"}}, "default-runtime": "runc-dropcaps",' "$engine_dir/runc-dropcaps")
fi

# The local registry doubles as the engine's Docker Hub mirror, so default
# references such as moby/buildkit:TAG pull offline the way they do online.
cat >"$engine_dir/daemon.json" <<JSON
{
  ${runtime_json}
  "registry-mirrors": ["http://127.0.0.1:${REGISTRY_PORT}"],
  "log-driver": "json-file"
}
JSON

log "starting dockerd (log: $engine_dir/dockerd.log)"
setsid nohup dockerd --config-file "$engine_dir/daemon.json" >"$engine_dir/dockerd.log" 2>&1 </dev/null &
wait_until 60 "dockerd to answer (see $engine_dir/dockerd.log)" docker info
log "engine $(docker version --format '{{.Server.Version}}') is up"
