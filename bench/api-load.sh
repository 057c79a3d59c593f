#!/usr/bin/env bash
# Load test of GET /containers (issue 3, acceptance 5): status-api, which answers from the
# informer's in-memory picture, side by side in one run with pass-through baselines that
# ask Docker on every request (status-api/examples/passthrough.rs: list + inspect giving
# the same JSON, and a bare list like `docker ps`). N running sleeper containers of our own,
# scoped by label so that other containers on the engine do not count. wrk (Debian's) drives
# the load over loopback; the script prints a table and removes its containers and image
# (named dwtest-bench-*), pass or fail.
#
#   bash bench/api-load.sh            # N=100 containers, 10 s per target, 16 connections
#   N=200 DURATION=20s CONNECTIONS=32 bash bench/api-load.sh
#
# Not a timed test: figures depend on the machine (this one: 2 cores shared by wrk, the
# server under test and dockerd).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PREFIX="dwtest-bench-$$"
SCOPE="dwtest.scope=$PREFIX"
TAG=dwtest-bench-sleeper:latest
WORK=$(mktemp -d /tmp/dwtest-bench.XXXXXX)
PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }
fail() { printf '[bench] FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ids=$(docker ps -aq --filter "name=^/?$PREFIX" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  docker rmi -f "$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
timeout 10 docker info >/dev/null 2>&1 || fail "no Docker Engine answers"

# Binaries: status-api as shipped (static release) and the baseline (release example).
bash scripts/build-static.sh >&2
cargo build --release -q -p status-api --example passthrough >&2
API=target/x86_64-unknown-linux-gnu/release/status-api
BASELINE=target/release/examples/passthrough

# A FROM-scratch sleeper image of our own (nothing is pulled) and N running containers.
mkdir -p "$WORK/ctx"
cp target/x86_64-unknown-linux-gnu/release/dw-sleeper "$WORK/ctx/"
printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$WORK/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" --label dwtest=1 "$WORK/ctx" >/dev/null
log "starting $N containers"
seq 1 "$N" | xargs -P 8 -I{} docker run -d --name "$PREFIX-{}" --label "$SCOPE" --network none "$TAG" >/dev/null
running=$(docker ps -q --filter "label=$SCOPE" --filter status=running | wc -l)
[ "$running" -eq "$N" ] || fail "$running of $N containers running"

# Both servers on free loopback ports.
"$API" --listen 127.0.0.1:0 --scope "$SCOPE" --log-format json >"$WORK/api.log" 2>&1 &
PIDS+=($!)
"$BASELINE" --listen 127.0.0.1:0 --scope "$SCOPE" >"$WORK/baseline.log" 2>&1 &
PIDS+=($!)
API_ADDR="" BASE_ADDR=""
for _ in $(seq 1 100); do
  API_ADDR=$(grep -o '"addr":"[^"]*"' "$WORK/api.log" | head -1 | cut -d'"' -f4 || true)
  BASE_ADDR=$(sed -n 's/^listening on //p' "$WORK/baseline.log" | head -1)
  [ -n "$API_ADDR" ] && [ -n "$BASE_ADDR" ] && break
  sleep 0.1
done
[ -n "$API_ADDR" ] || { cat "$WORK/api.log" >&2; fail "status-api did not start"; }
[ -n "$BASE_ADDR" ] || { cat "$WORK/baseline.log" >&2; fail "the baseline did not start"; }
for _ in $(seq 1 150); do
  "$API" healthcheck --url "http://$API_ADDR/readyz" 2>/dev/null && break
  sleep 0.2
done

# Measure status-api with its resource figures in the answer (the first sampling round).
for _ in $(seq 1 150); do
  curl -fsS "http://$API_ADDR/containers" | grep -q '"sampled_at"' && break
  sleep 0.2
done
count() { curl -fsS "$1" | grep -o '"id":"[0-9a-f]\{64\}"' | wc -l; }
[ "$(count "http://$API_ADDR/containers")" -eq "$N" ] || fail "status-api does not list $N containers"
[ "$(count "http://$BASE_ADDR/containers")" -eq "$N" ] || fail "the baseline does not list $N containers"
[ "$(curl -fsS "http://$BASE_ADDR/ps" | grep -o '"Id":"[0-9a-f]\{64\}"' | wc -l)" -eq "$N" ] ||
  fail "the bare list does not list $N containers"
bytes_api=$(curl -fsS "http://$API_ADDR/containers" | wc -c)
bytes_base=$(curl -fsS "http://$BASE_ADDR/containers" | wc -c)

# wrk's latency (e.g. 635.91us, 1.20ms, 2.01s) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else printf "%s", v }'
}

# load NAME URL: warm up, measure, record "name rps p50 p99 errors".
declare -A RPS P50 P99 ERRS
load() {
  local name=$1 url=$2 out="$WORK/wrk-$1.txt"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s --timeout 10s "$url" >/dev/null 2>&1 || true
  log "wrk $name: $url for $DURATION"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency "$url" >"$out" 2>&1 ||
    { cat "$out" >&2; fail "wrk failed against $name"; }
  RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  P50[$name]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  P99[$name]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  local non2xx socket
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  socket=$(awk '/Socket errors/ {n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n}' "$out")
  ERRS[$name]=$(( ${non2xx:-0} + ${socket:-0} ))
}

load status-api "http://$API_ADDR/containers"
load passthrough "http://$BASE_ADDR/containers"
load docker-ps "http://$BASE_ADDR/ps"

# The informer kept up: still N containers, no Docker call per request.
[ "$(count "http://$API_ADDR/containers")" -eq "$N" ] || fail "status-api lost containers under load"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
echo
echo "GET /containers with $N running containers (wrk -t$THREADS -c$CONNECTIONS -d$DURATION, loopback; $(nproc) cores shared by wrk, servers and dockerd)"
echo "body: status-api $bytes_api bytes (with CPU/memory figures), pass-through $bytes_base bytes (same JSON without figures)"
echo
printf '| %-42s | %10s | %9s | %9s | %6s | %16s | %12s |\n' "target" "req/s" "p50 ms" "p99 ms" "errors" "api/row req/s" "row/api p99"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "--------------------------------------------" "------------" "-----------" "-----------" "--------" "------------------" "--------------"
row() {
  local name=$1 label=$2
  printf '| %-42s | %10s | %9s | %9s | %6s | %16s | %12s |\n' "$label" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${ERRS[$name]}" \
    "$(ratio "${RPS[status-api]}" "${RPS[$name]}")x" "$(ratio "${P99[$name]}" "${P99[status-api]}")x"
}
row status-api "status-api (in-memory picture)"
row passthrough "pass-through: list + inspect per request"
row docker-ps "pass-through: bare list per request (ps)"
echo
echo "api/row req/s: status-api's throughput over that row's; row/api p99: that row's p99 latency over status-api's."
