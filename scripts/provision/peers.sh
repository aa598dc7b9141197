#!/usr/bin/env bash
# Step: the tools `npm run bench -- --only peers` compares us with, built from
# the Go module proxy only: docker buildx (built by scripts/provision/buildx.sh,
# linked here as a CLI plugin into a project-owned DOCKER_CONFIG, so a user's
# ~/.docker is never touched) and the kreuzwerker Terraform provider at the
# revision our docker provider bridges, upstream and patched as ours is (run
# through Terraform's dev_overrides, since no Terraform registry is reachable).
# Terraform itself is not built here: the bench uses the one on PATH.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=peers

peers="$BUILDKIT_STACK_CACHE/peers"
mkdir -p "$peers"

# buildx is part of regular provisioning (the integration suite uses it too):
# scripts/provision/buildx.sh builds it once, keyed by BUILDX_VERSION.
bash "$(dirname "${BASH_SOURCE[0]}")/buildx.sh"
# The bench points DOCKER_CONFIG here; only the plugin lives in it.
mkdir -p "$peers/docker-config/cli-plugins"
ln -sfn "$BUILDKIT_STACK_CACHE/tools/buildx-$BUILDX_VERSION/docker-buildx" "$peers/docker-config/cli-plugins/docker-buildx"

# kreuzwerker/docker: `go install` refuses it (its go.mod still names the old
# terraform-providers module path), so it is built as the main module from its
# downloaded module directory, copied out of the read-only module cache in
# case `go build` needs to complete its go.sum. Built twice from that one
# revision: as upstream publishes it, and with the patch our docker provider
# carries (providers/docker/patch-upstream.sh: no fixed 2 s network read
# delay, 0.2 s health poll), so the bench can compare the two programs on the
# same provider code as well as against what a Terraform user gets.
tf_module="github.com/kreuzwerker/terraform-provider-docker@$PULUMI_DOCKER_UPSTREAM_VERSION"
patch="$BUILDKIT_STACK_ROOT/scripts/provision/providers/docker/patch-upstream.sh"
# build_tf_provider DIR LABEL [PATCH]: the provider binary in DIR, rebuilt when the module or the patch changes.
build_tf_provider() {
  local dir=$1 label=$2 patch_script=${3:-} key="$tf_module"
  [[ -n $patch_script ]] && key+=" patched $(sha256sum "$patch_script" | cut -c1-16)"
  if [[ -x $dir/terraform-provider-docker ]] && stamp_ok "$dir/.stamp" "$key"; then
    log "terraform-provider-docker $PULUMI_DOCKER_UPSTREAM_VERSION ($label) is built, up to date"
    return
  fi
  log "building terraform-provider-docker $PULUMI_DOCKER_UPSTREAM_VERSION ($label; ~6 min cold on 2 cores, a re-link once the other is built)"
  local started=$SECONDS src
  mkdir -p "$dir"
  src=$(go mod download -json "$tf_module" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s);if(m.Error){console.error(m.Error);process.exit(1)}console.log(m.Dir)})') \
    || die "go mod download $tf_module failed"
  rm -rf "$dir/src" && cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
  if [[ -n $patch_script ]]; then
    bash "$patch_script" "$dir/src" || die "patching $tf_module with $patch_script failed"
  fi
  (cd "$dir/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w" \
    -o "$dir/terraform-provider-docker" .) >"$dir/build.log" 2>&1 \
    || die "building terraform-provider-docker ($label) failed (see $dir/build.log)"
  stamp_write "$dir/.stamp" "$key"
  log "built terraform-provider-docker ($label) in $((SECONDS - started))s"
}
tf_dir="$peers/terraform-provider-docker-$PULUMI_DOCKER_UPSTREAM_VERSION"
tf_same_dir="$peers/terraform-provider-docker-$PULUMI_DOCKER_UPSTREAM_VERSION-same-provider"
build_tf_provider "$tf_dir" upstream
build_tf_provider "$tf_same_dir" "patched like ours" "$patch"

# Terraform reads the provider from a directory instead of a registry; the
# bench sets TF_CLI_CONFIG_FILE to one of these files.
write_terraformrc() {
  cat >"$1" <<EOF
provider_installation {
  dev_overrides {
    "kreuzwerker/docker" = "$2"
  }
  direct {}
}
EOF
}
write_terraformrc "$peers/terraformrc" "$tf_dir"
write_terraformrc "$peers/terraformrc-same-provider" "$tf_same_dir"

# The bench traces where a preview and a drift check spend their time from process starts and exits.
install_debian_packages strace

if command -v terraform >/dev/null; then
  log "terraform $(terraform version -json 2>/dev/null | node -pe 'JSON.parse(require("fs").readFileSync(0)).terraform_version' 2>/dev/null || echo '?') is on PATH"
else
  log "terraform is not on PATH: the bench's terraform peer will fail until it is (any 1.x)"
fi
