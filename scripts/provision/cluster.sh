#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, for the Kubernetes
# target's integration tests (and anyone's experiments): etcd, the API server,
# controller manager and scheduler, containerd, the kubelet and kube-proxy
# (nftables) as host processes; CoreDNS and the local-path provisioner (the
# default StorageClass) as Deployments. Everything is built from the Go module
# proxy (cluster-builds.sh; containerd and runc are the engines', from
# engine-builds.sh) and every image it runs is built here or pulled through
# the local Docker Hub mirror. See docs/local-cluster.md.
#
#   cluster.sh [up]   build what is missing, start what is not running, wait
#                     for the node, the default StorageClass and DNS (idempotent)
#   cluster.sh down   stop everything `up` started and remove its network bits;
#                     the data (etcd, volumes, images) stays for the next `up`
#   cluster.sh env    print `export KUBECONFIG=…` (the admin kubeconfig)
#
# Cached under $BUILDKIT_STACK_CACHE/cluster: builds/ (keyed by version, with
# stamps), pki/, etc/ (rendered configuration), data/, logs/ (one per daemon);
# pid files under $ENGINES_RUN_DIR/cluster. A daemon that runs with the same
# command line and configuration is left alone; one whose inputs changed is
# restarted. Addresses and ports: scripts/versions.sh (CLUSTER_*).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
STEP=cluster
unset DOCKER_HOST # the registry step below manages this machine's engine

cluster_dir="$BUILDKIT_STACK_CACHE/cluster"
kubeconfig="$cluster_dir/kubeconfig"
command=${1:-up}
case $command in
  env)
    printf 'export KUBECONFIG=%q\n' "$kubeconfig"
    exit 0
    ;;
  up | down) ;;
  *) die "unknown command '$command'; expected up (the default), down or env" ;;
esac
[[ $EUID -eq 0 ]] || die "the cluster runs containerd, the kubelet and kube-proxy on this host, which needs root"
# One up or down at a time (npm test's provisioning and a user's shell may both call it).
mkdir -p "$cluster_dir"
exec 8>"$cluster_dir/cluster.lock"
if ! flock -n 8; then
  log "waiting for another cluster.sh up/down to finish (lock $cluster_dir/cluster.lock)"
  flock -w 3600 8 || die "another cluster.sh held $cluster_dir/cluster.lock for an hour"
fi

steps="$BUILDKIT_STACK_ROOT/scripts/provision"
builds="$cluster_dir/builds"
k8s="$builds/kubernetes-$KUBERNETES_VERSION"
etcd_bin="$builds/etcd-$ETCD_VERSION/etcd"
cni_bin="$builds/cni-plugins-$CNI_PLUGINS_VERSION"
clients="$builds/clients-$CONTAINERD_VERSION-$CRI_TOOLS_VERSION"
engines="$BUILDKIT_STACK_CACHE/engines/current"
etc="$cluster_dir/etc" pki="$cluster_dir/pki" data="$cluster_dir/data" logs="$cluster_dir/logs"
runtime="$cluster_dir/runtime"
run="$ENGINES_RUN_DIR/cluster"
containerd_sock="$run/containerd/containerd.sock"
server="https://$CLUSTER_GATEWAY:$CLUSTER_APISERVER_PORT"
pod_prefix=${CLUSTER_POD_CIDR#*/}
read -r etcd_client_port etcd_peer_port <<<"$CLUSTER_ETCD_PORTS"
read -r kubelet_port kubelet_healthz_port <<<"$CLUSTER_KUBELET_PORTS"
read -r proxy_metrics_port proxy_healthz_port <<<"$CLUSTER_KUBE_PROXY_PORTS"
cluster_chain=BKC-CLUSTER
cluster_domain=cluster.local
registry_reader_pid="$BUILDKIT_STACK_CACHE/registry/readonly-$CLUSTER_GATEWAY.pid"

kubectl() { "$k8s/kubectl" --kubeconfig "$kubeconfig" "$@"; }
ctr() { "$clients/ctr" --address "$containerd_sock" --namespace k8s.io "$@"; }
crictl() { "$clients/crictl" --runtime-endpoint "unix://$containerd_sock" --image-endpoint "unix://$containerd_sock" "$@"; }

# write_if_changed FILE: stdin to FILE, rewritten only when different.
write_if_changed() {
  local new
  new=$(cat)
  [[ -f $1 && $(cat "$1") == "$new" ]] && return 0
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$new" >"$1.new" && mv "$1.new" "$1"
}

# ---------------------------------------------------------------- processes

# running PID: a live process (not a zombie). alive PID BINARY: PID is running
# BINARY (a pid file can outlive its process).
running() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n $state && $state != Z ]]
}
# (A rebuilt binary shows as "PATH (deleted)": still ours, still to be stopped.)
alive() {
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) && [[ ${exe% (deleted)} == "$(readlink -f "$2")" ]]
}
gone() { ! alive "$1" "$2"; }

