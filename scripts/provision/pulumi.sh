#!/usr/bin/env bash
# Step: the Pulumi CLI, the Node.js language host, launchers the official
# distribution ships beside them, and the docker and command providers,
# all built from the Go module proxy at the versions package.json pins.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=pulumi

pulumi_dir="$BUILDKIT_STACK_CACHE/pulumi"
bin="$pulumi_dir/bin"
providers_src="$BUILDKIT_STACK_ROOT/scripts/provision/providers"
mkdir -p "$bin" "$pulumi_dir/build"
export PULUMI_HOME="$pulumi_dir/home" PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

# wrapper_build NAME OUTPUT LDFLAGS PACKAGE GO_MOD_BODY [SOURCE_DIR]: build one
# binary in a wrapper module of ours, so replace directives the target needs
# can be repeated here (go install pkg@version refuses them).
wrapper_build() {
  local name=$1 output=$2 ldflags=$3 package=$4 gomod=$5 source=${6:-}
  local work="$pulumi_dir/build/$name" key
  key=$(printf '%s\n' "$ldflags" "$package" "$gomod"; [[ -n $source ]] && cat "$source"/* || true)
  key=$(sha256sum <<<"$key" | cut -c1-16)
  if [[ -x $output ]] && stamp_ok "$output.stamp" "$key"; then
    log "$name is built, up to date"
    return 0
  fi
  log "building $name"
  rm -rf "$work" && mkdir -p "$work"
  printf 'module buildkitstack.local/%s\n\ngo 1.26\n\n%s\n' "$name" "$gomod" >"$work/go.mod"
  [[ -n $source ]] && cp "$source"/*.go "$work/"
  [[ -n ${PREPARE:-} ]] && "$PREPARE" "$work"
  (cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$output" "$package") \
    >"$work/build.log" 2>&1 || die "building $name failed (see $work/build.log)"
  stamp_write "$output.stamp" "$key"
}

wrapper_build pulumi "$bin/pulumi" \
  "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "require (
	github.com/pulumi/pulumi/pkg/v3 v$PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"

# The v3.68 host only stubs RunPlugin, which is how this CLI starts a Node.js
# policy pack (`--policy-pack DIR`; the pulumi-analyzer-policy launcher below
# is no longer consulted for a directory). So the host's own sources are
# copied out of the module cache, the stub is deleted, and language-nodejs/
# run_plugin.go supplies a RunPlugin that runs @pulumi/pulumi/cmd/run-policy-pack.
# Nor does it see Pulumi.yaml's runtime options, which this CLI sends with each
# request rather than on the host's command line: language-nodejs/run_options.go.
nodejs_host="github.com/pulumi/pulumi/sdk/v3@$PULUMI_LANGUAGE_NODEJS_SDK_VERSION"
prepare_language_nodejs() {
  local dir
  dir=$(cd "$1" && GOFLAGS=-mod=mod go mod download -json "$nodejs_host" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || die "could not download $nodejs_host"
  cp "$dir"/nodejs/cmd/pulumi-language-nodejs/{main,proxy,proxy_unix,proxy_windows}.go "$1/" && chmod u+w "$1"/*.go
  # Delete the stub: `func (host *nodeLanguageHost) RunPlugin(` through its closing brace.
  perl -0pi -e 's/\nfunc \(host \*nodeLanguageHost\) RunPlugin\(.*?\n}\n/\n/s' "$1/main.go"
  grep -q 'errors.New("not supported")' "$1/main.go" && die "could not remove the RunPlugin stub from $nodejs_host"
  # language-nodejs/run_options.go wraps these two: Run with the runtime options the CLI now
  # sends with each request, locateModule without a node start where node_modules is plain.
  perl -pi -e 's/^func \(host \*nodeLanguageHost\) Run\(/func (host *nodeLanguageHost) runWithHostOptions(/; s/^func locateModule\(/func locateModuleWithNode(/' "$1/main.go"
  grep -q '^func (host \*nodeLanguageHost) runWithHostOptions(' "$1/main.go" && grep -q '^func locateModuleWithNode(' "$1/main.go" \
    || die "could not rename Run and locateModule in $nodejs_host"
  return 0
}
PREPARE=prepare_language_nodejs wrapper_build pulumi-language-nodejs "$bin/pulumi-language-nodejs" \
  "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_LANGUAGE_NODEJS_SDK_VERSION" \
  . "require github.com/pulumi/pulumi/sdk/v3 $PULUMI_LANGUAGE_NODEJS_SDK_VERSION" \
  "$BUILDKIT_STACK_ROOT/scripts/provision/language-nodejs"

# The official distribution's launchers: Node on the entry points of the
# project's own @pulumi/pulumi (policy packs, and the nodejs dynamic provider).
cat >"$bin/pulumi-analyzer-policy" <<'SH'
#!/bin/sh
exec node "$(node -p "require.resolve('@pulumi/pulumi/cmd/run-policy-pack')")" "$@"
SH
cat >"$bin/pulumi-resource-pulumi-nodejs" <<'SH'
#!/bin/sh
exec node "$(node -p "require.resolve('@pulumi/pulumi/cmd/dynamic-provider')")" "$@"
SH
chmod +x "$bin/pulumi-analyzer-policy" "$bin/pulumi-resource-pulumi-nodejs"

# The upstream Terraform provider is copied out of the module cache so a
# `shim` package can expose its internal constructor to the bridge.
kreuzwerker="github.com/kreuzwerker/terraform-provider-docker@$PULUMI_DOCKER_UPSTREAM_VERSION"
prepare_docker_upstream() {
  local dir
  dir=$(cd "$1" && GOFLAGS=-mod=mod go mod download -json "$kreuzwerker" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || die "could not download $kreuzwerker"
  cp -r "$dir" "$1/upstream" && chmod -R u+w "$1/upstream"
  mkdir -p "$1/upstream/shim" && cp "$providers_src/docker/shim.go.txt" "$1/upstream/shim/shim.go"
  # Two waits that guarantee nothing (a fixed 2 s per network read, a 1 s
  # health poll): see the script. They cost every cold up and drift check.
  bash "$providers_src/docker/patch-upstream.sh" "$1/upstream" || die "patching $kreuzwerker failed"
}
PREPARE=prepare_docker_upstream wrapper_build pulumi-resource-docker "$pulumi_dir/providers/pulumi-resource-docker" \
  "-X main.version=$PULUMI_DOCKER_VERSION" . "require (
	github.com/pulumi/pulumi-terraform-bridge/v3 $PULUMI_DOCKER_BRIDGE_VERSION
	github.com/terraform-providers/terraform-provider-docker v0.0.0
)

// upstream patched by providers/docker/patch-upstream.sh $(sha256sum "$providers_src/docker/patch-upstream.sh" | cut -c1-12)
replace (
	github.com/hashicorp/terraform-plugin-sdk/v2 => $PULUMI_DOCKER_TF_SDK_FORK
	github.com/terraform-providers/terraform-provider-docker => ./upstream
)" "$providers_src/docker"

wrapper_build pulumi-resource-command "$pulumi_dir/providers/pulumi-resource-command" \
  "-X main.version=$PULUMI_COMMAND_VERSION" . \
  "require github.com/pulumi/pulumi/sdk/v3 v$PULUMI_VERSION" "$providers_src/command"

installed() { "$bin/pulumi" plugin ls --json 2>/dev/null | node -e '
  const [name, version, stampFile] = process.argv.slice(1);
  const plugins = JSON.parse(require("fs").readFileSync(0, "utf8") || "[]");
  process.exit(plugins.some(p => p.name === name && p.kind === "resource" && p.version === version) ? 0 : 1);' "$1" "$2"; }
for provider in docker:$PULUMI_DOCKER_VERSION command:$PULUMI_COMMAND_VERSION; do
  name=${provider%%:*} version=${provider#*:}
  binary="$pulumi_dir/providers/pulumi-resource-$name"
  if installed "$name" "$version" && stamp_ok "$PULUMI_HOME/installed-$name" "$(cat "$binary.stamp")"; then
    log "plugin $name $version is installed"
    continue
  fi
  log "installing plugin $name $version"
  "$bin/pulumi" plugin rm resource "$name" "$version" --yes >/dev/null 2>&1 || true
  "$bin/pulumi" plugin install resource "$name" "$version" --file "$binary" >/dev/null 2>&1 \
    || die "pulumi plugin install resource $name $version failed"
  stamp_write "$PULUMI_HOME/installed-$name" "$(cat "$binary.stamp")"
done

reported=$("$bin/pulumi" version)
[[ $reported == "v$PULUMI_VERSION" ]] || die "built pulumi reports $reported, expected v$PULUMI_VERSION"
log "pulumi $reported with docker $PULUMI_DOCKER_VERSION and command $PULUMI_COMMAND_VERSION"
