#!/usr/bin/env bash
# `npm run up [-- STACK]`: provision whatever is missing, then deploy a stack
# (dev by default) to the local file backend. Refreshes first, so whatever
# changed out of band (a removed container, a stopped one) is healed too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=up
stack=${1:-dev}
bash "$BUILDKIT_STACK_ROOT/scripts/provision.sh"
# shellcheck source=scripts/env.sh
source "$BUILDKIT_STACK_ROOT/scripts/env.sh"
cd "$BUILDKIT_STACK_ROOT"
pulumi stack select --create "$stack" >/dev/null
log "deploying stack $stack (backend $PULUMI_BACKEND_URL)"
pulumi up --yes --skip-preview --refresh
