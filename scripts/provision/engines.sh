#!/usr/bin/env bash
# Step: the current Docker engines, 28 and 29, running beside Debian's 20.10
# (which keeps /var/run/docker.sock and is never touched here). Each has its
# own socket, data-root, exec-root, pidfile, bridge, address pools and cgroup
# parent, runs with iptables and IP masquerading off (our bridges carry only
# host-local traffic: containers reach the registry mirror on the bridge
# gateway), and pulls Docker Hub names through the local registry mirror.
#   Docker 28.5.2: Debian's containerd 1.6 and runc 1.1 (dockerd starts its own
#                  containerd from PATH)
#   Docker 29:     containerd v2 + its v2 shim and runc >= 1.2, all built here
# An engine that answers with the expected version and configuration is left
# alone; one of ours with another version or configuration is restarted.
# live-restore is on for a reason beyond keeping containers up: dockerd, when it
# starts with default-address-pools and finds its "bridge" network from a
# previous run, deletes the link named docker0 (removeDefaultBridgeInterface in
# moby's daemon_unix.go) — the host's, which belongs to the 20.10 engine — unless
# live-restore is enabled. Seen here: docker0 vanished after restarts of ours.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=engines

[[ $EUID -eq 0 ]] || die "running the Docker 28/29 engines needs root"
bash "$BUILDKIT_STACK_ROOT/scripts/provision/engine-builds.sh"
bash "$BUILDKIT_STACK_ROOT/scripts/provision/engine-bridges.sh"

engines_dir="$BUILDKIT_STACK_CACHE/engines"
current="$engines_dir/current"
mkdir -p "$ENGINES_RUN_DIR" "$engines_dir/logs"

# engine_version SOCKET: the server version answering on SOCKET, or nothing.
engine_version() { DOCKER_HOST="unix://$1" docker version --format '{{.Server.Version}}' 2>/dev/null || true; }
engine_answers() { [[ -n $(engine_version "$1") ]]; }

# stop_own_engine PIDFILE: stop the dockerd whose pid we wrote, and wait.
stop_own_engine() {
  local pid
  pid=$(cat "$1" 2>/dev/null || true)
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid"
  wait_until 60 "dockerd $pid to stop" bash -c "! kill -0 $pid"
}

# start_engine NAME BINDIR PATH_PREFIX BRIDGE POOL: run dockerd from BINDIR
# on $ENGINES_RUN_DIR/docker-NAME.sock, with PATH_PREFIX first on its PATH
# (where it finds containerd, the shim and runc).
start_engine() {
  local name=$1 bindir=$2 path_prefix=$3 bridge=$4 pool=$5
  local socket="$ENGINES_RUN_DIR/docker-$name.sock" pidfile="$ENGINES_RUN_DIR/docker-$name.pid"
  local config="$engines_dir/docker$name.json" logfile="$engines_dir/logs/docker$name.log"
  local want running
  want=$("$bindir/dockerd" --version | sed -E 's/^Docker version ([^,]+),.*/\1/')

  cat >"$config.new" <<JSON
{
  "hosts": ["unix://$socket"],
  "pidfile": "$pidfile",
  "data-root": "$engines_dir/data/docker$name",
  "exec-root": "$ENGINES_RUN_DIR/docker-$name",
  "bridge": "$bridge",
  "default-address-pools": [{"base": "$pool", "size": 24}],
  "live-restore": true,
  "cgroup-parent": "buildkit-stack-docker$name",
  "iptables": false,
  "ip6tables": false,
  "ip-masq": false,
  "ip-forward": false,
  "userland-proxy": true,
  "userland-proxy-path": "$bindir/docker-proxy",
  "registry-mirrors": ["http://127.0.0.1:${REGISTRY_PORT}"],
  "log-driver": "json-file"
}
JSON
  running=$(engine_version "$socket")
  if [[ $running == "$want" ]] && cmp -s "$config.new" "$config"; then
    rm -f "$config.new"
    log "docker $want already answers on $socket"
    return
  fi
  if [[ -n $running ]] || [[ -f $pidfile ]]; then
    log "restarting our docker $name (running: ${running:-not answering}, want $want with $config)"
    stop_own_engine "$pidfile"
  fi
  mv "$config.new" "$config"
  mkdir -p "$engines_dir/data/docker$name"
  log "starting docker $want on $socket (log: $logfile)"
  env -u DOCKER_HOST PATH="$path_prefix:$PATH" setsid nohup "$bindir/dockerd" --config-file "$config" \
    >"$logfile" 2>&1 </dev/null &
  wait_until 90 "docker $want to answer on $socket (see $logfile)" engine_answers "$socket"
  running=$(engine_version "$socket")
  [[ $running == "$want" ]] || die "$socket answers as docker $running, not $want"
  log "docker $running is up on $socket (API $(DOCKER_HOST="unix://$socket" docker version --format '{{.Server.APIVersion}}'))"
}

# BUILDKIT_STACK_ENGINES: which of them (29,28 by default; `provision.sh up` asks for 29 alone).
engines=",${BUILDKIT_STACK_ENGINES:-29,28},"
[[ $engines == *,28,* ]] && start_engine 28 "$current/docker28" "$current/docker28" "$DOCKER28_BRIDGE" "$DOCKER28_ADDRESS_POOL"
[[ $engines == *,29,* ]] && start_engine 29 "$current/docker29" "$current/docker29:$current/containerd:$current/runc" "$DOCKER29_BRIDGE" "$DOCKER29_ADDRESS_POOL"
exit 0
