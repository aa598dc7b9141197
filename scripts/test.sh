#!/usr/bin/env bash
# `npm test`: provision whatever is missing, type-check, then run the unit
# suite and the integration suite against the real engine. Extra arguments go
# to jest (e.g. `npm test -- --selectProjects unit`). The unit suite alone
# needs no engine, images or Pulumi toolchain: only the tools it runs
# (actionlint, shellcheck), so that is all it provisions.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=test

# selects_unit_only JEST_ARGS...: true when --selectProjects names the unit
# project and not the integration one (jest ignores names that are no
# project, e.g. a test path written after the project names).
selects_unit_only() {
  local projects=() selecting=0 arg
  for arg in "$@"; do
    case $arg in
      --selectProjects=*) projects+=("${arg#*=}"); selecting=0 ;;
      --selectProjects) selecting=1 ;;
      -*) selecting=0 ;;
      *) ((selecting)) && projects+=("$arg") ;;
    esac
  done
  local unit=0
  for arg in "${projects[@]}"; do
    [[ $arg == integration ]] && return 1
    [[ $arg == unit ]] && unit=1
  done
  ((unit))
}

# Sourced (by tests) for its functions only.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

if selects_unit_only "$@"; then
  [[ -d $BUILDKIT_STACK_ROOT/node_modules/jest ]] || die "npm packages are missing: run \`npm ci\` first"
  log "unit suite only: provisioning just its tools (no engine, images or Pulumi toolchain)"
  bash "$BUILDKIT_STACK_ROOT/scripts/provision/tools.sh"
else
  bash "$BUILDKIT_STACK_ROOT/scripts/provision.sh"
fi
# shellcheck source=scripts/env.sh
source "$BUILDKIT_STACK_ROOT/scripts/env.sh"
cd "$BUILDKIT_STACK_ROOT"
log "type-checking"
npx tsc --noEmit -p .
log "running jest"
npx jest --runInBand "$@"
