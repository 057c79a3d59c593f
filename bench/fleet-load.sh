#!/usr/bin/env bash
# Load test of the fleet view (issue 20): GET /fleet/containers of one node of a three-node
# fleet (3 × N running containers, N per node) beside GET /containers of that same node (its
# N containers), in one run, plain and gzip. The goal: the fleet p99 <= 2x the single node's,
# warm caches (the fleet view is merged and compressed in the background, so a request is
# served bytes), and that node's RSS <= 20 MiB with its peers.
#
# The "nodes" are three status-api processes on loopback ports of this machine, each scoped
# by label to its own N sleepers on the shared engine (as three nodes each see their own
# engine), peered by a list of the three addresses (as DOCKWARDEN_PEERS would name them),
# each with its own --node-name, all with the same allowlist. wrk (Debian's) drives the load.
# Containers are named dwtest-fleet-bench-<pid>-<node>-<i>; containers, image, processes and
# files are removed at the end, pass or fail; processes are ended by PID.
#
#   bash bench/fleet-load.sh                 # N=100 per node, 3 rounds of 5 s per target
#   N=50 ROUNDS=5 DURATION=10s bash bench/fleet-load.sh
#
# Targets take turns (single, fleet, single, fleet, ... ROUNDS times each, per form) and the
# table shows each one's median round. Not a timed test; exit 0 when every goal is met.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
PREFIX="dwtest-fleet-bench-$$"
TAG="dwtest-fleet-bench-sleeper:$$"
WORK=$(mktemp -d /tmp/dwtest-fleet-bench.XXXXXX)
PIDS=()

log() { printf '[fleet-bench] %s\n' "$*" >&2; }
fail() { printf '[fleet-bench] FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  log "removing containers named $PREFIX-*"
  ids=$(docker ps -aq --filter "name=^/?$PREFIX-" 2>/dev/null || true)
  [ -n "$ids" ] && echo "$ids" | xargs -n 100 docker rm -f >/dev/null 2>&1
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

bash scripts/build-static.sh >&2
BIN=target/x86_64-unknown-linux-gnu/release
mkdir -p "$WORK/ctx" "$WORK/policy"
cp "$BIN/dw-sleeper" "$WORK/ctx/"
printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$WORK/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" --label dwtest=1 "$WORK/ctx" >/dev/null
# Every other container allowed: verdicts and reasons in every object, as in real use.
printf 'mode = "audit"\n[[allow]]\nname = "%s-*[02468]"\n' "$PREFIX" >"$WORK/policy/allowlist.toml"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NODES=(n1 n2 n3)
declare -A PORT PID_OF
for n in "${NODES[@]}"; do PORT[$n]=$(free_port); done
PEERS="127.0.0.1:${PORT[n1]},127.0.0.1:${PORT[n2]},127.0.0.1:${PORT[n3]}"

log "starting $((3 * N)) containers ($N per node)"
for n in "${NODES[@]}"; do
  seq 1 "$N" | xargs -P 8 -I{} docker run -d --name "$PREFIX-$n-{}" --label "dwtest.fleetbench=$PREFIX-$n" \
    --network none "$TAG" >/dev/null || fail "could not start the containers of $n"
done
for n in "${NODES[@]}"; do
  "$BIN/status-api" --listen "127.0.0.1:${PORT[$n]}" --scope "dwtest.fleetbench=$PREFIX-$n" \
    --allowlist "$WORK/policy/allowlist.toml" --peers "$PEERS" --node-name "$PREFIX-$n" \
    --log-format json >"$WORK/$n.log" 2>&1 &
  PID_OF[$n]=$!
  PIDS+=("$!")
done
A="http://127.0.0.1:${PORT[n1]}"
count() { curl -fsS "$1" | grep -o '"id":"[0-9a-f]\{64\}"' | wc -l; }
for _ in $(seq 1 300); do
  c=$(count "$A/fleet/containers" 2>/dev/null) || c=0
  [ "$c" -eq $((3 * N)) ] &&
    curl -fsS "$A/containers" | grep -q '"sampled_at"' && break
  sleep 0.5
done
[ "$(count "$A/fleet/containers")" -eq $((3 * N)) ] || { tail -n 5 "$WORK"/n*.log >&2; fail "node 1's fleet view does not list $((3 * N)) containers"; }
[ "$(count "$A/containers")" -eq "$N" ] || fail "node 1 does not list its $N containers"
curl -fsS "$A/fleet/nodes" | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert v["reachable"] == 3 and v["drifted"] == 0, v
' || fail "the fleet is not 3 reachable nodes without drift"
log "fleet up: 3 status-api (pids ${PID_OF[n1]} ${PID_OF[n2]} ${PID_OF[n3]}), node 1 on $A"

to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else printf "%s", v }'
}
declare -A RPS P99 ERRS WARM
load() { # NAME URL [wrk args...]
  local name=$1 url=$2 out="$WORK/wrk-$1.txt"
  shift 2
  if [ -z "${WARM[$name]:-}" ]; then
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s --timeout 10s "$@" "$url" >/dev/null 2>&1 || true
    WARM[$name]=1
  fi
  log "wrk $name: $url for $DURATION"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency "$@" "$url" >"$out" 2>&1 ||
    { cat "$out" >&2; fail "wrk failed against $name"; }
  RPS[$name]+=" $(awk '/^Requests\/sec:/ {print $2}' "$out")"
  P99[$name]+=" $(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
  local non2xx socket
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  socket=$(awk '/Socket errors/ {n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n}' "$out")
  ERRS[$name]=$(( ${ERRS[$name]:-0} + ${non2xx:-0} + ${socket:-0} ))
}
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bytes() { curl -fsS "$@" | wc -c; }

