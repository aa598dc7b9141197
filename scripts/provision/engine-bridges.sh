#!/usr/bin/env bash
# Step: the bridges of the current engines (Docker 28 and 29), created before
# the registry starts so it can listen on their gateway addresses, which is
# where containers on those engines reach it (host.docker.internal). Only our
# own bridges are created or touched; docker0 and every other link stay as
# they are, and no iptables rule is added (the engines run with iptables off).
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

ensure_bridge "$DOCKER28_BRIDGE" "$DOCKER28_BRIDGE_CIDR"
ensure_bridge "$DOCKER29_BRIDGE" "$DOCKER29_BRIDGE_CIDR"
log "bridges $DOCKER28_BRIDGE ($DOCKER28_BRIDGE_CIDR) and $DOCKER29_BRIDGE ($DOCKER29_BRIDGE_CIDR) are up"
