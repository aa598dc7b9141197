#!/usr/bin/env bash
# Builds the docker provider plugin the way scripts/provision/pulumi.sh does,
# with one change: the upstream Terraform provider's fixed 2 s delay before it
# reads a network back (after create, on every refresh) and before it checks a
# removal is set to 0. bench/run.ts measures a deploy, preview and drift check
# with this binary (in a private PULUMI_HOME) to show what the delay costs.
#
# usage: bench/patched-provider.sh OUTPUT_DIR   → prints the binary's path
# Needs the provisioned provider's build directory (its Go module cache and
# build cache make this a re-link of one package, seconds not minutes).
set -euo pipefail
out=${1:?usage: patched-provider.sh OUTPUT_DIR}
cache="${BUILDKIT_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/buildkit-stack}"
src="$cache/pulumi/build/pulumi-resource-docker"
[[ -d $src/upstream ]] || { echo "patched-provider.sh: $src not found; run npm run provision first" >&2; exit 1; }
version=$(node -p "require('$(dirname "${BASH_SOURCE[0]}")/../package.json').dependencies['@pulumi/docker']")

work="$out/build"
rm -rf "$work" && mkdir -p "$work"
cp -r "$src/." "$work/" && chmod -R u+w "$work"
file="$work/upstream/internal/provider/resource_docker_network_funcs.go"
before=$(grep -cE '^\s+network(Read|Remove)RefreshDelay\s+= 2 \* time.Second' "$file" || true)
# Only these two constants: the fix under test, nothing else.
sed -i -E 's/^(\s+network(Read|Remove)RefreshDelay\s+=\s+)2 \* time.Second/\10/' "$file"
after=$(grep -cE '^\s+network(Read|Remove)RefreshDelay\s+= 0$' "$file" || true)
if [[ $before != 2 || $after != 2 ]]; then
  echo "patched-provider.sh: expected two 2 s network delays in $file (found $before, patched $after)" >&2
  exit 1
fi
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$out/pulumi-resource-docker" .) >"$out/build.log" 2>&1 \
  || { echo "patched-provider.sh: go build failed, see $out/build.log" >&2; exit 1; }
rm -rf "$work"
echo "$out/pulumi-resource-docker"
