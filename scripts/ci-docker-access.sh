#!/usr/bin/env bash
# CI (the workflows' "Reach the Docker host" step): set up access to a stack's
# Docker host the two ways we support, and refuse every other, before any
# later step touches the host. The Docker API is root on the host, so:
#   ssh://[user@]host[:port]  with DOCKER_SSH_KEY (the deploy key, private)
#                             and DOCKER_SSH_KNOWN_HOSTS (the host's key,
#                             pinned: `ssh-keyscan -p PORT HOST` run once from a
#                             trusted machine; never trusted on first use)
#   tcp://host:port           with Docker's TLS (the engine runs --tlsverify):
#                             DOCKER_TLS_CA, DOCKER_TLS_CERT, DOCKER_TLS_KEY
#   unix:///path              a self-hosted runner on the host itself
# A plaintext tcp:// API (anyone on the path is root on the host), an ssh://
# host without a pinned key, or anything else is refused, naming the secret.
#
# The material goes into a 0700 directory under RUNNER_TEMP (emptied after
# every job), each file 0600; later steps get, through GITHUB_ENV/GITHUB_PATH:
#   ssh: an `ssh` first on PATH that uses only this key and known_hosts (the
#        docker CLI, the docker provider and buildctl all run plain `ssh`)
#   tcp: DOCKER_CERT_PATH and DOCKER_TLS_VERIFY=1 (the docker CLI, the docker
#        provider, the smoke test's docker calls)
# Then it asks the engine for its version: a wrong secret fails here, named,
# not halfway through a deploy. Secrets come in as environment variables.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
STEP=docker-access

: "${RUNNER_TEMP:?RUNNER_TEMP is not set: this runs as a GitHub Actions step}"
: "${GITHUB_ENV:?GITHUB_ENV is not set: this runs as a GitHub Actions step}"
: "${GITHUB_PATH:?GITHUB_PATH is not set: this runs as a GitHub Actions step}"
host=${DOCKER_HOST:-}
[[ -n $host ]] || die "the DOCKER_HOST secret is empty: set it in this job's environment to ssh://user@host or tcp://host:2376 (with Docker TLS)"

dir="$RUNNER_TEMP/docker-access"
rm -rf "$dir"
mkdir -m 0700 "$dir"
umask 077

# write_secret FILE VALUE: VALUE into FILE (0600), with the trailing newline
# OpenSSH and PEM readers expect; secrets pasted on Windows lose their \r.
write_secret() { printf '%s\n' "${2//$'\r'/}" >"$1"; chmod 0600 "$1"; }

case $host in
  ssh://*)
    [[ -n ${DOCKER_SSH_KEY:-} ]] || die "DOCKER_HOST is $host but the DOCKER_SSH_KEY secret (the deploy key's private key) is empty"
    [[ -n ${DOCKER_SSH_KNOWN_HOSTS:-} ]] \
      || die "DOCKER_HOST is $host but the DOCKER_SSH_KNOWN_HOSTS secret is empty: pin the host's key (ssh-keyscan output, checked against the host) instead of trusting whatever answers"
    real_ssh=$(command -v ssh) || die "no ssh client on this runner"
    write_secret "$dir/id" "$DOCKER_SSH_KEY"
    write_secret "$dir/known_hosts" "$DOCKER_SSH_KNOWN_HOSTS"
    # -F: this file only, not ~/.ssh/config or /etc/ssh/ssh_config. One
    # connection is shared by the many the provider and the CLI open. Its
    # socket lives in a short private directory: a unix socket path holds at
    # most 107 bytes, and ssh adds 17 to %C's 40 while it sets one up
    # (under $RUNNER_TEMP it was refused: "too long for Unix domain socket").
    control_dir=$(mktemp -d /tmp/docker-access.XXXXXX)
    cat >"$dir/config" <<CONF
Host *
  IdentityFile $dir/id
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  ControlMaster auto
  ControlPath $control_dir/%C
  ControlPersist 120
CONF
    mkdir -m 0700 "$dir/bin"
    printf '#!/bin/sh\nexec %s -F %s "$@"\n' "$real_ssh" "$dir/config" >"$dir/bin/ssh"
    chmod 0700 "$dir/bin/ssh"
    export PATH="$dir/bin:$PATH"
    echo "$dir/bin" >>"$GITHUB_PATH"
    log "ssh to ${host#ssh://} with the deploy key and the pinned host key only"
    ;;
  tcp://*)
    missing=()
    for secret in DOCKER_TLS_CA DOCKER_TLS_CERT DOCKER_TLS_KEY; do [[ -n ${!secret:-} ]] || missing+=("$secret"); done
    ((${#missing[@]} == 0)) \
      || die "DOCKER_HOST is $host, a TCP API, but the ${missing[*]} secret(s) are empty: a plaintext Docker API is refused (whoever reaches it is root on the host); run the engine with --tlsverify and set DOCKER_TLS_CA, DOCKER_TLS_CERT and DOCKER_TLS_KEY, or use ssh://"
    mkdir -m 0700 "$dir/tls"
    write_secret "$dir/tls/ca.pem" "$DOCKER_TLS_CA"
    write_secret "$dir/tls/cert.pem" "$DOCKER_TLS_CERT"
    write_secret "$dir/tls/key.pem" "$DOCKER_TLS_KEY"
    export DOCKER_CERT_PATH="$dir/tls" DOCKER_TLS_VERIFY=1
    printf 'DOCKER_CERT_PATH=%s\nDOCKER_TLS_VERIFY=1\n' "$DOCKER_CERT_PATH" >>"$GITHUB_ENV"
    log "tcp to ${host#tcp://} with Docker TLS (certificates verified both ways)"
    ;;
  unix://*)
    log "the runner's own socket ${host#unix://} (a self-hosted runner on the host)"
    ;;
  *)
    die "DOCKER_HOST is $host: expected ssh://user@host (with DOCKER_SSH_KEY and DOCKER_SSH_KNOWN_HOSTS) or tcp://host:2376 (with DOCKER_TLS_CA, DOCKER_TLS_CERT and DOCKER_TLS_KEY)"
    ;;
esac

version=$(docker version --format '{{.Server.Version}}' 2>"$dir/docker-version.err") \
  || die "the Docker engine at $host does not answer with these secrets: $(tr '\n' ' ' <"$dir/docker-version.err")"
log "the engine at $host answers: Docker $version"
