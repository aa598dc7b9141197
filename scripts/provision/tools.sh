#!/usr/bin/env bash
# Step: developer tools the test suite runs: actionlint for the workflows,
# built from the Go module proxy at ACTIONLINT_VERSION (the newest it serves;
# `go list -m -versions github.com/rhysd/actionlint` to check for a newer one).
# actionlint's go.mod has no replace directives, so `go install pkg@version` works.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=tools

out="$BUILDKIT_STACK_CACHE/tools/actionlint-$ACTIONLINT_VERSION"
if stamp_ok "$out/.stamp" "$ACTIONLINT_VERSION" && [[ -x $out/actionlint ]]; then
  log "actionlint $ACTIONLINT_VERSION is built, up to date"
else
  log "building actionlint $ACTIONLINT_VERSION"
  mkdir -p "$out"
  GOBIN="$out" CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" >"$out/build.log" 2>&1 \
    || die "go install actionlint@$ACTIONLINT_VERSION failed (see $out/build.log)"
  stamp_write "$out/.stamp" "$ACTIONLINT_VERSION"
fi
mkdir -p "$BUILDKIT_STACK_CACHE/bin"
ln -sfn "$out/actionlint" "$BUILDKIT_STACK_CACHE/bin/actionlint"

# actionlint checks `run:` scripts only when shellcheck is on PATH (otherwise
# it silently skips that rule); Debian's package is enough.
if command -v shellcheck >/dev/null; then
  log "shellcheck is installed"
else
  install_debian_packages shellcheck
fi
