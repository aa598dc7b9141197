#!/usr/bin/env bash
# One idempotent entry point for everything deploys and tests need on this
# machine, cached under $BUILDKIT_STACK_CACHE (default ~/.cache/buildkit-stack)
# and keyed by the versions in scripts/versions.sh and package.json.
#
#   bash scripts/provision.sh up    what `npm run up` needs for the dev stack: Docker 29 (the dev
#                                   engine; Debian's 20.10 builds the images), the registry mirror
#                                   with the current BuildKit image, the Dockerfile frontend and a
#                                   busybox base, the Pulumi CLI and providers
#   bash scripts/provision.sh cluster  what `npm run up -- cluster` needs: the above, plus the local
#                                   Kubernetes cluster and the Pulumi Kubernetes provider (cluster.sh)
#   bash scripts/provision.sh       everything `npm test` and the bench need besides: Docker 28, the
#                                   previous and rootless BuildKit images, buildx, the linters, the cluster
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=provision

# provision_plan PROFILE: the steps, in order, one per line: the script under
# scripts/provision, then the environment it runs with.
provision_plan() {
  local engines images
  case $1 in
    up | cluster) engines=29 images=dev ;;
    all) engines=29,28 images=all ;;
    *) die "unknown profile '$1': expected up (the dev stack), cluster (the cluster stack) or nothing (everything)" ;;
  esac
  echo "engine.sh"
  # Before the registry: containers on the Docker 28/29 engines reach it on these bridges' gateways.
  echo "engine-bridges.sh"
  echo "registry.sh"
  echo "images.sh BUILDKIT_STACK_IMAGES=$images"
  echo "pulumi.sh"
  echo "engines.sh BUILDKIT_STACK_ENGINES=$engines"
  if [[ $1 == all ]]; then
    echo "tools.sh"
    # docker buildx, for the multi-node builder test (and the bench).
    echo "buildx.sh"
  fi
  # The local Kubernetes cluster and the Kubernetes provider (docs/local-cluster.md): built once (about 45 min
  # cold on 2 cores), then a warm `cluster.sh up` only checks stamps and health endpoints.
  if [[ $1 == cluster || $1 == all ]]; then
    echo "cluster.sh"
  fi
  # The bench's other peer (the Terraform provider) is built by `npm run bench`
  # (scripts/provision/peers.sh), not here: no test needs it.
}

# Sourced (by tests) for its functions only.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

profile=${1:-all}
# Provisioning manages this machine's engines, each by its own socket: an
# exported DOCKER_HOST (scripts/env.sh sets one) must not redirect the checks.
unset DOCKER_HOST
started=$SECONDS
plan=$(provision_plan "$profile")

if [[ ! -d $BUILDKIT_STACK_ROOT/node_modules/@pulumi/pulumi ]] || [[ $BUILDKIT_STACK_ROOT/package-lock.json -nt $BUILDKIT_STACK_ROOT/node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  (cd "$BUILDKIT_STACK_ROOT" && npm ci --no-audit --no-fund >/dev/null) || { STEP=npm die "npm ci failed"; }
else
  log "npm packages are installed"
fi

while read -r script settings; do
  # shellcheck disable=SC2086 # settings are NAME=VALUE words for env
  env ${settings:-} bash "$BUILDKIT_STACK_ROOT/scripts/provision/$script"
done <<<"$plan"
log "done ($profile) in $((SECONDS - started))s; environment: source scripts/env.sh"