# stop_daemon NAME: stop the process our pid file names, TERM then (after 30 s) KILL.
stop_daemon() {
  local name=$1 pid binary
  [[ -f $run/$name.pid ]] || return 0
  read -r pid binary <"$run/$name.pid"
  if alive "$pid" "$binary"; then
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    if ! (wait_until 30 "$name to stop" gone "$pid" "$binary") 2>/dev/null; then
      log "$name did not stop within 30s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      wait_until 10 "$name (pid $pid) to exit after SIGKILL" gone "$pid" "$binary"
    fi
  fi
  rm -f "$run/$name.pid" "$run/$name.key"
}

# The PATH daemons run with besides their own directories: the system's, the same for every caller.
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# answers_within SECONDS HEALTH: HEALTH passes within SECONDS (polled): a running daemon on a busy machine may
# answer one probe late, which is no reason to restart it.
answers_within() {
  local end=$((SECONDS + $1))
  until "$2"; do
    ((SECONDS < end)) || return 1
    sleep 0.5
  done
}

# daemon NAME BOUND HEALTH "CONFIG_FILES" [ENV=VALUE…] -- BINARY ARGS…: keep
# NAME running as that command. Its key is the command line, the binary (a
# rebuilt one differs) and the contents of its configuration files: a healthy NAME with the same key is left alone,
# anything else is (re)started and given BOUND seconds to pass HEALTH.
daemon() {
  local name=$1 bound=$2 health=$3 configs=$4
  shift 4
  local env=()
  while [[ $1 != -- ]]; do env+=("$1") && shift; done
  shift
  local binary=$1 logfile="$logs/$name.log" key pid="" running_binary=""
  STEP="cluster/$name"
  [[ -x $binary ]] || die "$binary is missing: its build step did not run (bash scripts/provision/cluster-builds.sh, engine-builds.sh)"
  # shellcheck disable=SC2086 # a list of paths
  key=$({ printf '%s\n' "${env[@]}" "$@" "$(stat -Lc '%n %i %Y' "$binary")"; cat $configs; } | sha256sum | cut -c1-16)
  [[ -f $run/$name.pid ]] && read -r pid running_binary <"$run/$name.pid"
  if alive "$pid" "$running_binary" && stamp_ok "$run/$name.key" "$key" && answers_within 10 "$health"; then
    log "$name is running (pid $pid)"
    return 0
  fi
  if alive "$pid" "$running_binary"; then
    log "restarting $name: its command line or configuration changed, or it is not healthy"
    stop_daemon "$name"
  fi
  log "starting $name (log: $logfile)"
  printf '\n==== %s starting: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logfile"
  # start_daemon (lib.sh): without this script's lock (fd 8), which the daemon would otherwise hold for its life,
  # keeping every later cluster.sh up waiting.
  pid=$(start_daemon "$logfile" env "${env[@]}" "$@")
  printf '%s %s\n' "$pid" "$(readlink -f "$binary")" >"$run/$name.pid"
  stamp_write "$run/$name.key" "$key"
  # Poll until healthy, and stop polling at once if it exited.
  healthy_or_exited() { ! running "$pid" || $health; }
  wait_until "$bound" "$name to become healthy (log: $logfile)" healthy_or_exited
  alive "$pid" "$binary" || die "$name exited at start; last lines of $logfile:
$(tail -n 15 "$logfile")"
  log "$name is up (pid $pid)"
}

# ---------------------------------------------------------------- network

