#!/usr/bin/env bash
# Builds the docker provider plugin from the provisioned build directory with
# scripts/provision/providers/docker/patch-upstream.sh applied (no fixed 2 s
# network delay, 0.2 s health poll), for a provider provisioned before
# pulumi.sh applied it. bench/run.ts (X) and bench/peers.ts (via
# BUILDKIT_STACK_BENCH_DOCKER_PROVIDER) measure with it in a private PULUMI_HOME.
#
# usage: bench/patched-provider.sh OUTPUT_DIR   → prints the binary's path
# Needs the provisioned provider's build directory (its Go module cache and
# build cache make this a re-link of one package, seconds not minutes).
set -euo pipefail
out=${1:?usage: patched-provider.sh OUTPUT_DIR}
cache="${BUILDKIT_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/buildkit-stack}"
src="$cache/pulumi/build/pulumi-resource-docker"
[[ -d $src/upstream ]] || { echo "patched-provider.sh: $src not found; run npm run provision first" >&2; exit 1; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=$(node -p "require('$here/../package.json').dependencies['@pulumi/docker']")

work="$out/build"
rm -rf "$work" && mkdir -p "$work"
cp -r "$src/." "$work/" && chmod -R u+w "$work"
# The same edits scripts/provision/pulumi.sh makes; on a build directory they
# were already made in, it fails (the provisioned provider is then this one).
bash "$here/../scripts/provision/providers/docker/patch-upstream.sh" "$work/upstream" \
  || { echo "patched-provider.sh: patching failed (already patched? then the provisioned provider is this one)" >&2; exit 1; }
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out/pulumi-resource-docker" .) >"$out/build.log" 2>&1 \
  || { echo "patched-provider.sh: go build failed, see $out/build.log" >&2; exit 1; }
rm -rf "$work"
echo "$out/pulumi-resource-docker"
