#!/usr/bin/env bash
# Step: the local registry mirror (Debian's docker-registry), storage in the cache.
# The engine pulls from it on loopback; containers (buildkitd pulling base
# images) reach it through the host gateway, host.docker.internal.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=registry

registry_dir="$BUILDKIT_STACK_CACHE/registry"
mkdir -p "$registry_dir/storage"

registry_answers() { curl -fs "http://127.0.0.1:${REGISTRY_PORT}/v2/" >/dev/null; }

if registry_answers; then
  log "registry already answers on 127.0.0.1:${REGISTRY_PORT}"
  exit 0
fi

if ! command -v docker-registry >/dev/null 2>&1; then
  [[ $EUID -eq 0 ]] || die "docker-registry is not installed and we are not root to install it"
  log "installing Debian's docker-registry"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >"$registry_dir/apt.log" 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >"$registry_dir/apt.log" 2>&1; } \
    || die "apt-get install docker-registry failed (see $registry_dir/apt.log)"
fi

# Listens on all interfaces because containers reach it via the bridge
# gateway address, not loopback; nothing but this machine routes here.
cat >"$registry_dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${registry_dir}/storage
  delete:
    enabled: true
http:
  addr: 0.0.0.0:${REGISTRY_PORT}
YAML

log "starting docker-registry on :${REGISTRY_PORT} (log: $registry_dir/registry.log)"
setsid nohup docker-registry serve "$registry_dir/config.yml" >"$registry_dir/registry.log" 2>&1 </dev/null &
wait_until 30 "the registry to answer on 127.0.0.1:${REGISTRY_PORT} (see $registry_dir/registry.log)" registry_answers
log "registry is up"
