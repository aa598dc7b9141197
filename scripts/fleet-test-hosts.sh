#!/usr/bin/env bash
# Test-environment plumbing for the fleet integration test (never used by the
# product): two extra Docker engines on this machine, each its own "host"
#   ssh: reached as ssh://root@127.0.0.1:$FLEET_SSH_PORT through Debian's openssh-server
#   tls: reached as tcp://127.0.0.1:$FLEET_TLS_PORT with Docker's own TLS (--tlsverify)
# Each engine has its own data root, exec root, pidfile, socket and a bridge of
# its own; iptables is off, so the host's rules, docker0 and other bridges are
# never touched. The main engine and the :5000 registry are left alone.
#
#   bash scripts/fleet-test-hosts.sh up          # idempotent; prints the environment as shell
#   bash scripts/fleet-test-hosts.sh stop ENGINE # stop one engine (ssh|tls): a broken host
#   bash scripts/fleet-test-hosts.sh down        # stop everything, remove the bridges
# FLEET_HOST_ADDRESS is an address of this machine (on the ssh engine's bridge)
# that containers of every engine reach: the registry mirror behind it does not
# depend on the main engine's docker0, which other tests on a shared machine
# may take away.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=fleet-hosts

state="$BUILDKIT_STACK_CACHE/fleet-hosts"
# exec roots hold containerd's sockets: short paths (unix sockets are limited to 108 bytes).
exec_base=/run/g-fleet
ssh_port="${FLEET_SSH_PORT:-18421}"
tls_port="${FLEET_TLS_PORT:-18422}"
registry_port="${REGISTRY_PORT:-5000}"
engines=(ssh tls)
# The default bridge takes the lower half of each /24, the engine's own
# networks (one per BuildKit stack) the upper half, in /28s.
declare -A bridge=([ssh]=g-fleet-br1 [tls]=g-fleet-br2)
declare -A bridge_cidr=([ssh]=10.241.0.1/25 [tls]=10.242.0.1/25)
declare -A pool=([ssh]=10.241.0.128/25 [tls]=10.242.0.128/25)

engine_socket() { echo "$state/$1/docker.sock"; }
engine_pid() { [[ -f $state/$1/dockerd.pid ]] && kill -0 "$(cat "$state/$1/dockerd.pid")" 2>/dev/null && cat "$state/$1/dockerd.pid"; }
engine_answers() { docker -H "unix://$(engine_socket "$1")" info >/dev/null 2>&1; }