network_up() {
  STEP=cluster/network
  # kube-proxy's service NAT needs the pods' bridged replies to pass netfilter,
  # and pod-to-service traffic is routed by this host.
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || modprobe br_netfilter \
    || die "the kernel module br_netfilter is missing (modprobe br_netfilter failed)"
  local sysctl
  for sysctl in net.bridge.bridge-nf-call-iptables net.ipv4.ip_forward; do
    if [[ $(sysctl -n "$sysctl") != 1 ]]; then
      log "setting $sysctl=1 (Kubernetes networking needs it)"
      sysctl -qw "$sysctl=1"
    fi
  done
  # The pod bridge, made here rather than by the CNI plugin on the first pod:
  # its gateway is the node's address, where the API server and the kubelet
  # listen before any pod exists.
  ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1 || ip link add name "$CLUSTER_BRIDGE" type bridge \
    || die "could not create bridge $CLUSTER_BRIDGE"
  ip -4 -o addr show dev "$CLUSTER_BRIDGE" | grep -qw "$CLUSTER_GATEWAY/$pod_prefix" \
    || ip addr add "$CLUSTER_GATEWAY/$pod_prefix" dev "$CLUSTER_BRIDGE" \
    || die "could not give bridge $CLUSTER_BRIDGE the address $CLUSTER_GATEWAY/$pod_prefix"
  ip link set "$CLUSTER_BRIDGE" up
  # Service addresses are virtual (kube-proxy rewrites them); this route keeps
  # a packet to one that nothing rewrote on this machine instead of sending it
  # to the default gateway.
  ip route replace "$CLUSTER_SERVICE_CIDR" dev "$CLUSTER_BRIDGE" src "$CLUSTER_GATEWAY"
  # Docker 20.10 sets the FORWARD policy to DROP, which drops pod-to-pod
  # traffic crossing the bridge (br_netfilter). A chain of our own accepts
  # traffic within the pod network, nothing else (pods cannot leave the
  # machine); jumped to from DOCKER-USER like the engines' own chain.
  local hook=DOCKER-USER
  iptables -n -L "$hook" >/dev/null 2>&1 || hook=FORWARD
  iptables -n -L "$cluster_chain" >/dev/null 2>&1 || iptables -N "$cluster_chain"
  iptables -F "$cluster_chain"
  iptables -A "$cluster_chain" -s "$CLUSTER_POD_CIDR" -d "$CLUSTER_POD_CIDR" -j ACCEPT
  iptables -A "$cluster_chain" -j RETURN
  iptables -C "$hook" -j "$cluster_chain" 2>/dev/null || iptables -I "$hook" 1 -j "$cluster_chain"
  log "bridge $CLUSTER_BRIDGE ($CLUSTER_GATEWAY/$pod_prefix) is up; forwarding within $CLUSTER_POD_CIDR accepted (iptables chain $cluster_chain)"
  # Pods pull base images from the local registry mirror, at the gateway like
  # the engines' containers: the registry step, told of one more gateway.
  local registry_log
  registry_log=$(BUILDKIT_STACK_CONTAINER_GATEWAYS="${BUILDKIT_STACK_CONTAINER_GATEWAYS:-} $CLUSTER_GATEWAY" \
    bash "$steps/registry.sh" 2>&1) || die "the registry step failed for the gateway $CLUSTER_GATEWAY:
$registry_log"
  grep -F "$CLUSTER_GATEWAY" <<<"$registry_log" >&2 || true
  curl -fs -o /dev/null --max-time 2 "http://$CLUSTER_GATEWAY:$REGISTRY_PORT/v2/" \
    || die "the registry mirror does not answer on $CLUSTER_GATEWAY:$REGISTRY_PORT (see bash scripts/provision/registry.sh)"
}

