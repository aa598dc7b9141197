#!/usr/bin/env bash
# Step: the local registry mirror (Debian's docker-registry), storage in the cache.
# It is the engine's Docker Hub mirror, so whoever can push to it chooses what
# `moby/buildkit` runs, privileged. So only this machine writes to it: the
# registry itself listens on 127.0.0.1 (the engines pull and provisioning and
# the tests push there). Containers, and so every RUN step of every build,
# reach it at the gateways container_gateways lists (lib.sh; buildkitd pulls
# base images from host.docker.internal), where a second docker-registry per
# gateway serves the same storage read-only (distribution's own
# `storage.maintenance.readonly`: every write, a push's first POST included,
# is 405 Method Not Allowed). Distribution listens on a single http.addr,
# hence one reader per gateway; one more gateway is one more address in
# container_gateways. Delete is off everywhere: nothing here needs it (a
# rebuilt image is pushed over its tag).
#
# Provisioning before issue 18 forwarded each gateway to the writable registry
# with socat (a build step could push a new moby/buildkit). Such a forwarder,
# found listening on a gateway with the command line we started it with, is
# stopped (by its pid) and replaced by a reader; anything else listening there
# stops provisioning, named.
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
  start_daemon "$registry_dir/registry.log" docker-registry serve "$registry_dir/config.yml" >"$registry_dir/registry.pid"
  wait_until 30 "the registry to answer on 127.0.0.1:${REGISTRY_PORT} (see $registry_dir/registry.log)" answers_on 127.0.0.1
  log "registry is up"
fi

# listener_pid ADDRESS: the pid of what listens on ADDRESS:port, if anything does.
listener_pid() {
  ss -Hltnp "sport = :${REGISTRY_PORT}" 2>/dev/null \
    | awk -v local="$1:${REGISTRY_PORT}" '$4 == local && match($0, /pid=[0-9]+/) { print substr($0, RSTART + 4, RLENGTH - 4); exit }'
}
port_free() { [[ -z $(listener_pid "$1") ]]; }
command_line() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | sed 's/ $//'; }
# push_status ADDRESS: what a push's first request (POST /v2/<name>/blobs/uploads/) gets there.
push_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST "http://$1:${REGISTRY_PORT}/v2/buildkit-stack/push-probe/blobs/uploads/"; }
refuses_pushes() { [[ $(push_status "$1") == 405 ]]; }

# start_reader GATEWAY: a read-only docker-registry on GATEWAY, over the same storage.
start_reader() {
  local gateway=$1 config="$registry_dir/readonly-$1.yml"
  cat >"$config" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${registry_dir}/storage
  delete:
    enabled: false
  maintenance:
    readonly:
      enabled: true
    # The writable registry on 127.0.0.1 purges abandoned uploads; a reader has none.
    uploadpurging:
      enabled: false
http:
  addr: ${gateway}:${REGISTRY_PORT}
YAML
  log "starting a read-only docker-registry on $gateway:${REGISTRY_PORT} for containers (log: $registry_dir/readonly-$gateway.log)"
  start_daemon "$registry_dir/readonly-$gateway.log" docker-registry serve "$config" >"$registry_dir/readonly-$gateway.pid"
  wait_until 30 "the read-only registry on $gateway:${REGISTRY_PORT} (see $registry_dir/readonly-$gateway.log)" answers_on "$gateway"
  refuses_pushes "$gateway" \
    || die "the registry on $gateway:${REGISTRY_PORT} answered $(push_status "$gateway") to a push, not 405: it must be read-only (see $config)"
}

mapfile -t gateways < <(container_gateways)
if ((${#gateways[@]} == 0)); then
  # Not fatal: the engine and the deploy still work, but containers cannot
  # reach the mirror (buildkitd falls back to Docker Hub for base images).
  log "WARNING: found no address containers reach this host at (the engine's default bridge has no IPv4 address" \
    "on this host); containers will not reach the mirror until the bridge is back (restart the engine that owns it)"
fi
for gateway in "${gateways[@]}"; do
  pid=$(listener_pid "$gateway")
  if [[ -n $pid ]]; then
    cmd=$(command_line "$pid")
    if [[ $cmd == "docker-registry serve $registry_dir/readonly-$gateway.yml" ]]; then
      log "containers read it at $gateway:${REGISTRY_PORT} (read-only)"
      continue
    fi
    if [[ $cmd =~ ^socat\ TCP-LISTEN:${REGISTRY_PORT},bind=${gateway//./\\.},.*\ TCP:127\.0\.0\.1:${REGISTRY_PORT}$ ]]; then
      log "replacing the socat forwarder on $gateway:${REGISTRY_PORT} (pid $pid, started by an older provision.sh): it let containers push"
      kill "$pid"
      wait_until 10 "the old forwarder (pid $pid) to free $gateway:${REGISTRY_PORT}" port_free "$gateway"
      rm -f "$registry_dir/forward-$gateway.pid" "$registry_dir/forward-$gateway.log"
    else
      die "$gateway:${REGISTRY_PORT}, where containers reach the mirror, is held by pid $pid (${cmd:-unknown}), not by provisioning;" \
        "stop it and re-run this step"
    fi
  fi
  start_reader "$gateway"
done
