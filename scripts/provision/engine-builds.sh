#!/usr/bin/env bash
# Step: the binaries of the current Docker engines (issue 10), built from Go
# modules the way docs/development.md describes, because our machines reach only
# package registries:
#   docker28   dockerd + docker-proxy 28.5.2 (github.com/docker/docker, a
#              +incompatible module: built through a wrapper module)
#   docker29   dockerd + docker-proxy from github.com/moby/moby/v2, stamped
#              with the release its releases/versions.yaml names
#   containerd containerd + containerd-shim-runc-v2 (Docker 29's containerd)
#   runc       runc with seccomp (Docker 29 needs >= 1.2 for the time namespace)
# Each artefact lives in $BUILDKIT_STACK_CACHE/engines/<artefact>-<version>/
# under a stamp keyed by its version, build flags and Go version; a warm run
# only checks stamps. Cold build times go to engines/build-times.tsv.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=engine-builds
# Which engines to build: 29 (the default engine: its containerd and runc too), 28, or both.
engines=",${BUILDKIT_STACK_ENGINES:-29,28},"

engines_dir="$BUILDKIT_STACK_CACHE/engines"
mkdir -p "$engines_dir"
go_version="$(go env GOVERSION)"

# Go at least MIN (containerd's go.mod asks for it). A newer toolchain from
# the module proxy is used only if the local one is older.
go_at_least() { printf '%s\n%s\n' "$1" "${go_version#go}" | sort -V -C; }
if ! go_at_least 1.26.6; then
  log "go ${go_version#go} is older than containerd's 1.26.6; asking the module proxy for go1.26.6"
  export GOTOOLCHAIN=go1.26.6
  go_version="$(go env GOVERSION)" || die "the module proxy does not serve go1.26.6: install Go >= 1.26.6"
fi

module_dir() { go_module_field "$1" "$2" Dir; }

# build ARTEFACT KEY FUNCTION: cached_build (lib.sh) of an engine piece.
build() { cached_build "$engines_dir" "$engines_dir/build-times.tsv" "$@"; }

static_tags='netgo osusergo static_build'

runc_build() {
  install_debian_packages pkg-config libseccomp-dev
  GOBIN="$1" CGO_ENABLED=1 go install -trimpath -tags 'seccomp urfave_cli_no_docs' \
    "github.com/opencontainers/runc@$RUNC_VERSION"
}

containerd_build() {
  local tags="urfave_cli_no_docs $static_tags no_btrfs"
  local ldflags="-X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION#v}"
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -tags "$tags" -ldflags "$ldflags" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION"
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -tags "$tags no_grpc" -ldflags "$ldflags" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

# github.com/docker/docker has no go.mod (its dependencies are in vendor.mod),
# so `go install …@v28` cannot resolve it. A wrapper module requiring it with
# vendor.mod's require/exclude blocks and vendor.sum as go.sum builds it as
# released.
docker28_build() {
  local src wrapper="$engines_dir/docker28-wrapper"
  src=$(module_dir "$DOCKER28_MODULE" "$DOCKER28_MODULE_VERSION")
  rm -rf "$wrapper" && mkdir -p "$wrapper"
  {
    echo "module buildkit-stack.local/docker28"
    echo
    sed -e '/^module /d' "$src/vendor.mod"
    echo
    echo "require $DOCKER28_MODULE $DOCKER28_MODULE_VERSION"
  } >"$wrapper/go.mod"
  cp "$src/vendor.sum" "$wrapper/go.sum"
  chmod u+w "$wrapper/go.sum"
  local ldflags="-X $DOCKER28_MODULE/dockerversion.Version=$DOCKER28_VERSION -X $DOCKER28_MODULE/dockerversion.GitCommit=$DOCKER28_MODULE_VERSION"
  local cmd
  for cmd in dockerd docker-proxy; do
    (cd "$wrapper" && CGO_ENABLED=0 go build -mod=mod -trimpath \
      -tags "$static_tags exclude_graphdriver_btrfs" -ldflags "$ldflags" \
      -o "$1/$cmd" "$DOCKER28_MODULE/cmd/$cmd")
  done
}

# The release Docker 29's module is stamped as: the `last:` entry of its
# releases/versions.yaml (remembered per module version, so a warm run needs
# no module download).
docker29_release() {
  local remembered="$engines_dir/docker29-release-$DOCKER29_MODULE_VERSION" src
  if [[ ! -s $remembered ]]; then
    src=$(module_dir "$DOCKER29_MODULE" "$DOCKER29_MODULE_VERSION")
    awk '/^docker:/ {d=1} d && $1 == "last:" {gsub(/"/, "", $2); print $2; exit}' "$src/releases/versions.yaml" >"$remembered"
  fi
  cat "$remembered"
}
DOCKER29_VERSION=$(docker29_release)
[[ $DOCKER29_VERSION =~ ^29\.[0-9]+\.[0-9]+$ ]] \
  || die "$DOCKER29_MODULE@$DOCKER29_MODULE_VERSION releases/versions.yaml names '$DOCKER29_VERSION', not a 29.x release"

docker29_build() {
  local ldflags="-X $DOCKER29_MODULE/dockerversion.Version=$DOCKER29_VERSION -X $DOCKER29_MODULE/dockerversion.GitCommit=$DOCKER29_MODULE_VERSION"
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -tags "$static_tags nri_no_wasm" -ldflags "$ldflags" \
    "$DOCKER29_MODULE/cmd/dockerd@$DOCKER29_MODULE_VERSION" \
    "$DOCKER29_MODULE/cmd/docker-proxy@$DOCKER29_MODULE_VERSION"
}

# Stable names for engines.sh: engines/current/{docker28,docker29,containerd,runc}.
mkdir -p "$engines_dir/current"
# Docker 29's pieces first: it is the default engine.
if [[ $engines == *,29,* ]]; then
  build "runc-$RUNC_VERSION" "runc $RUNC_VERSION seccomp" runc_build
  build "containerd-$CONTAINERD_VERSION" "containerd $CONTAINERD_VERSION static no_btrfs" containerd_build
  build "docker-$DOCKER29_VERSION" "$DOCKER29_MODULE $DOCKER29_MODULE_VERSION as $DOCKER29_VERSION" docker29_build
  ln -sfn "../docker-$DOCKER29_VERSION" "$engines_dir/current/docker29"
  ln -sfn "../containerd-$CONTAINERD_VERSION" "$engines_dir/current/containerd"
  ln -sfn "../runc-$RUNC_VERSION" "$engines_dir/current/runc"
fi
if [[ $engines == *,28,* ]]; then
  build "docker-$DOCKER28_VERSION" "$DOCKER28_MODULE $DOCKER28_MODULE_VERSION" docker28_build
  ln -sfn "../docker-$DOCKER28_VERSION" "$engines_dir/current/docker28"
fi
