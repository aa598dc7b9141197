#!/usr/bin/env bash
# Step: the local registry mirror (Debian's docker-registry), storage in the cache.
# It is the engine's Docker Hub mirror, so whoever can push to it chooses what
# `moby/buildkit` runs, privileged. So it answers only where it must: the
# registry itself on 127.0.0.1 (the engine pulls and we push there), and one
# socat forwarder per address containers reach it at (container_gateways in
# lib.sh: buildkitd pulls base images from host.docker.internal). Distribution
# listens on a single http.addr, hence the forwarders rather than a second
# registry on the same storage. Delete is off: nothing here needs it (a rebuilt
# image is pushed over its tag).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=registry
require_local_engine

registry_dir="$BUILDKIT_STACK_CACHE/registry"
mkdir -p "$registry_dir/storage"

answers_on() { curl -fs -o /dev/null --max-time 2 "http://$1:${REGISTRY_PORT}/v2/"; }

if answers_on 127.0.0.1; then
  log "registry already answers on 127.0.0.1:${REGISTRY_PORT}"
  # An older provision.sh listened on all interfaces with delete on. It is not
  # restarted behind its users' backs; this says how to replace it.
  if grep -qE '0\.0\.0\.0|enabled: true' "$registry_dir/config.yml" 2>/dev/null; then
    log "WARNING: it was started by an older provision.sh: all interfaces, delete enabled ($registry_dir/config.yml)." \
      "To replace it: stop that docker-registry process, then re-run this step."
  fi
else
  command -v docker-registry >/dev/null || install_debian_packages docker-registry
  cat >"$registry_dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${registry_dir}/storage
  delete:
    enabled: false
http:
  addr: 127.0.0.1:${REGISTRY_PORT}
YAML
  log "starting docker-registry on 127.0.0.1:${REGISTRY_PORT} (log: $registry_dir/registry.log)"
  setsid nohup docker-registry serve "$registry_dir/config.yml" >"$registry_dir/registry.log" 2>&1 </dev/null &
  echo $! >"$registry_dir/registry.pid"
  wait_until 30 "the registry to answer on 127.0.0.1:${REGISTRY_PORT} (see $registry_dir/registry.log)" answers_on 127.0.0.1
  log "registry is up"
fi

mapfile -t gateways < <(container_gateways)
if ((${#gateways[@]} == 0)); then
  # Not fatal: the engine and the deploy still work, but containers cannot
  # reach the mirror (buildkitd falls back to Docker Hub for base images).
  log "WARNING: found no address containers reach this host at (the engine's default bridge has no IPv4 address" \
    "on this host); containers will not reach the mirror until the bridge is back (restart the engine that owns it)"
fi
for gateway in "${gateways[@]}"; do
  if answers_on "$gateway"; then
    log "containers reach it at $gateway:${REGISTRY_PORT}"
    continue
  fi
  command -v socat >/dev/null || install_debian_packages socat
  log "forwarding $gateway:${REGISTRY_PORT} (for containers) to 127.0.0.1:${REGISTRY_PORT}"
  setsid nohup socat "TCP-LISTEN:${REGISTRY_PORT},bind=${gateway},fork,reuseaddr" "TCP:127.0.0.1:${REGISTRY_PORT}" \
    >"$registry_dir/forward-$gateway.log" 2>&1 </dev/null &
  echo $! >"$registry_dir/forward-$gateway.pid"
  wait_until 10 "the forwarder on $gateway:${REGISTRY_PORT} (see $registry_dir/forward-$gateway.log)" answers_on "$gateway"
done