network_down() {
  STEP=cluster/network
  local pid
  # The read-only registry reader registry.sh started on the pod gateway (its pid file, its own config on the command line).
  pid=$(cat "$registry_reader_pid" 2>/dev/null || true)
  if [[ -n $pid ]] && grep -qa "readonly-$CLUSTER_GATEWAY.yml" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" && rm -f "$registry_reader_pid"
    log "stopped the read-only registry on $CLUSTER_GATEWAY:$REGISTRY_PORT"
  fi
  local table
  for table in "ip kube-proxy" "ip6 kube-proxy"; do
    # shellcheck disable=SC2086 # family and name
    nft list table $table >/dev/null 2>&1 && nft delete table $table && log "deleted kube-proxy's nftables table $table"
  done
  local hook
  for hook in DOCKER-USER FORWARD; do
    while iptables -C "$hook" -j "$cluster_chain" 2>/dev/null; do iptables -D "$hook" -j "$cluster_chain"; done
  done
  if iptables -n -L "$cluster_chain" >/dev/null 2>&1; then
    iptables -F "$cluster_chain" && iptables -X "$cluster_chain"
    log "removed iptables chain $cluster_chain"
  fi
  if ip link show "$CLUSTER_BRIDGE" >/dev/null 2>&1; then
    ip link delete "$CLUSTER_BRIDGE" # takes its address and the service route with it
    log "removed bridge $CLUSTER_BRIDGE"
  fi
}

# ---------------------------------------------------------------- PKI

# ca NAME CN: pki/NAME.crt and .key, a CA for ten years (remade within 30 days of expiry).
ca() {
  local name=$1 cn=$2
  [[ -f $pki/$name.crt ]] && openssl x509 -checkend 2592000 -noout -in "$pki/$name.crt" >/dev/null && return 0
  log "creating the CA $name ($cn)"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
  openssl req -x509 -new -key "$pki/$name.key" -subj "/CN=$cn" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature \
    -out "$pki/$name.crt" 2>/dev/null || die "openssl could not create the CA $name"
}

# cert NAME SUBJECT EXTENSIONS [CA]: pki/NAME.crt and .key, signed by CA (default:
# the cluster CA); remade when its definition or the CA changed, or it expires
# within 30 days.
cert() {
  local name=$1 subject=$2 ext=$3 ca=${4:-ca} key
  key="$subject|$ext|$(openssl x509 -noout -fingerprint -sha256 -in "$pki/$ca.crt")"
  if [[ -f $pki/$name.crt ]] && stamp_ok "$pki/$name.stamp" "$key" \
    && openssl x509 -checkend 2592000 -noout -in "$pki/$name.crt" >/dev/null; then
    return 0
  fi
  log "issuing $name ($subject)"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$name.key" 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  printf '%b\n' "$ext" >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 365 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null || die "openssl could not sign $name"
  rm -f "$pki/$name.csr" "$pki/$name.ext"
  stamp_write "$pki/$name.stamp" "$key"
}

# kubeconfig FILE USER CERT: a kubeconfig for the API server with that client certificate.
write_kubeconfig() {
  local file=$1 user=$2 name=$3
  write_if_changed "$file" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: $CLUSTER_CONTEXT
    cluster:
      server: $server
      certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
  - name: $user
    user:
      client-certificate-data: $(base64 -w0 "$pki/$name.crt")
      client-key-data: $(base64 -w0 "$pki/$name.key")
contexts:
  - name: $CLUSTER_CONTEXT
    context:
      cluster: $CLUSTER_CONTEXT
      user: $user
current-context: $CLUSTER_CONTEXT
YAML
  chmod 600 "$file"
}

