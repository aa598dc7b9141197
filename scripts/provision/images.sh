#!/usr/bin/env bash
# Step: the BuildKit images and a busybox base, built from the Go module proxy
# and Debian packages and pushed to the local registry mirror under their
# Docker Hub names. BUILDKIT_STACK_IMAGES says which:
#   dev  what a deployed daemon and its users need: moby/buildkit at the current
#        release (and latest), docker/dockerfile:1 (the frontend a Dockerfile's
#        `# syntax=docker/dockerfile:1` line asks for) and busybox
#   all  (default) those, and for the tests: the previous release and rootless
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=images
require_local_engine

images_dir="$BUILDKIT_STACK_CACHE/images"
recipes="$BUILDKIT_STACK_ROOT/scripts/provision/images"
registry="127.0.0.1:${REGISTRY_PORT}"
mkdir -p "$images_dir"
export DOCKER_BUILDKIT=0 # the engine's classic builder: no BuildKit exists yet to build BuildKit
# Every image built here carries this label, so a local tag under a Docker Hub
# name (moby/buildkit:v0.32.2, pulled from the mirror) can be told from one a
# user made or pulled elsewhere: only ours are ever untagged.
PROVISIONED_LABEL="org.buildkit-stack.provisioned-by=scripts/provision/images.sh"

