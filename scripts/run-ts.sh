#!/usr/bin/env bash
# Runs one of the project's TypeScript tools (doctor, drift, bench) in the
# project's environment: provisioned toolchain on PATH, local backend.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/env.sh
source "$BUILDKIT_STACK_ROOT/scripts/env.sh"
script=$1; shift
exec node -r ts-node/register/transpile-only "$BUILDKIT_STACK_ROOT/$script" "$@"
