#!/usr/bin/env bash
# One idempotent entry point for everything the deploy and the integration
# tests need on this machine: a Docker engine, the local registry mirror, the
# BuildKit and test images in it, the Pulumi toolchain, and npm packages.
# Cached under $BUILDKIT_STACK_CACHE (default ~/.cache/buildkit-stack), keyed
# by the versions in scripts/versions.sh and package.json.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=provision
started=$SECONDS
steps="$BUILDKIT_STACK_ROOT/scripts/provision"

if [[ ! -d $BUILDKIT_STACK_ROOT/node_modules/@pulumi/pulumi ]] || [[ $BUILDKIT_STACK_ROOT/package-lock.json -nt $BUILDKIT_STACK_ROOT/node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  (cd "$BUILDKIT_STACK_ROOT" && npm ci --no-audit --no-fund >/dev/null) || { STEP=npm die "npm ci failed"; }
else
  log "npm packages are installed"
fi

bash "$steps/engine.sh"
bash "$steps/registry.sh"
# The images step compiles Go while the toolchain step does too; on two cores
# running them one after the other is as fast and keeps the logs readable.
bash "$steps/images.sh"
bash "$steps/pulumi.sh"
bash "$steps/tools.sh"
bash "$steps/peers.sh"
log "done in $((SECONDS - started))s; environment: source scripts/env.sh"
