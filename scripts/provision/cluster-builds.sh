#!/usr/bin/env bash
# Step: the binaries and images of the local Kubernetes cluster, all built
# from the Go module proxy (our machines reach only package registries):
#   kubernetes  kube-apiserver, kube-controller-manager, kube-scheduler,
#               kubelet, kube-proxy, kubectl from k8s.io/kubernetes, through a
#               wrapper module (its staging modules are published as v0.x)
#   etcd        etcd from go.etcd.io/etcd/server/v3, through a wrapper module
#   cni         the reference CNI plugins (bridge, host-local, loopback, portmap)
#   ctr, crictl containerd's client (image import) and the CRI client (node
#               debugging; `cluster.sh down` stops pods through it)
#   coredns     CoreDNS, the cluster DNS, packed as an image
#   local-path  rancher's local-path-provisioner, the default StorageClass's
#               dynamic provisioner, packed as an image
#   pause       the pod sandbox image: Kubernetes' own pause.c (from the same
#               k8s.io/kubernetes module) compiled static with Debian's gcc
# containerd, its shim and runc are the engines' (engine-builds.sh).
# Images are OCI archives ($BUILDKIT_STACK_CACHE/cluster/images/NAME.tar,
# named buildkit-stack.local/NAME:VERSION) that cluster.sh imports into the
# cluster's containerd: nothing is pulled from a registry but Docker Hub names
# through the local mirror.
# Each artefact lives in $BUILDKIT_STACK_CACHE/cluster/builds/<artefact>/ under
# a stamp keyed by its version, build flags and Go version; a warm run only
# checks stamps. Cold build times go to cluster/build-times.tsv.
# `cluster-builds.sh PIECE…` builds only those pieces (default: all).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=cluster-builds

cluster_dir="$BUILDKIT_STACK_CACHE/cluster"
builds="$cluster_dir/builds"
mkdir -p "$builds"

module_json() { go_module_field "$@"; }

# build ARTEFACT KEY FUNCTION: cached_build (lib.sh) of a cluster piece.
build() { cached_build "$builds" "$cluster_dir/build-times.tsv" "$@"; }

