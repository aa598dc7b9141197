# The environment every project command runs in: the provisioned Pulumi
# toolchain first on PATH, no update checks or plugin downloads (nothing
# but package registries is reachable from our machines), a local file
# backend unless one is chosen, and the registry mirror's addresses.
# Source it: `source scripts/env.sh`.
# shellcheck shell=bash
_env_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BUILDKIT_STACK_CACHE="${BUILDKIT_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/buildkit-stack}"
export PATH="$BUILDKIT_STACK_CACHE/pulumi/bin:$BUILDKIT_STACK_CACHE/bin:$_env_root/node_modules/.bin:$PATH"
export PULUMI_HOME="${PULUMI_HOME:-$BUILDKIT_STACK_CACHE/pulumi/home}"
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
# Type-checking happens once in `npm test` / `npm run typecheck` (tsc --noEmit).
# The program itself runs through sucrase (Pulumi.yaml); what still runs on
# ts-node (the policy pack) skips the type check, ~2.5 s per run (measured by
# `npm run bench`, docs/performance.md).
export PULUMI_NODEJS_TRANSPILE_ONLY="${PULUMI_NODEJS_TRANSPILE_ONLY:-true}"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$BUILDKIT_STACK_CACHE/state}"
# Local stacks' secrets are encrypted with this passphrase; set your own.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
_env_port="${BUILDKIT_STACK_REGISTRY_PORT:-5000}"
# The mirror as the engine sees it, and as containers (buildkitd) see it.
export BUILDKIT_STACK_MIRROR="127.0.0.1:$_env_port"
export BUILDKIT_STACK_CONTAINER_MIRROR="host.docker.internal:$_env_port"
# The Docker engine deploys and tests go to: BUILDKIT_STACK_ENGINE=29, 28 or
# 20.10 picks one of this machine's engines (29 and 28 are built and started
# by provisioning on their own sockets, see scripts/versions.sh; 20.10 is
# Debian's compatibility engine on the default socket). Without it, an
# exported DOCKER_HOST is kept, else Docker 29 is the default.
case "${BUILDKIT_STACK_ENGINE:-}" in
  29 | 28) export DOCKER_HOST="unix:///run/buildkit-stack/docker-${BUILDKIT_STACK_ENGINE}.sock" ;;
  20.10) export DOCKER_HOST="unix:///var/run/docker.sock" ;;
  "") export DOCKER_HOST="${DOCKER_HOST:-unix:///run/buildkit-stack/docker-29.sock}" ;;
  *) echo "BUILDKIT_STACK_ENGINE is '${BUILDKIT_STACK_ENGINE}'; expected 29, 28 or 20.10" >&2; return 1 ;;
esac
case "$PULUMI_BACKEND_URL" in file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;; esac
unset _env_root _env_port
