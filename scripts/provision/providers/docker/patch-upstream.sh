#!/usr/bin/env bash
# usage: patch-upstream.sh UPSTREAM_DIR
# Removes two waits from a copy of kreuzwerker/terraform-provider-docker that
# guarantee nothing and cost every deploy and drift check (measured in
# docs/performance.md). Used by scripts/provision/pulumi.sh (the provider we
# build) and bench/patched-provider.sh. Fails unless each edit matched exactly.
#  1. A fixed 2 s sleep before a network is read back (after create, on every
#     refresh) and before its removal is checked. The read still polls until
#     the network shows all its fields (only overlay networks can lag), so the
#     sleep only delays.
#  2. `wait: true` checks the container's health once a second, so `up` sees
#     "healthy" up to a second late; every 0.2 s it sees it within 0.2 s (an
#     inspect per poll, during create only, bounded by wait_timeout as before).
set -euo pipefail
dir=${1:?usage: patch-upstream.sh UPSTREAM_DIR}
network="$dir/internal/provider/resource_docker_network_funcs.go"
container="$dir/internal/provider/resource_docker_container_funcs.go"

sed -i -E 's/^(\s+network(Read|Remove)RefreshDelay\s+=\s+)2 \* time.Second/\10/' "$network"
count=$(grep -cE '^\s+network(Read|Remove)RefreshDelay\s+= 0$' "$network" || true)
[[ $count == 2 ]] || { echo "patch-upstream.sh: expected two fixed 2 s network delays in $network, patched $count" >&2; exit 1; }

# The only one-second sleep in the file is the health poll of `wait`.
[[ $(grep -c 'time.Sleep(time.Second)' "$container" || true) == 1 ]] \
  || { echo "patch-upstream.sh: expected one time.Sleep(time.Second) (the health poll) in $container" >&2; exit 1; }
sed -i 's/time.Sleep(time.Second)/time.Sleep(200 * time.Millisecond)/' "$container"
