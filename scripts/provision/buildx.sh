#!/usr/bin/env bash
# Step: docker buildx at BUILDX_VERSION, built from the Go module proxy (no
# other source is reachable). The integration suite creates multi-node
# builders with it (tests/integration/buildx-fleet.test.ts) and the bench
# compares us with it. Only the binary is made here, under the cache: callers
# put it in a DOCKER_CONFIG of their own (cli-plugins/docker-buildx), so a
# user's ~/.docker is never touched.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=buildx

out="$BUILDKIT_STACK_CACHE/tools/buildx-$BUILDX_VERSION"
# Where scripts/provision/peers.sh built it before this step existed: a warm
# machine reuses that build instead of spending ~6 minutes on the same one.
legacy="$BUILDKIT_STACK_CACHE/peers/buildx-$BUILDX_VERSION"

if [[ -x $out/docker-buildx ]] && stamp_ok "$out/.stamp" "$BUILDX_VERSION"; then
  log "buildx $BUILDX_VERSION is built, up to date"
elif [[ -x $legacy/docker-buildx ]] && stamp_ok "$legacy/.stamp" "$BUILDX_VERSION"; then
  mkdir -p "$(dirname "$out")"
  rm -rf "$out"
  # Hard links: no second copy on disk, and an older checkout's peers.sh still finds its build.
  cp -al "$legacy" "$out" 2>/dev/null || cp -a "$legacy" "$out"
  log "buildx $BUILDX_VERSION was built by the bench's step; reused from $legacy"
else
  log "building buildx $BUILDX_VERSION (go install, ~6 min cold on 2 cores)"
  started=$SECONDS
  rm -rf "$out"
  mkdir -p "$out"
  # buildx's go.mod has no replace directives, so `go install pkg@version` works.
  GOBIN="$out" CGO_ENABLED=0 nice -n 10 go install -trimpath \
    -ldflags "-s -w -X github.com/docker/buildx/version.Version=$BUILDX_VERSION" \
    "github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION" >"$out/build.log" 2>&1 \
    || die "go install buildx@$BUILDX_VERSION failed (see $out/build.log)"
  mv "$out/buildx" "$out/docker-buildx"
  stamp_write "$out/.stamp" "$BUILDX_VERSION"
  log "built buildx $BUILDX_VERSION in $((SECONDS - started))s"
fi