print_env() {
  cat <<ENV
export FLEET_SSH_DOCKER_HOST=ssh://root@127.0.0.1:$ssh_port
export FLEET_TLS_DOCKER_HOST=tcp://127.0.0.1:$tls_port
export FLEET_TLS_CERT_DIR=$state/tls/client
export FLEET_SSH_BIN=$state/ssh-client/bin
export FLEET_SSH_SOCKET=$(engine_socket ssh)
export FLEET_TLS_SOCKET=$(engine_socket tls)
export FLEET_HOST_ADDRESS=${bridge_cidr[ssh]%/*}
ENV
}

make_bridge() {
  local name=$1 cidr=$2
  if ! ip link show "$name" >/dev/null 2>&1; then
    log "creating bridge $name ($cidr)"
    ip link add "$name" type bridge
  fi
  [[ $(ip -o addr show dev "$name") == *"inet $cidr "* ]] || ip addr add "$cidr" dev "$name"
  ip link set "$name" up
}

make_tls_material() {
  local dir=$state/tls
  [[ -f $dir/client/key.pem && -f $dir/server/key.pem ]] && return
  log "creating a CA, a server certificate for 127.0.0.1 and a client certificate (openssl)"
  rm -rf "$dir" && mkdir -p "$dir/ca" "$dir/server" "$dir/client"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=g-fleet test CA" \
    -keyout "$dir/ca/key.pem" -out "$dir/ca/cert.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server/key.pem" -out "$dir/server/req.pem" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/server/ext.cnf"
  openssl x509 -req -days 30 -in "$dir/server/req.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" -CAcreateserial \
    -extfile "$dir/server/ext.cnf" -out "$dir/server/cert.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=fleet-client" -keyout "$dir/client/key.pem" -out "$dir/client/req.pem" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$dir/client/ext.cnf"
  openssl x509 -req -days 30 -in "$dir/client/req.pem" -CA "$dir/ca/cert.pem" -CAkey "$dir/ca/key.pem" -CAcreateserial \
    -extfile "$dir/client/ext.cnf" -out "$dir/client/cert.pem" 2>/dev/null
  # The layout the docker CLI reads from DOCKER_CERT_PATH.
  cp "$dir/ca/cert.pem" "$dir/client/ca.pem"
}

start_engine() {
  local name=$1
  if engine_answers "$name"; then
    log "engine $name already answers on $(engine_socket "$name")"
    return
  fi
  make_bridge "${bridge[$name]}" "${bridge_cidr[$name]}"
  mkdir -p "$state/$name/data" "$exec_base/$name"
  local runtime=""
  # Same rule as scripts/provision/engine.sh: privileged containers need the
  # runc wrapper where the kernel's capability bounding set is incomplete.
  local bounding=$((16#$(awk '/^CapBnd:/ {print $2}' /proc/self/status))) last_cap
  last_cap=$(cat /proc/sys/kernel/cap_last_cap)
  if ((bounding != (1 << (last_cap + 1)) - 1)); then
    install -m 0755 "$BUILDKIT_STACK_ROOT/scripts/provision/runc-dropcaps" "$state/runc-dropcaps"
    runtime=$(printf '"runtimes": {"runc-dropcaps": {"path": "%s"}}, "default-runtime": "runc-dropcaps",' "$state/runc-dropcaps")
  fi
  local hosts="\"unix://$(engine_socket "$name")\"" tls=""
  if [[ $name == tls ]]; then
    hosts+=", \"tcp://127.0.0.1:$tls_port\""
    tls=$(printf '"tlsverify": true, "tlscacert": "%s", "tlscert": "%s", "tlskey": "%s",' \
      "$state/tls/ca/cert.pem" "$state/tls/server/cert.pem" "$state/tls/server/key.pem")
  fi
  # live-restore: without it a restart with default-address-pools deletes the
  # host's docker0 (see scripts/provision/engines.sh).
  cat >"$state/$name/daemon.json" <<JSON
{
  ${runtime}
  ${tls}
  "hosts": [${hosts}],
  "data-root": "$state/$name/data",
  "exec-root": "$exec_base/$name",
  "pidfile": "$state/$name/dockerd.pid",
  "bridge": "${bridge[$name]}",
  "iptables": false,
  "ip-forward": false,
  "ip-masq": false,
  "default-address-pools": [{"base": "${pool[$name]}", "size": 28}],
  "live-restore": true,
  "cgroup-parent": "g-fleet-$name",
  "registry-mirrors": ["http://127.0.0.1:$registry_port"],
  "log-driver": "json-file"
}
JSON
  log "starting engine $name (log: $state/$name/dockerd.log)"
  setsid nohup dockerd --config-file "$state/$name/daemon.json" >"$state/$name/dockerd.log" 2>&1 </dev/null &
  wait_until 60 "engine $name to answer (see $state/$name/dockerd.log)" engine_answers "$name"
}

stop_engine() {
  local name=$1 pid
  pid=$(engine_pid "$name") || { log "engine $name is not running"; return 0; }
  log "stopping engine $name (pid $pid)"
  kill "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || die "engine $name (pid $pid) did not stop within 30s"
    sleep 0.5
  done
}

start_sshd() {
  [[ -x /usr/sbin/sshd ]] || install_debian_packages openssh-server
  local dir=$state/sshd client=$state/ssh-client
  mkdir -p "$dir" "$client/bin"
  [[ -f $dir/host_key ]] || ssh-keygen -q -t ed25519 -N "" -f "$dir/host_key"
  [[ -f $client/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N "" -C fleet-test -f "$client/id_ed25519"
  cp "$client/id_ed25519.pub" "$dir/authorized_keys"
  chmod 600 "$dir/authorized_keys"
  # sshd refuses to start without its privilege separation directory.
  mkdir -p /run/sshd
  cat >"$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1:$ssh_port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The remote side of ssh:// runs \`docker system dial-stdio\`: point it at this engine, not the main one.
SetEnv DOCKER_HOST=unix://$(engine_socket ssh)
CONF
  # Clients (the provider, the smoke test's docker CLI, buildctl) call plain
  # \`ssh\`: a wrapper first on PATH gives them this test's key and known host.
  printf '[127.0.0.1]:%s %s\n' "$ssh_port" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$client/known_hosts"
  cat >"$client/config" <<CONF
Host 127.0.0.1
  User root
  IdentityFile $client/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $client/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ControlMaster auto
  ControlPath $client/control-%p
  ControlPersist 60
CONF
  printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$client/config" >"$client/bin/ssh"
  chmod 755 "$client/bin/ssh"
  if [[ -f $dir/sshd.pid ]] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    log "sshd already listens on 127.0.0.1:$ssh_port"
  else
    log "starting sshd on 127.0.0.1:$ssh_port"
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  fi
  wait_until 30 "docker over ssh://root@127.0.0.1:$ssh_port (see $dir/sshd.log)" \
    env PATH="$client/bin:$PATH" docker -H "ssh://root@127.0.0.1:$ssh_port" info
}

stop_sshd() {
  local dir=$state/sshd
  /usr/bin/ssh -F "$state/ssh-client/config" -O exit -p "$ssh_port" 127.0.0.1 >/dev/null 2>&1 || true
  if [[ -f $dir/sshd.pid ]] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; then
    log "stopping sshd (pid $(cat "$dir/sshd.pid"))"
    kill "$(cat "$dir/sshd.pid")"
  fi
}

case "${1:-up}" in
  up)
    [[ $EUID -eq 0 ]] || die "starting extra Docker engines needs root"
    mkdir -p "$state"
    make_tls_material
    for name in "${engines[@]}"; do start_engine "$name"; done
    # The mirror listens on loopback only; containers on these engines reach it
    # at their bridge's gateway, so the registry step adds a forwarder there.
    BUILDKIT_STACK_CONTAINER_GATEWAYS="${bridge_cidr[ssh]%/*} ${bridge_cidr[tls]%/*}" \
      bash "$BUILDKIT_STACK_ROOT/scripts/provision/registry.sh"
    start_sshd
    wait_until 30 "docker over tcp://127.0.0.1:$tls_port with TLS" \
      docker -H "tcp://127.0.0.1:$tls_port" --tlsverify --tlscacert "$state/tls/client/ca.pem" \
      --tlscert "$state/tls/client/cert.pem" --tlskey "$state/tls/client/key.pem" info
    log "hosts up: ssh://root@127.0.0.1:$ssh_port, tcp://127.0.0.1:$tls_port (TLS)"
    print_env
    ;;
  start)
    start_engine "${2:?engine name: ssh or tls}"
    ;;
  stop)
    stop_engine "${2:?engine name: ssh or tls}"
    ;;
  env)
    print_env
    ;;
  down)
    stop_sshd
    for name in "${engines[@]}"; do
      stop_engine "$name"
      if ip link show "${bridge[$name]}" >/dev/null 2>&1; then
        log "removing bridge ${bridge[$name]}"
        ip link del "${bridge[$name]}"
      fi
    done
    # Engine state is left in $state/*/data (images stay cached for the next run).
    ;;
  *) die "usage: $0 up|start ENGINE|stop ENGINE|env|down" ;;
esac
