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
stack=${1:-dev}
bash "$BUILDKIT_STACK_ROOT/scripts/provision.sh" up
# shellcheck source=scripts/env.sh
source "$BUILDKIT_STACK_ROOT/scripts/env.sh"
cd "$BUILDKIT_STACK_ROOT"
pulumi stack select --create "$stack" >/dev/null
log "deploying stack $stack (backend $PULUMI_BACKEND_URL, policy pack policy/ with policy/config.json)"
pulumi up --yes --refresh --policy-pack "$BUILDKIT_STACK_ROOT/policy" --policy-pack-config "$BUILDKIT_STACK_ROOT/policy/config.json"