pki_up() {
  STEP=cluster/pki
  mkdir -p "$pki" && chmod 700 "$pki"
  ca ca "$CLUSTER_CONTEXT-ca"
  # The aggregation layer's own CA, as kubeadm makes it: the API server proxies
  # to extension API servers with a front-proxy-client certificate, which they
  # trust through this CA (kept apart from the client CA).
  ca front-proxy-ca "$CLUSTER_CONTEXT-front-proxy-ca"
  if [[ ! -f $pki/sa.key ]]; then
    log "creating the service account signing key"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
  local client='keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
  local serving='keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth'
  local service_ip
  service_ip=$(node -e 'const [a, b, c, d] = process.argv[1].split("/")[0].split(".").map(Number); console.log([a, b, c, d + 1].join("."))' "$CLUSTER_SERVICE_CIDR")
  cert apiserver "/CN=kube-apiserver" "$serving\nsubjectAltName=IP:$CLUSTER_GATEWAY,IP:$service_ip,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$cluster_domain"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  cert admin "/O=system:masters/CN=kubernetes-admin" "$client"
  cert controller-manager "/CN=system:kube-controller-manager" "$client"
  cert scheduler "/CN=system:kube-scheduler" "$client"
  cert kube-proxy "/CN=system:kube-proxy" "$client"
  cert kubelet "/O=system:nodes/CN=system:node:$CLUSTER_NODE_NAME" "$client"
  cert kubelet-serving "/CN=$CLUSTER_NODE_NAME" "$serving\nsubjectAltName=IP:$CLUSTER_GATEWAY,DNS:$CLUSTER_NODE_NAME"
  cert front-proxy-client "/CN=front-proxy-client" "$client" front-proxy-ca
  write_kubeconfig "$kubeconfig" kubernetes-admin admin
  write_kubeconfig "$etc/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  write_kubeconfig "$etc/scheduler.kubeconfig" system:kube-scheduler scheduler
  write_kubeconfig "$etc/kube-proxy.kubeconfig" system:kube-proxy kube-proxy
  write_kubeconfig "$etc/kubelet.kubeconfig" "system:node:$CLUSTER_NODE_NAME" kubelet
  log "certificates and kubeconfigs are in place (admin: $kubeconfig, context $CLUSTER_CONTEXT)"
}

# ---------------------------------------------------------------- configuration

pause_image() { echo "buildkit-stack.local/pause:$(cat "$builds/pause-$KUBERNETES_VERSION/version")"; }

configs_up() {
  STEP=cluster/config
  mkdir -p "$runtime"
  # The OCI runtime: runc-cluster (negative oom_score_adj clamped where this
  # host cannot lower it) over runc-dropcaps over the engines' runc.
  install -m 0755 "$steps/cluster/runc-cluster" "$runtime/runc-cluster"
  install -m 0755 "$steps/runc-dropcaps" "$runtime/runc-dropcaps"
  ln -sfn "$engines/runc/runc" "$runtime/runc"

  write_if_changed "$etc/containerd/config.toml" <<TOML
# Rendered by scripts/provision/cluster.sh. The cluster's own containerd: its
# own root, state, socket and runc root, so it shares nothing with the Docker
# engines' containerd.
version = 3
root = "$data/containerd"
state = "$run/containerd"

[grpc]
  address = "$containerd_sock"

[ttrpc]
  address = "$containerd_sock.ttrpc"

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$data/containerd-opt"
  # Another containerd (Docker 29's) may own the default NRI socket.
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "$(pause_image)"
    # docker.io pulls go through the local mirror (certs.d/docker.io/hosts.toml).
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "$etc/containerd/certs.d"
  [plugins.'io.containerd.cri.v1.runtime']
    # Network namespaces under our state directory, not /run/netns.
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$runtime/runc-cluster"
          Root = "$run/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["$cni_bin"]
      conf_dir = "$etc/cni/net.d"
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
TOML
  write_if_changed "$etc/containerd/certs.d/docker.io/hosts.toml" <<TOML
# Docker Hub names (moby/buildkit:v0.32.2, busybox) pull through the local
# registry mirror, as the Docker engines' do.
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:$REGISTRY_PORT"]
  capabilities = ["pull", "resolve"]
TOML
  write_if_changed "$etc/cni/net.d/10-$CLUSTER_BRIDGE.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$CLUSTER_BRIDGE",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CLUSTER_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$CLUSTER_POD_CIDR", "gateway": "$CLUSTER_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$data/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  write_if_changed "$etc/kubelet.yaml" <<YAML
# Rendered by scripts/provision/cluster.sh.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $CLUSTER_GATEWAY
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$containerd_sock
clusterDomain: $cluster_domain
clusterDNS: [$CLUSTER_DNS_IP]
# This VM's cgroups are v1, mounted by no init system.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this VM withholds.
oomScoreAdj: 0
# Else the kubelet adds a KUBE-FIREWALL chain that drops non-loopback traffic
# to 127/8, which the engines' published ports and tests use.
makeIPTablesUtilChains: false
volumePluginDir: $data/kubelet-plugins
# The node shares this machine's disk with the engines, Go's caches and the tests. The default hard eviction
# (image filesystem under 15 % free) evicted the cluster's own provisioner here with 36 GB of 252 GB free;
# a test cluster evicts only when the disk is really full.
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, nodefs.inodesFree: 2%, imagefs.available: 2%}
YAML
  write_if_changed "$etc/kube-proxy.yaml" <<YAML