# k8s.io/kubernetes requires its 31 staging modules (k8s.io/api, client-go, …)
# at v0.0.0 and replaces them with ./staging/src/…, which a dependency's
# replace directives cannot do for us. Each is published as v0.MINOR.PATCH of
# the release, so the wrapper replaces them with that; every other dependency
# resolves to exactly what Kubernetes' own go.mod pins.
kubernetes_binaries="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
kubernetes_build() {
  local out=$1 wrapper="$builds/kubernetes-wrapper" gomod staging cmd
  staging="v0.${KUBERNETES_VERSION#v1.}"
  gomod=$(module_json k8s.io/kubernetes "$KUBERNETES_VERSION" GoMod)
  rm -rf "$wrapper" && mkdir -p "$wrapper"
  {
    printf 'module buildkit-stack.local/kubernetes\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBERNETES_VERSION"
    awk -v v="$staging" '$2 == "=>" && $3 ~ /^\.\/staging\/src\// {printf "\t%s => %s %s\n", $1, $1, v}' "$gomod"
    printf ')\n'
  } >"$wrapper/go.mod"
  local tools=()
  for cmd in $kubernetes_binaries; do tools+=("k8s.io/kubernetes/cmd/$cmd"); done
  (cd "$wrapper" && go get -tool "${tools[@]}")
  # What hack/lib/version.sh stamps (kubectl version, the node's kubeletVersion,
  # the API server's /version), with the release's build flags and tags.
  local major=${KUBERNETES_VERSION#v} minor ldflags="-s -w" var value
  minor=${major#*.} && minor=${minor%%.*} && major=${major%%.*}
  for var in gitVersion=$KUBERNETES_VERSION gitMajor=$major gitMinor=$minor gitTreeState=clean buildDate=1970-01-01T00:00:00Z; do
    value=${var#*=} var=${var%%=*}
    ldflags+=" -X k8s.io/client-go/pkg/version.$var=$value -X k8s.io/component-base/version.$var=$value"
  done
  (cd "$wrapper" && CGO_ENABLED=0 go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ldflags" -o "$out/" "${tools[@]}")
  "$out/kubectl" version --client | grep -q "Client Version: $KUBERNETES_VERSION" || { echo "kubectl is not stamped $KUBERNETES_VERSION"; return 1; }
}

# etcd's server module replaces its sibling modules with ../ paths, which
# `go install …@version` refuses; required from a wrapper, it resolves them to
# the versions its go.mod names (the same release).
etcd_build() {
  local out=$1 wrapper="$builds/etcd-wrapper"
  rm -rf "$wrapper" && mkdir -p "$wrapper"
  printf 'module buildkit-stack.local/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$wrapper/go.mod"
  (cd "$wrapper" && go get go.etcd.io/etcd/server/v3@"$ETCD_VERSION" \
    && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)
  "$out/etcd" --version | grep -q "etcd Version: ${ETCD_VERSION#v}" || { echo "etcd does not report ${ETCD_VERSION#v}"; return 1; }
}

cni_plugins="main/bridge main/loopback ipam/host-local meta/portmap"
cni_build() {
  local pkgs=() p
  for p in $cni_plugins; do pkgs+=("github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION"); done
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" "${pkgs[@]}"
}

# ctr at the version of the engines' containerd (its client API must match).
clients_build() {
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -tags "urfave_cli_no_docs netgo osusergo static_build no_btrfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION#v}" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  GOBIN="$1" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
}

# oci_archive OUTPUT REFERENCE ROOTDIR CONFIG_JSON: an OCI image archive with
# ROOTDIR as its single (uncompressed, reproducible) layer, named REFERENCE
# for `ctr images import`; CONFIG_JSON is the image config's "config" object.
# The manifest digest goes to OUTPUT.digest (what the import is checked by).
oci_archive() {
  local output=$1 reference=$2 root=$3 config=$4 work layer layer_size cfg cfg_digest manifest manifest_digest
  work=$(mktemp -d)
  mkdir -p "$work/blobs/sha256"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/layer.tar" .
  layer=$(sha256sum "$work/layer.tar" | cut -d' ' -f1) layer_size=$(stat -c %s "$work/layer.tar")
  mv "$work/layer.tar" "$work/blobs/sha256/$layer"
  cfg=$(printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$(go env GOARCH)" "$config" "$layer")
  cfg_digest=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
  printf '%s' "$cfg" >"$work/blobs/sha256/$cfg_digest"
  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cfg_digest" "${#cfg}" "$layer" "$layer_size")
  manifest_digest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
  printf '%s' "$manifest" >"$work/blobs/sha256/$manifest_digest"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "${#manifest}" "$reference" "${reference##*:}" >"$work/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
  tar -C "$work" -cf "$output" oci-layout index.json blobs
  printf 'sha256:%s' "$manifest_digest" >"$output.digest"
  rm -rf "$work"
}

# go_image OUT NAME VERSION MODULE_PACKAGE@VERSION LDFLAGS CONFIG_JSON: one
# static Go binary at /NAME in an image of its own.
go_image() {
  local out=$1 name=$2 version=$3 package=$4 ldflags=$5 config=$6
  mkdir -p "$out/root/etc"
  GOBIN="$out/root" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w $ldflags" "$package"
  [[ -x $out/root/$name ]] || mv "$out/root/$(basename "${package%@*}")" "$out/root/$name"
  echo 'root:x:0:0:root:/:/sbin/nologin' >"$out/root/etc/passwd"
  oci_archive "$out/image.tar" "buildkit-stack.local/$name:$version" "$out/root" "$config"
}
coredns_build() {
  go_image "$1" coredns "$COREDNS_VERSION" "github.com/coredns/coredns@$COREDNS_VERSION" \
    "-X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" '{"Entrypoint":["/coredns"]}'
}
local_path_build() {
  go_image "$1" local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" \
    "github.com/rancher/local-path-provisioner@$LOCAL_PATH_PROVISIONER_VERSION" \
    "-X main.VERSION=$LOCAL_PATH_PROVISIONER_VERSION" '{"Entrypoint":["/local-path-provisioner"]}'
}

# The pause image's version is the one Kubernetes' own build/pause/Makefile tags.
kubernetes_dir() { module_json k8s.io/kubernetes "$KUBERNETES_VERSION" Dir; }
pause_version() { awk '$1 == "TAG" && $2 == "?=" {print $3}' "$(kubernetes_dir)/build/pause/Makefile"; }
pause_build() {
  local out=$1 src version
  src="$(kubernetes_dir)/build/pause/linux/pause.c"
  version=$(pause_version)
  [[ -n $version ]] || { echo "no TAG in build/pause/Makefile of k8s.io/kubernetes@$KUBERNETES_VERSION"; return 1; }
  install_debian_packages gcc libc6-dev
  mkdir -p "$out/root"
  gcc -Os -Wall -Werror -static -DVERSION="v$version-$KUBERNETES_VERSION" -o "$out/root/pause" "$src"
  strip "$out/root/pause"
  oci_archive "$out/image.tar" "buildkit-stack.local/pause:$version" "$out/root" '{"Entrypoint":["/pause"],"User":"65535:65535"}'
  echo "$version" >"$out/version"
}

pieces=("$@")
((${#pieces[@]})) || pieces=(kubernetes etcd cni clients pause coredns local-path)
for piece in "${pieces[@]}"; do
  case $piece in
    kubernetes) build "kubernetes-$KUBERNETES_VERSION" "k8s.io/kubernetes $KUBERNETES_VERSION $kubernetes_binaries" kubernetes_build ;;
    etcd) build "etcd-$ETCD_VERSION" "go.etcd.io/etcd/server/v3 $ETCD_VERSION" etcd_build ;;
    cni) build "cni-plugins-$CNI_PLUGINS_VERSION" "containernetworking/plugins $CNI_PLUGINS_VERSION $cni_plugins" cni_build ;;
    clients) build "clients-$CONTAINERD_VERSION-$CRI_TOOLS_VERSION" "ctr $CONTAINERD_VERSION crictl $CRI_TOOLS_VERSION" clients_build ;;
    pause) build "pause-$KUBERNETES_VERSION" "pause.c of k8s.io/kubernetes $KUBERNETES_VERSION, static" pause_build ;;
    coredns) build "coredns-$COREDNS_VERSION" "coredns $COREDNS_VERSION image" coredns_build ;;
    local-path) build "local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION" "local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION image" local_path_build ;;
    *) die "unknown piece '$piece'; expected kubernetes, etcd, cni, clients, pause, coredns or local-path" ;;
  esac
done
