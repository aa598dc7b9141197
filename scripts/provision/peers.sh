#!/usr/bin/env bash
# Step: the tools `npm run bench -- --only peers` compares us with, built from
# the Go module proxy only: docker buildx (built by scripts/provision/buildx.sh,
# linked here as a CLI plugin into a project-owned DOCKER_CONFIG, so a user's
# ~/.docker is never touched) and the kreuzwerker Terraform provider at the
# revision our docker provider bridges (run through Terraform's dev_overrides,
# since no Terraform registry is reachable).
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
# case `go build` needs to complete its go.sum.
tf_dir="$peers/terraform-provider-docker-$PULUMI_DOCKER_UPSTREAM_VERSION"
tf_module="github.com/kreuzwerker/terraform-provider-docker@$PULUMI_DOCKER_UPSTREAM_VERSION"
if [[ -x $tf_dir/terraform-provider-docker ]] && stamp_ok "$tf_dir/.stamp" "$tf_module"; then
  log "terraform-provider-docker $PULUMI_DOCKER_UPSTREAM_VERSION is built, up to date"
else
  log "building terraform-provider-docker $PULUMI_DOCKER_UPSTREAM_VERSION (~6 min cold on 2 cores)"
  started=$SECONDS
  mkdir -p "$tf_dir"
  src=$(go mod download -json "$tf_module" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const m=JSON.parse(s);if(m.Error){console.error(m.Error);process.exit(1)}console.log(m.Dir)})') \
    || die "go mod download $tf_module failed"
  rm -rf "$tf_dir/src" && cp -r "$src" "$tf_dir/src" && chmod -R u+w "$tf_dir/src"
  (cd "$tf_dir/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go build -trimpath -ldflags "-s -w" \
    -o "$tf_dir/terraform-provider-docker" .) >"$tf_dir/build.log" 2>&1 \
    || die "building terraform-provider-docker failed (see $tf_dir/build.log)"
  stamp_write "$tf_dir/.stamp" "$tf_module"
  log "built terraform-provider-docker in $((SECONDS - started))s"
fi
# Terraform reads the provider from this directory instead of a registry;
# the bench sets TF_CLI_CONFIG_FILE to this file.
cat >"$peers/terraformrc" <<EOF
provider_installation {
  dev_overrides {
    "kreuzwerker/docker" = "$tf_dir"
  }
  direct {}
}
EOF

if command -v terraform >/dev/null; then
  log "terraform $(terraform version -json 2>/dev/null | node -pe 'JSON.parse(require("fs").readFileSync(0)).terraform_version' 2>/dev/null || echo '?') is on PATH"
else
  log "terraform is not on PATH: the bench's terraform peer will fail until it is (any 1.x)"
fi
