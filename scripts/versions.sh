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
# scripts/provision/providers (see the README). The docker one bridges the same
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

# Peers `npm run bench -- --only peers` compares us with (scripts/provision/peers.sh).
# The Terraform provider is built at PULUMI_DOCKER_UPSTREAM_VERSION, the same
# revision our docker provider bridges.
BUILDX_VERSION="v0.38.2"
