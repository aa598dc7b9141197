#!/usr/bin/env bash
# Step: the Pulumi Kubernetes provider (pulumi-resource-kubernetes), built
# from the Go module proxy and installed as the plugin `kubernetes` at the
# version of the npm SDK package.json pins (@pulumi/kubernetes), the way
# pulumi.sh installs the docker and command providers.
#
# The proxy serves one revision of github.com/pulumi/pulumi-kubernetes/provider/v4
# (PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION, the commit just before the SDK's
# 4.25.0 release). Its go.mod replaces sdk/v4 with ../sdk, and its main package
# embeds schema-embed.json, which the release build generates from schema.json
# (cmd/pulumi-resource-kubernetes/generate.go) and the module does not ship. So
# a wrapper module requires the provider module, maps sdk/v4 to the released
# v$PULUMI_KUBERNETES_VERSION, copies the main package out of the module cache
# and runs that same generate.go with VERSION set before building.
# npm must not install the plugin itself (its install script downloads it
# from the internet): package.json's allowScripts denies that script.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=pulumi-kubernetes

pulumi_dir="$BUILDKIT_STACK_CACHE/pulumi"
bin="$pulumi_dir/bin"
export PULUMI_HOME="$pulumi_dir/home" PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
[[ -x $bin/pulumi ]] || die "the Pulumi CLI is not built ($bin/pulumi): run bash scripts/provision/pulumi.sh first"
[[ $PULUMI_KUBERNETES_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] \
  || die "package.json pins @pulumi/kubernetes at '$PULUMI_KUBERNETES_VERSION'; expected an exact version like 4.25.0"

module=github.com/pulumi/pulumi-kubernetes/provider/v4
binary="$pulumi_dir/providers/pulumi-resource-kubernetes"
work="$pulumi_dir/build/pulumi-resource-kubernetes"
# One build at a time: checkouts share the cache.
mkdir -p "$pulumi_dir/build"
exec 8>"$pulumi_dir/build/pulumi-resource-kubernetes.lock"
if ! flock -n 8; then
  log "waiting for another pulumi-kubernetes.sh to finish (lock $pulumi_dir/build/pulumi-resource-kubernetes.lock)"
  flock -w 3600 8 || die "another pulumi-kubernetes.sh held its lock for an hour"
fi
key=$(printf '%s\n' "$module $PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION" "sdk v$PULUMI_KUBERNETES_VERSION" "$(go env GOVERSION)" \
  | sha256sum | cut -c1-16)

build_provider() {
  local started=$SECONDS dir
  rm -rf "$work" && mkdir -p "$work" "$(dirname "$binary")"
  cat >"$work/go.mod" <<GOMOD
module buildkit-stack.local/pulumi-resource-kubernetes

go 1.26

require $module $PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION

replace github.com/pulumi/pulumi-kubernetes/sdk/v4 => github.com/pulumi/pulumi-kubernetes/sdk/v4 v$PULUMI_KUBERNETES_VERSION
GOMOD
  dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || return 1
  cp "$dir"/cmd/pulumi-resource-kubernetes/{main.go,generate.go,schema.json,terraform-mapping.json} "$work/" && chmod u+w "$work"/*
  (cd "$work" && export GOFLAGS="-mod=mod ${GOFLAGS:-}" && go mod tidy && VERSION="$PULUMI_KUBERNETES_VERSION" go run generate.go \
    && CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X $module/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" -o "$binary" .) || return 1
  printf '%s\t%s\t%ss\t%s\n' "$(date -u +%FT%TZ)" "pulumi-resource-kubernetes-$PULUMI_KUBERNETES_VERSION" "$((SECONDS - started))" "$key" \
    >>"$pulumi_dir/build-times.tsv"
}

if [[ -x $binary ]] && stamp_ok "$binary.stamp" "$key"; then
  log "pulumi-resource-kubernetes $PULUMI_KUBERNETES_VERSION is built, up to date"
else
  log "building pulumi-resource-kubernetes $PULUMI_KUBERNETES_VERSION from $module@$PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION (cold; log: $work.log)"
  started=$SECONDS
  build_provider >"$work.log" 2>&1 || die "building pulumi-resource-kubernetes failed (see $work.log)"
  stamp_write "$binary.stamp" "$key"
  log "built pulumi-resource-kubernetes in $((SECONDS - started))s"
fi

# The plugin as the CLI lists it, and the binary's stamp it was installed from.
installed() {
  "$bin/pulumi" plugin ls --json 2>/dev/null | node -e '
    const plugins = JSON.parse(require("fs").readFileSync(0, "utf8") || "[]");
    process.exit(plugins.some(p => p.name === "kubernetes" && p.kind === "resource" && p.version === process.argv[1]) ? 0 : 1);' \
    "$PULUMI_KUBERNETES_VERSION"
}
if installed && stamp_ok "$PULUMI_HOME/installed-kubernetes" "$key"; then
  log "plugin kubernetes $PULUMI_KUBERNETES_VERSION is installed"
else
  log "installing plugin kubernetes $PULUMI_KUBERNETES_VERSION"
  "$bin/pulumi" plugin rm resource kubernetes "$PULUMI_KUBERNETES_VERSION" --yes >/dev/null 2>&1 || true
  "$bin/pulumi" plugin install resource kubernetes "$PULUMI_KUBERNETES_VERSION" --file "$binary" >/dev/null 2>&1 \
    || die "pulumi plugin install resource kubernetes $PULUMI_KUBERNETES_VERSION --file $binary failed"
  installed || die "pulumi plugin ls does not list kubernetes $PULUMI_KUBERNETES_VERSION after installing it"
  stamp_write "$PULUMI_HOME/installed-kubernetes" "$key"
fi
