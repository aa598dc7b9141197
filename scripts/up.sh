#!/usr/bin/env bash
# `npm run up [-- STACK]`: provision whatever is missing, then deploy a stack
# (dev by default) to the local file backend. Refreshes first, so whatever
# changed out of band (a removed container, a stopped one) is healed too.
# The policy pack runs on the preview `pulumi up` makes before it changes
# anything: a stack that breaks a mandatory policy is refused with nothing
# created, the same gate the deploy workflow applies, with the same
# configuration (policy/config.json: which stacks are production).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=up

# provision_profile STACK_FILE: what provisioning a stack needs. A stack deploying to the local Kubernetes
# cluster (its kubeconfig, as Pulumi.cluster.yaml names it) needs that cluster running too; any other stack
# (a cluster of your own included), the dev stack's engine only.
provision_profile() {
  if grep -qsE '^\s*buildkit:kubeconfig:\s*"?~/\.cache/buildkit-stack/cluster/kubeconfig"?\s*$' "$1"; then
    echo cluster
  else
    echo up
  fi
}

# Sourced (by tests) for its functions only.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

stack=${1:-dev}
profile=$(provision_profile "$BUILDKIT_STACK_ROOT/Pulumi.$stack.yaml")
bash "$BUILDKIT_STACK_ROOT/scripts/provision.sh" "$profile"
# shellcheck source=scripts/env.sh
source "$BUILDKIT_STACK_ROOT/scripts/env.sh"
cd "$BUILDKIT_STACK_ROOT"
pulumi stack select --create "$stack" >/dev/null
log "deploying stack $stack (backend $PULUMI_BACKEND_URL, policy pack policy/ with policy/config.json)"
pulumi up --yes --refresh --policy-pack "$BUILDKIT_STACK_ROOT/policy" --policy-pack-config "$BUILDKIT_STACK_ROOT/policy/config.json"
