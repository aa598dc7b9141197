#!/usr/bin/env bash
# Step: the bridges of the current engines (Docker 28 and 29), created before
# the registry starts so it can listen on their gateway addresses, which is
# where containers on those engines reach it (host.docker.internal). Only our
# own bridges are created or touched; docker0 and every other link stay as
# they are. The engines run with iptables off; the one thing they need from
# the firewall is below, in a chain of our own.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=engine-bridges

[[ $EUID -eq 0 ]] || die "creating the engines' bridges needs root"

# ensure_bridge NAME CIDR: a bridge NAME, up, with address CIDR (its gateway).
ensure_bridge() {
  local name=$1 cidr=$2
  if ! ip link show "$name" >/dev/null 2>&1; then
    ip link add name "$name" type bridge || die "could not create bridge $name"
  fi
  if ! ip -4 -o addr show dev "$name" | grep -qw "$cidr"; then
    ip addr add "$cidr" dev "$name" || die "could not give bridge $name the address $cidr"
  fi
  ip link set "$name" up
}

# With iptables off the engines add no forwarding rules, but bridged traffic
# still passes the host's FORWARD chain (br_netfilter), whose policy 20.10 sets
# to DROP: two containers on one network of ours (a TCP client and buildkitd)
# could not talk. A chain of our own accepts traffic within each of our
# networks (one /24 each: the default bridge and every network of the address
# pool), nothing across networks and nothing leaving the host. It is jumped
# to from DOCKER-USER, the chain Docker leaves to its users (FORWARD if there
# is none); no existing rule is changed.
engines_chain=BUILDKIT-STACK-ENGINES
ensure_forwarding() {
  local hook=DOCKER-USER subnet
  iptables -n -L "$hook" >/dev/null 2>&1 || hook=FORWARD
  iptables -n -L "$engines_chain" >/dev/null 2>&1 || iptables -N "$engines_chain"
  iptables -F "$engines_chain"
  for subnet in $(engine_subnets "$DOCKER28_BRIDGE_CIDR" "$DOCKER28_ADDRESS_POOL") $(engine_subnets "$DOCKER29_BRIDGE_CIDR" "$DOCKER29_ADDRESS_POOL"); do
    iptables -A "$engines_chain" -s "$subnet" -d "$subnet" -j ACCEPT
  done
  iptables -A "$engines_chain" -j RETURN
  iptables -C "$hook" -j "$engines_chain" 2>/dev/null || iptables -I "$hook" 1 -j "$engines_chain"
}

# engine_subnets BRIDGE_CIDR POOL: the bridge's /24 and every /24 of a /20 pool.
engine_subnets() {
  local bridge=$1 pool=$2 a b c i
  IFS=. read -r a b c _ <<<"${bridge%/*}"
  echo "$a.$b.$c.0/24"
  [[ ${pool#*/} == 20 ]] || die "address pool $pool: expected a /20 (16 networks of /24)"
  IFS=. read -r a b c _ <<<"${pool%/*}"
  for ((i = 0; i < 16; i++)); do echo "$a.$b.$((c + i)).0/24"; done
}

ensure_bridge "$DOCKER28_BRIDGE" "$DOCKER28_BRIDGE_CIDR"
ensure_bridge "$DOCKER29_BRIDGE" "$DOCKER29_BRIDGE_CIDR"
ensure_forwarding
log "forwarding within each network of theirs accepted (iptables chain $engines_chain)"
log "bridges $DOCKER28_BRIDGE ($DOCKER28_BRIDGE_CIDR) and $DOCKER29_BRIDGE ($DOCKER29_BRIDGE_CIDR) are up"