# Rendered by scripts/provision/cluster.sh.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $etc/kube-proxy.kubeconfig}
hostnameOverride: $CLUSTER_NODE_NAME
bindAddress: $CLUSTER_GATEWAY
clusterCIDR: $CLUSTER_POD_CIDR
healthzBindAddress: 127.0.0.1:$proxy_healthz_port
metricsBindAddress: 127.0.0.1:$proxy_metrics_port
# NodePorts answer on the node's address only, not on this machine's others.
nodePortAddresses: [$CLUSTER_GATEWAY/32]
oomScoreAdj: 0
# Leave the host's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  write_if_changed "$etc/crictl.yaml" <<YAML
runtime-endpoint: unix://$containerd_sock
image-endpoint: unix://$containerd_sock
YAML
  log "configuration rendered in $etc"
}

# ---------------------------------------------------------------- health checks

etcd_healthy() { curl -fs --max-time 2 "http://127.0.0.1:$etcd_client_port/health" | grep -q '"health":"true"'; }
apiserver_healthy() {
  curl -fs --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server/readyz" >/dev/null
}
secure_healthz() { curl -fsk --max-time 2 "https://127.0.0.1:$1/healthz" >/dev/null; }
controller_manager_healthy() { secure_healthz "$CLUSTER_CONTROLLER_MANAGER_PORT"; }
scheduler_healthy() { secure_healthz "$CLUSTER_SCHEDULER_PORT"; }
containerd_healthy() { ctr version >/dev/null 2>&1; }
kubelet_healthy() { curl -fs --max-time 2 "http://127.0.0.1:$kubelet_healthz_port/healthz" >/dev/null; }
kube_proxy_healthy() { curl -fs --max-time 2 "http://127.0.0.1:$proxy_healthz_port/healthz" >/dev/null; }
node_ready() {
  [[ $(kubectl get node "$CLUSTER_NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
default_storage_class() {
  [[ $(kubectl get storageclass -o 'jsonpath={.items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")].metadata.name}') == local-path ]]
}
# dns_answers IP: the cluster DNS resolves kubernetes.default to IP (busybox
# prints the server as "Address:<tab>IP:53" and each answer as "Address: IP").
dns_answers() {
  busybox nslookup "kubernetes.default.svc.$cluster_domain" "$CLUSTER_DNS_IP" 2>/dev/null \
    | awk -v ip="$1" '$1 == "Address:" && $2 == ip {found = 1} END {exit !found}'
}

# ---------------------------------------------------------------- images

# import_image ARCHIVE: the OCI archive into containerd's k8s.io namespace
# (what the kubelet sees), unless the image is there at that digest; pinned,
# so the kubelet's image GC never removes what no registry could give back.
import_image() {
  local archive=$1 reference digest
  reference=$(tar -xOf "$archive" index.json | node -pe 'JSON.parse(require("fs").readFileSync(0)).manifests[0].annotations["io.containerd.image.name"]')
  digest=$(cat "$archive.digest")
  if [[ $(ctr images ls "name==$reference" 2>/dev/null | awk -v r="$reference" '$1 == r {print $3}') == "$digest" ]]; then
    log "$reference is in containerd"
    return 0
  fi
  log "importing $reference"
  # (ctr warns on every call that cgroup v1 is deprecated: the output is kept for a failure.)
  local output
  output=$(ctr images import --platform "linux/$(go env GOARCH)" "$archive" 2>&1 \
    && ctr images label "$reference" io.cri-containerd.pinned=pinned 2>&1) || die "ctr images import $archive failed: $output"
}

# ---------------------------------------------------------------- up / down

render_manifest() {
  sed -e "s|@CLUSTER_DOMAIN@|$cluster_domain|g" -e "s|@CLUSTER_DNS_IP@|$CLUSTER_DNS_IP|g" \
    -e "s|@COREDNS_IMAGE@|buildkit-stack.local/coredns:$COREDNS_VERSION|g" \
    -e "s|@LOCAL_PATH_IMAGE@|buildkit-stack.local/local-path-provisioner:$LOCAL_PATH_PROVISIONER_VERSION|g" \
    -e "s|@LOCAL_PATH_DIR@|$data/local-path|g" "$steps/cluster/$1"
}

up() {
  local started=$SECONDS
  install_debian_packages nftables busybox-static openssl
  # containerd, its shim and runc: the engines' builds.
  bash "$steps/engine-builds.sh"
  bash "$steps/cluster-builds.sh"
  mkdir -p "$run" "$logs" "$data" "$etc" "$BUILDKIT_STACK_CACHE/bin"
  ln -sfn "$k8s/kubectl" "$BUILDKIT_STACK_CACHE/bin/kubectl"

  network_up
  pki_up
  configs_up

  authn() { printf -- '--authentication-kubeconfig=%s --authorization-kubeconfig=%s' "$1" "$1"; }
  daemon etcd 60 etcd_healthy "" -- "$etcd_bin" --name "$CLUSTER_NODE_NAME" --data-dir "$data/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client_port" --advertise-client-urls "http://127.0.0.1:$etcd_client_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "$CLUSTER_NODE_NAME=http://127.0.0.1:$etcd_peer_port"
  daemon kube-apiserver 180 apiserver_healthy "$pki/apiserver.crt $pki/apiserver-kubelet-client.crt $pki/front-proxy-client.crt $pki/sa.pub $pki/ca.crt" -- \
    "$k8s/kube-apiserver" --advertise-address="$CLUSTER_GATEWAY" --bind-address="$CLUSTER_GATEWAY" \
    --secure-port="$CLUSTER_APISERVER_PORT" --etcd-servers="http://127.0.0.1:$etcd_client_port" \
    --service-cluster-ip-range="$CLUSTER_SERVICE_CIDR" --allow-privileged=true \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer="https://kubernetes.default.svc.$cluster_domain" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --profiling=false
  # shellcheck disable=SC2046 # two flags
  daemon kube-controller-manager 90 controller_manager_healthy "$etc/controller-manager.kubeconfig $pki/sa.key" -- \
    "$k8s/kube-controller-manager" --kubeconfig="$etc/controller-manager.kubeconfig" $(authn "$etc/controller-manager.kubeconfig") \
    --bind-address=127.0.0.1 --secure-port="$CLUSTER_CONTROLLER_MANAGER_PORT" --leader-elect=false \
    --cluster-name="$CLUSTER_CONTEXT" --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_POD_CIDR" \
    --node-cidr-mask-size="$pod_prefix" --service-cluster-ip-range="$CLUSTER_SERVICE_CIDR" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" --root-ca-file="$pki/ca.crt" \
    --service-account-private-key-file="$pki/sa.key" --use-service-account-credentials=true --profiling=false
  # shellcheck disable=SC2046 # two flags
  daemon kube-scheduler 90 scheduler_healthy "$etc/scheduler.kubeconfig" -- \
    "$k8s/kube-scheduler" --kubeconfig="$etc/scheduler.kubeconfig" $(authn "$etc/scheduler.kubeconfig") \
    --bind-address=127.0.0.1 --secure-port="$CLUSTER_SCHEDULER_PORT" --leader-elect=false --profiling=false
  # containerd finds the engines' shim first on its PATH. The rest of its PATH is fixed, not the caller's: the
  # daemon's key includes it, and `npm test`'s PATH (scripts/env.sh) is not provisioning's, so a caller's PATH
  # restarted containerd (and every pod) on the next up.
  daemon containerd 60 containerd_healthy "$etc/containerd/config.toml $etc/containerd/certs.d/docker.io/hosts.toml $runtime/runc-cluster $runtime/runc-dropcaps" \
    "PATH=$engines/containerd:$SYSTEM_PATH" -- "$engines/containerd/containerd" --config "$etc/containerd/config.toml"

  STEP=cluster/images
  import_image "$builds/pause-$KUBERNETES_VERSION/image.tar"
  import_image "$builds/coredns-$COREDNS_VERSION/image.tar"
  import_image "$builds/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/image.tar"

  daemon kubelet 90 kubelet_healthy "$etc/kubelet.yaml $etc/kubelet.kubeconfig $pki/kubelet-serving.crt $pki/ca.crt" -- \
    "$k8s/kubelet" --config="$etc/kubelet.yaml" --kubeconfig="$etc/kubelet.kubeconfig" \
    --hostname-override="$CLUSTER_NODE_NAME" --node-ip="$CLUSTER_GATEWAY" --root-dir="$data/kubelet"
  daemon kube-proxy 60 kube_proxy_healthy "$etc/kube-proxy.yaml $etc/kube-proxy.kubeconfig" -- \
    "$k8s/kube-proxy" --config="$etc/kube-proxy.yaml"

  STEP=cluster/node
  wait_until 120 "node $CLUSTER_NODE_NAME to be Ready (kubectl describe node $CLUSTER_NODE_NAME; log: $logs/kubelet.log)" node_ready
  log "node $CLUSTER_NODE_NAME is Ready ($(kubectl get node "$CLUSTER_NODE_NAME" -o 'jsonpath={.status.nodeInfo.kubeletVersion}'))"

  STEP=cluster/addons
  { render_manifest coredns.yaml && echo --- && render_manifest local-path-storage.yaml; } \
    | kubectl apply -f - >"$logs/addons.log" 2>&1 || die "kubectl apply of the addons failed (see $logs/addons.log)"
  kubectl -n kube-system rollout status deployment/coredns --timeout=180s >>"$logs/addons.log" 2>&1 \
    || die "CoreDNS did not become available (kubectl -n kube-system describe pods -l k8s-app=kube-dns; log: $logs/addons.log)"
  kubectl -n local-path-storage rollout status deployment/local-path-provisioner --timeout=180s >>"$logs/addons.log" 2>&1 \
    || die "the local-path provisioner did not become available (kubectl -n local-path-storage describe pods; log: $logs/addons.log)"
  wait_until 30 "the default StorageClass local-path" default_storage_class
  log "CoreDNS and the local-path provisioner are available; local-path is the default StorageClass"

  STEP=cluster/dns
  local service_ip
  service_ip=$(kubectl get service kubernetes -n default -o 'jsonpath={.spec.clusterIP}')
  wait_until 60 "cluster DNS at $CLUSTER_DNS_IP to resolve kubernetes.default (log: kubectl -n kube-system logs deploy/coredns)" \
    dns_answers "$service_ip"
  log "cluster DNS answers at $CLUSTER_DNS_IP (kubernetes.default.svc.$cluster_domain is $service_ip)"

  STEP=cluster
  bash "$steps/pulumi-kubernetes.sh"
  log "cluster $CLUSTER_CONTEXT is up in $((SECONDS - started))s: API $server, KUBECONFIG=$kubeconfig (bash scripts/provision/cluster.sh env)"
}

down() {
  STEP=cluster/down
  stop_daemon kube-proxy
  stop_daemon kubelet
  # Pods through the CRI, so their network goes through CNI DEL (addresses
  # released, veths removed) before containerd stops.
  if [[ -S $containerd_sock ]] && containerd_healthy; then
    local pods
    pods=$(crictl pods -q 2>/dev/null || true)
    if [[ -n $pods ]]; then
      log "stopping and removing $(wc -w <<<"$pods") pod sandboxes"
      # shellcheck disable=SC2086 # ids
      if ! { crictl stopp $pods && crictl rmp $pods; } >/dev/null; then
        log "crictl could not remove every pod; stopping containerd ends the rest"
      fi
    fi
  fi
  stop_daemon containerd
  stop_daemon kube-scheduler
  stop_daemon kube-controller-manager
  stop_daemon kube-apiserver
  stop_daemon etcd
  # What the kubelet and containerd left mounted (volumes, network namespaces).
  local mounts
  mounts=$(awk -v a="$data/kubelet" -v b="$run" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/self/mounts | sort -r)
  if [[ -n $mounts ]]; then
    log "unmounting $(wc -l <<<"$mounts") mounts under $data/kubelet and $run"
    while read -r mount; do umount "$mount" 2>/dev/null || umount -l "$mount"; done <<<"$mounts"
  fi
  network_down
  log "the cluster is down; its data stays in $data for the next \`cluster.sh up\` (remove it to start afresh)"
}

"$command"