in_registry() { curl -fs -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://${registry}/v2/$1/manifests/$2"; }

# go_binaries OUT_DIR MODULE@VERSION LDFLAGS PACKAGE...: static binaries from the
# module proxy, built inside a throwaway wrapper module because `go install
# pkg@version` refuses modules whose go.mod has replace or exclude directives.
go_binaries() {
  local out=$1 module_version=$2 ldflags=$3; shift 3
  stamp_ok "$out/.stamp" "$module_version $ldflags $*" && return 0
  log "building $* at ${module_version#*@}"
  rm -rf "$out" && mkdir -p "$out/.mod"
  printf 'module buildkitstack.local/build\n\ngo 1.26\n\nrequire %s %s\n' "${module_version%@*}" "${module_version#*@}" >"$out/.mod/go.mod"
  local pkg
  for pkg in "$@"; do
    (cd "$out/.mod" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/" "$pkg") \
      >>"$out/.mod/build.log" 2>&1 || die "go build $pkg@${module_version#*@} failed (see $out/.mod/build.log)"
  done
  rm -rf "$out/.mod"
  stamp_write "$out/.stamp" "$module_version $ldflags $*"
}

buildkit_binaries() {
  local version=$1
  go_binaries "$images_dir/bin/buildkit-$version" "github.com/moby/buildkit@$version" \
    "-s -w -X github.com/moby/buildkit/version.Version=$version -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit" \
    github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl
}

# The Dockerfile frontend as BuildKit's own Go module builds it at its release
# (docker/dockerfile is released from this package): one static binary.
frontend_binary() {
  local version=$1
  go_binaries "$images_dir/bin/dockerfile-frontend-$version" "github.com/moby/buildkit@$version" "-s -w" \
    github.com/moby/buildkit/frontend/dockerfile/cmd/dockerfile-frontend
}

rootfs_packages="runc,uidmap,libcap2-bin,ca-certificates"
rootfs_tar="$images_dir/rootfs-${IMAGE_DEBIAN_SUITE}.tar"
rootfs() {
  if ! stamp_ok "$rootfs_tar.stamp" "$IMAGE_DEBIAN_SUITE $rootfs_packages"; then
    command -v debootstrap >/dev/null || install_debian_packages debootstrap
    local mirror target="$images_dir/rootfs.tmp"
    mirror=$(grep -hoE 'https?://[^ ]*debian/?$' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    log "bootstrapping a ${IMAGE_DEBIAN_SUITE} minbase root with $rootfs_packages from $mirror"
    rm -rf "$target"
    debootstrap --variant=minbase --include="$rootfs_packages" "$IMAGE_DEBIAN_SUITE" "$target" "$mirror" \
      >"$images_dir/debootstrap.log" 2>&1 || die "debootstrap failed (see $images_dir/debootstrap.log)"
    rm -rf "$target"/var/cache/apt/archives/*.deb "$target"/var/lib/apt/lists/*
    tar -C "$target" -cf "$rootfs_tar" . && rm -rf "$target"
    stamp_write "$rootfs_tar.stamp" "$IMAGE_DEBIAN_SUITE $rootfs_packages"
  fi
  if ! stamp_ok "$images_dir/rootfs-image.stamp" "$(cat "$rootfs_tar.stamp") $(docker image inspect -f '{{.Id}}' buildkit-stack/rootfs 2>/dev/null)"; then
    log "importing the root filesystem as buildkit-stack/rootfs"
    docker import "$rootfs_tar" buildkit-stack/rootfs >/dev/null
    stamp_write "$images_dir/rootfs-image.stamp" "$(cat "$rootfs_tar.stamp") $(docker image inspect -f '{{.Id}}' buildkit-stack/rootfs)"
  fi
}

# image NAME TAG RECIPE VERSION BINARY_DIR... [-- EXTRA_TAG...]: build from the
# recipe with the binaries as context, push under every tag; skipped when the
# registry already has it built from the same inputs.
image() {
  local name=$1 tag=$2 recipe=$3 version=$4; shift 4
  local dirs=() extra=()
  while (($#)) && [[ $1 != -- ]]; do dirs+=("$1"); shift; done
  (($#)) && shift && extra=("$@")
  local key
  key="$(cat "$recipes/$recipe" "$images_dir/rootfs-image.stamp" "${dirs[@]/%//.stamp}" | sha256sum | cut -c1-16)"
  local stamp="$images_dir/pushed/$name/$tag" all_present=1 t
  for t in "$tag" "${extra[@]}"; do in_registry "$name" "$t" || all_present=0; done
  if ((all_present)) && stamp_ok "$stamp" "$key"; then
    log "$name:$tag is in the registry, up to date"
    return 0
  fi
  log "building $name:$tag"
  local context
  context=$(mktemp -d)
  cp "$recipes/$recipe" "$context/Dockerfile"
  for d in "${dirs[@]}"; do cp "$d"/* "$context/"; done
  docker build -q --label "$PROVISIONED_LABEL" --build-arg "BUILDKIT_VERSION=$version" -t "$registry/$name:$tag" "$context" >"$images_dir/docker-build.log" 2>&1 \
    || die "docker build of $name:$tag failed (see $images_dir/docker-build.log)"
  rm -rf "$context"
  for t in "$tag" "${extra[@]}"; do
    docker tag "$registry/$name:$tag" "$registry/$name:$t"
    docker push -q "$registry/$name:$t" >/dev/null || die "docker push $registry/$name:$t failed"
    untag_if_ours "$name:$t"
  done
  stamp_write "$stamp" "$key"
}

# untag_if_ours NAME:TAG: a local tag under the Docker Hub name, pulled from the
# mirror before this rebuild, would shadow the rebuilt image; drop it, but only
# when it carries our label. Anything else under that name is the user's: left
# exactly as it is, and said so.
untag_if_ours() {
  local reference=$1 label
  label=$(docker image inspect -f "{{index .Config.Labels \"${PROVISIONED_LABEL%%=*}\"}}" "$reference" 2>/dev/null) || return 0
  if [[ $label == "${PROVISIONED_LABEL#*=}" ]]; then
    docker rmi "$reference" >/dev/null 2>&1 || log "$reference is an old copy of ours but in use; it shadows the rebuilt one until removed"
  else
    log "$reference on this engine was not made by provisioning (no ${PROVISIONED_LABEL%%=*} label): left as is." \
      "It is what \`docker run $reference\` starts instead of the mirror's; \`docker rmi $reference\` to use ours."
  fi
}

busybox_image() {
  local key
  key="$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || true)"
  if in_registry library/busybox latest && stamp_ok "$images_dir/pushed/library/busybox/latest" "$key"; then
    log "library/busybox:latest is in the registry, up to date"
    return 0
  fi
  if [[ -z $key ]]; then
    install_debian_packages busybox-static
    key="$(dpkg-query -W -f '${Version}' busybox-static)"
  fi
  log "building library/busybox:latest from Debian's busybox-static $key"
  local root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  tar -C "$root" -c . | docker import -c 'CMD ["sh"]' -c "LABEL $PROVISIONED_LABEL" - "$registry/library/busybox:latest" >/dev/null
  rm -rf "$root"
  docker push -q "$registry/library/busybox:latest" >/dev/null || die "docker push library/busybox failed"
  stamp_write "$images_dir/pushed/library/busybox/latest" "$key"
}

# Sourced (by tests) for its functions only.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

profile=${BUILDKIT_STACK_IMAGES:-all}
[[ $profile == dev || $profile == all ]] || die "BUILDKIT_STACK_IMAGES is '$profile'; expected dev or all"

buildkit_binaries "$BUILDKIT_VERSION" &
frontend_binary "$BUILDKIT_VERSION" &
if [[ $profile == all ]]; then
  buildkit_binaries "$BUILDKIT_PREVIOUS_VERSION" &
  go_binaries "$images_dir/bin/rootlesskit-$ROOTLESSKIT_VERSION" "$ROOTLESSKIT_MODULE@$ROOTLESSKIT_VERSION" "-s -w" \
    "$ROOTLESSKIT_MODULE/cmd/rootlesskit" &
fi
rootfs &
for job in $(jobs -p); do wait "$job" || die "a build step failed (messages above)"; done
busybox_image

current="$images_dir/bin/buildkit-$BUILDKIT_VERSION"
image moby/buildkit "$BUILDKIT_VERSION" Dockerfile.buildkit "$BUILDKIT_VERSION" "$current" -- latest
# docker/dockerfile:1 is the stable channel's newest 1.x; ours is the frontend of the BuildKit we run.
image docker/dockerfile 1 Dockerfile.frontend "$BUILDKIT_VERSION" "$images_dir/bin/dockerfile-frontend-$BUILDKIT_VERSION"
if [[ $profile == all ]]; then
  image moby/buildkit "$BUILDKIT_PREVIOUS_VERSION" Dockerfile.buildkit "$BUILDKIT_PREVIOUS_VERSION" "$images_dir/bin/buildkit-$BUILDKIT_PREVIOUS_VERSION"
  image moby/buildkit "$BUILDKIT_VERSION-rootless" Dockerfile.rootless "$BUILDKIT_VERSION" "$current" \
    "$images_dir/bin/rootlesskit-$ROOTLESSKIT_VERSION" -- rootless
fi

# The same buildctl on the host, for clients and tests (BUILDKIT_HOST=docker-container://NAME).
mkdir -p "$BUILDKIT_STACK_CACHE/bin"
ln -sfn "$current/buildctl" "$BUILDKIT_STACK_CACHE/bin/buildctl"
