#!/usr/bin/env bash
# One idempotent entry point for everything the deploy and the integration
# tests need on this machine: a Docker engine, the local registry mirror, the
# BuildKit and test images in it, the Pulumi toolchain, and npm packages.
# Cached under $BUILDKIT_STACK_CACHE (default ~/.cache/buildkit-stack), keyed
# by the versions in scripts/versions.sh and package.json.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=provision
# Provisioning manages this machine's engines, each by its own socket: an
# exported DOCKER_HOST (scripts/env.sh sets one) must not redirect the checks.
unset DOCKER_HOST
started=$SECONDS
steps="$BUILDKIT_STACK_ROOT/scripts/provision"

if [[ ! -d $BUILDKIT_STACK_ROOT/node_modules/@pulumi/pulumi ]] || [[ $BUILDKIT_STACK_ROOT/package-lock.json -nt $BUILDKIT_STACK_ROOT/node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  (cd "$BUILDKIT_STACK_ROOT" && npm ci --no-audit --no-fund >/dev/null) || { STEP=npm die "npm ci failed"; }
else
  log "npm packages are installed"
fi

bash "$steps/engine.sh"
# Before the registry: containers on the Docker 28/29 engines reach it on
# these bridges' gateways.
bash "$steps/engine-bridges.sh"
bash "$steps/registry.sh"
# The images step compiles Go while the toolchain step does too; on two cores
# running them one after the other is as fast and keeps the logs readable.
bash "$steps/images.sh"
bash "$steps/pulumi.sh"
bash "$steps/tools.sh"
# Docker 28 and 29 beside 20.10; 29 is the default engine (scripts/env.sh).
bash "$steps/engines.sh"
# docker buildx, for the multi-node builder test (and the bench).
bash "$steps/buildx.sh"
# The bench's other peer (the Terraform provider) is built by `npm run bench`
# (scripts/provision/peers.sh), not here: no test needs it, and it costs a
# long Go build on a cold machine.
log "done in $((SECONDS - started))s; environment: source scripts/env.sh"
