# Every version the toolchain is built at, in one place.
# The Pulumi CLI and providers are pinned by package.json (the npm SDK and the
# engine must agree); this file reads them from there and pins everything else.
# shellcheck shell=bash

_pkg_version() { node -p "require('$BUILDKIT_STACK_ROOT/package.json').dependencies['$1']"; }

PULUMI_VERSION="$(_pkg_version @pulumi/pulumi)"
PULUMI_DOCKER_VERSION="$(_pkg_version @pulumi/docker)"
PULUMI_COMMAND_VERSION="$(_pkg_version @pulumi/command)"

# The Node.js language host is published as a Go module of its own only for
# releases the module proxy here does not serve; v3.68.0 is the newest release
# whose SDK module still contains it. The CLI falls back to its older RPCs.
PULUMI_LANGUAGE_NODEJS_SDK_VERSION="v3.68.0"

# The module proxy here serves neither pulumi-docker's nor pulumi-command's
# provider module, so both providers are built from our own sources under
# scripts/provision/providers (see docs/development.md). The docker one bridges the same
# upstream Terraform provider pulumi-docker 5.0.0 bridges, at the newest
# revision the proxy serves, with Pulumi's fork of terraform-plugin-sdk.
PULUMI_DOCKER_BRIDGE_VERSION="v3.120.0"
PULUMI_DOCKER_TF_SDK_FORK="github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20260318212141-5525259d096b"
PULUMI_DOCKER_UPSTREAM_VERSION="v0.0.0-20260916201441-96d331c98ff4"

# BuildKit: the default image, and the release before it for upgrade tests.
BUILDKIT_VERSION="v0.32.2"
BUILDKIT_PREVIOUS_VERSION="v0.32.1"
ROOTLESSKIT_MODULE="github.com/rootless-containers/rootlesskit/v2"
ROOTLESSKIT_VERSION="v2.3.6"

# Debian release the image root filesystems are bootstrapped from.
IMAGE_DEBIAN_SUITE="bookworm"

# Local registry mirror (Debian's docker-registry).
REGISTRY_PORT="${BUILDKIT_STACK_REGISTRY_PORT:-5000}"

# Workflow linter, run by the unit suite on .github/workflows.
ACTIONLINT_VERSION="v1.7.12"

# Current Docker engines the suite also runs on (issue 10), built from Go
# modules next to Debian's 20.10. Docker 28 is the last release published as
# github.com/docker/docker; Docker 29 is github.com/moby/moby/v2, whose
# releases/versions.yaml names the release the module is stamped as.
DOCKER28_MODULE="github.com/docker/docker"
DOCKER28_MODULE_VERSION="v28.5.2+incompatible"
DOCKER28_VERSION="28.5.2"
DOCKER29_MODULE="github.com/moby/moby/v2"
DOCKER29_MODULE_VERSION="v2.0.0-beta.24"
# Docker 29 needs runc >= 1.2 (time namespace) and a containerd v2 shim.
CONTAINERD_VERSION="v2.4.2"
RUNC_VERSION="v1.5.1"

# Where the current engines run beside Debian's 20.10 (which keeps
# /var/run/docker.sock). Each has its own bridge; its gateway is the address
# containers reach the registry mirror at (host.docker.internal), so the
# registry answers on these too (BUILDKIT_STACK_CONTAINER_GATEWAYS, read by
# the registry step next to the default bridge's gateway).
ENGINES_RUN_DIR="/run/buildkit-stack"
DOCKER28_BRIDGE="bks-docker28"
DOCKER28_BRIDGE_CIDR="10.231.0.1/24"
DOCKER28_ADDRESS_POOL="10.231.16.0/20"
DOCKER29_BRIDGE="bks-docker29"
DOCKER29_BRIDGE_CIDR="10.232.0.1/24"
DOCKER29_ADDRESS_POOL="10.232.16.0/20"
BUILDKIT_STACK_CONTAINER_GATEWAYS="${BUILDKIT_STACK_CONTAINER_GATEWAYS:-} ${DOCKER28_BRIDGE_CIDR%/*} ${DOCKER29_BRIDGE_CIDR%/*}"
# docker buildx, built by scripts/provision/buildx.sh: the integration suite's
# multi-node builder (tests/integration/buildx-fleet.test.ts) and a peer
# `npm run bench -- --only peers` compares us with. The bench's Terraform
# provider is built at PULUMI_DOCKER_UPSTREAM_VERSION, the same revision our
# docker provider bridges (scripts/provision/peers.sh).
BUILDX_VERSION="v0.38.2"

# The local Kubernetes cluster (scripts/provision/cluster.sh, docs/local-cluster.md):
# every piece built from the Go module proxy. Kubernetes is built from
# k8s.io/kubernetes through a wrapper module that maps its staging modules to
# their published v0.x releases; etcd's server through a wrapper too.
KUBERNETES_VERSION="v1.37.2"
ETCD_VERSION="v3.7.3"
CNI_PLUGINS_VERSION="v1.10.0"
# crictl: the node's CRI client, which `cluster.sh down` stops pods with.
CRI_TOOLS_VERSION="v1.37.0"
# Cluster DNS: the CoreDNS release kubeadm $KUBERNETES_VERSION deploys.
COREDNS_VERSION="v1.14.6"
# The default StorageClass's dynamic provisioner (the newest release the proxy serves).
LOCAL_PATH_PROVISIONER_VERSION="v0.0.30"
# Where the cluster lives (docs/local-cluster.md). Every address is on the pod
# bridge or loopback, none on the machine's own interfaces; no port is one of
# Kubernetes' defaults, so a cluster of the user's own can run beside it.
CLUSTER_BRIDGE="bkc-pods"
CLUSTER_POD_CIDR="10.233.0.0/24"
CLUSTER_GATEWAY="10.233.0.1" # the node's address: API server, kubelet, and the host as pods reach it
CLUSTER_SERVICE_CIDR="10.234.0.0/24"
CLUSTER_DNS_IP="10.234.0.10"
CLUSTER_APISERVER_PORT="16443"
CLUSTER_ETCD_PORTS="12379 12380" # client, peer (loopback)
CLUSTER_KUBELET_PORTS="20250 20248" # API (on the gateway), healthz (loopback)
CLUSTER_CONTROLLER_MANAGER_PORT="20257"
CLUSTER_SCHEDULER_PORT="20259"
CLUSTER_KUBE_PROXY_PORTS="20249 20256" # metrics, healthz (loopback)
CLUSTER_NODE_NAME="bkc-node"
CLUSTER_CONTEXT="buildkit-stack-local"
# The Kubernetes provider: package.json pins the npm SDK; the module proxy
# serves only this revision of the provider module, the commit just before the
# SDK's 4.25.0 release, which scripts/provision/pulumi-kubernetes.sh builds
# against sdk/v4 v4.25.0 and installs as kubernetes 4.25.0.
PULUMI_KUBERNETES_VERSION="$(_pkg_version @pulumi/kubernetes)"
PULUMI_KUBERNETES_PROVIDER_MODULE_VERSION="v4.0.0-20260115033456-f47bc2d6f199"