GZ=(-H 'Accept-Encoding: gzip')
for _ in $(seq 1 "$ROUNDS"); do
  load single-plain "$A/containers"
  load fleet-plain "$A/fleet/containers"
  load single-gzip "$A/containers" "${GZ[@]}"
  load fleet-gzip "$A/fleet/containers" "${GZ[@]}"
done
[ "$(count "$A/fleet/containers")" -eq $((3 * N)) ] || fail "the fleet view lost containers under load"
rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/${PID_OF[n1]}/status")
hwm=$(awk '$1 == "VmHWM:" {print $2}' "/proc/${PID_OF[n1]}/status")

ok=1
ROWS=()
for form in plain gzip; do
  s="single-$form" f="fleet-$form"
  sr=$(median "${RPS[$s]}") fr=$(median "${RPS[$f]}") sp=$(median "${P99[$s]}") fp=$(median "${P99[$f]}")
  log "$s rounds: req/s${RPS[$s]}; p99${P99[$s]}"
  log "$f rounds: req/s${RPS[$f]}; p99${P99[$f]}"
  x=$(awk -v a="$fp" -v b="$sp" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 99) }')
  verdict=$(awk -v x="$x" -v e="$(( ${ERRS[$f]} + ${ERRS[$s]} ))" 'BEGIN { print (x <= 2.0 && e == 0) ? "ok" : "MISSED" }')
  [ "$verdict" = ok ] || ok=0
  if [ "$form" = gzip ]; then
    sb=$(bytes "${GZ[@]}" "$A/containers") fb=$(bytes "${GZ[@]}" "$A/fleet/containers")
  else
    sb=$(bytes "$A/containers") fb=$(bytes "$A/fleet/containers")
  fi
  ROWS+=("$(printf '| %-5s | %8s | %10s | %9s | %8s | %10s | %9s | %11s | %7s | %6s |' \
    "$form" "$sb" "$sr" "$sp" "$fb" "$fr" "$fp" "$(( ${ERRS[$s]} + ${ERRS[$f]} ))" "${x}x" "$verdict")")
done
rss_mib=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
hwm_mib=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
awk -v h="$hwm" 'BEGIN { exit !(h > 20 * 1024) }' && ok=0

echo
echo "Node 1 of a 3-node fleet ($N containers per node): GET /containers (its $N) beside GET /fleet/containers (all $((3 * N)))"
echo "wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of $DURATION per target taking turns, median round shown; loopback;"
echo "$(nproc) cores shared by wrk, the three status-api, dockerd and whatever else runs on the machine; one run of this script"
echo "load average (1, 5, 15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg): other work on the machine shows here"
echo
printf '| %-5s | %8s | %10s | %9s | %8s | %10s | %9s | %11s | %7s | %6s |\n' \
  form "bytes" "single r/s" "p99" "fleet b" "fleet r/s" "fleet p99" "errors" "p99 x" "goal"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------- ---------- ------------ ----------- ---------- ------------ ----------- ------------- --------- --------
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "p99 in ms. p99 x: fleet over single node (goal <= 2.00); errors: non-2xx and socket errors of both."
echo "node 1's RSS after the load, with its two peers: $rss_mib MiB (peak since start $hwm_mib MiB; goal <= 20 MiB)"
[ "$ok" = 1 ] && echo "All goals met." || { echo "Some goals MISSED."; exit 1; }
