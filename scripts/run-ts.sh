#!/usr/bin/env bash
# Runs one of the project's TypeScript tools (doctor, drift, bench) in the
# project's environment: provisioned toolchain on PATH, local backend.
# Only env.sh is sourced: lib.sh would also source versions.sh, whose three
# `node -p` calls cost 0.2 s on an idle machine and 2-3 s on a loaded one,
# for versions none of these tools read from the environment.
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
script=$1; shift
# As Pulumi.yaml runs the program: through runtime/preload.js (TypeScript
# transformed by sucrase and cached, tsc type-checks in `npm test`).
exec node -r "$root/runtime/preload.js" "$root/$script" "$@"
