#!/usr/bin/env bash
# `npm test`: provision whatever is missing, type-check, then run the unit
# suite and the integration suite against the real engine. Extra arguments go
# to jest (e.g. `npm test -- --selectProjects unit`).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=test
bash "$BUILDKIT_STACK_ROOT/scripts/provision.sh"
# shellcheck source=scripts/env.sh
source "$BUILDKIT_STACK_ROOT/scripts/env.sh"
cd "$BUILDKIT_STACK_ROOT"
log "type-checking"
npx tsc --noEmit -p .
log "running jest"
npx jest --runInBand "$@"
