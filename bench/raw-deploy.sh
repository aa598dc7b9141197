#!/usr/bin/env bash
# The raw way to get a BuildKit daemon, as the seed did it: one `docker run`,
# then poll `buildctl debug workers` until the daemon lists a worker. This is
# the yardstick the Pulumi deploy is compared against (bench/run.ts, P1), and
# the "basic way" container of the cache benchmark (P2).
#
# usage: bench/raw-deploy.sh [--name NAME] [--volume VOLUME | --no-volume]
#                            [--image IMAGE] [--config FILE] [--add-host HOST:IP]
#                            [--network NETWORK]
#   --config    a buildkitd.toml to mount (P2 needs the registry mirror in it;
#               P1 runs exactly the seed's command, without one)
# Prints the seconds from `docker run` to the first successful worker listing.
set -euo pipefail

name=bench-raw
volume=bench-raw-cache
image=moby/buildkit:v0.32.2
config=
add_host=
network=
while (($#)); do
  case $1 in
    --name) name=$2; shift 2 ;;
    --volume) volume=$2; shift 2 ;;
    --no-volume) volume=; shift ;;
    --image) image=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --add-host) add_host=$2; shift 2 ;;
    --network) network=$2; shift 2 ;;
    *) echo "raw-deploy.sh: unknown argument $1" >&2; exit 1 ;;
  esac
done

# Bounded: a daemon that is not listing workers after this long is broken, not slow.
bound_seconds=120
# Short poll interval: each attempt is itself a `docker exec` (~0.1 s), so a
# longer interval would only add idle time to what we are measuring.
poll_interval=0.1

flags=(--privileged --memory 1g --cpus 1)
if [[ -n $volume ]]; then flags+=(-v "$volume:/var/lib/buildkit"); fi
if [[ -n $add_host ]]; then flags+=(--add-host "$add_host"); fi
if [[ -n $network ]]; then flags+=(--network "$network"); fi
daemon_args=()
if [[ -n $config ]]; then
  flags+=(-v "$config:/etc/buildkit/buildkitd.toml:ro")
  daemon_args=(--config /etc/buildkit/buildkitd.toml)
fi

start=$(date +%s.%N)
docker run -d --name "$name" "${flags[@]}" "$image" "${daemon_args[@]}" >/dev/null
deadline=$((SECONDS + bound_seconds))
# Ready means what the stack's smoke test means: a header line plus at least one worker.
until out=$(buildctl --addr "docker-container://$name" debug workers 2>/dev/null) && (($(printf '%s\n' "$out" | wc -l) >= 2)); do
  if ((SECONDS >= deadline)); then
    echo "raw-deploy.sh: $name listed no workers after ${bound_seconds}s" >&2
    exit 1
  fi
  sleep "$poll_interval"
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
