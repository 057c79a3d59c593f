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
# Targets (single and fleet, plain and gzip) take turns, ROUNDS rounds of one turn each, in a
# fresh random order every round (SEED=N repeats a run's orders), and the table shows each
# one's median round. Not a timed test; exit 0 when every goal is met.
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
BENCH=fleet-bench
. bench/wrk-lib.sh
mkdir -p "$WORK/policy"
# Every other container allowed: verdicts and reasons in every object, as in real use.
printf 'mode = "audit"\n[[allow]]\nname = "%s-*[02468]"\n' "$PREFIX" >"$WORK/policy/allowlist.toml"

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
  "${API_ENV[@]}" "$BIN/status-api" --listen "127.0.0.1:${PORT[$n]}" --scope "dwtest.fleetbench=$PREFIX-$n" \
    --allowlist "$WORK/policy/allowlist.toml" --peers "$PEERS" --node-name "$PREFIX-$n" \
    --log-format json >"$WORK/$n.log" 2>&1 &
  PID_OF[$n]=$!
  PIDS+=("$!")
done
A="http://127.0.0.1:${PORT[n1]}"
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

bytes() { curl -fsS "$@" | wc -c; }

GZ=(-H 'Accept-Encoding: gzip')
# turn TARGET: one measured round of TARGET (see take_turns in bench/wrk-lib.sh).
turn() {
  case $1 in
    single-plain) load "$1" "$A/containers" ;;
    fleet-plain) load "$1" "$A/fleet/containers" ;;
    single-gzip) load "$1" "$A/containers" "${GZ[@]}" ;;
    fleet-gzip) load "$1" "$A/fleet/containers" "${GZ[@]}" ;;
    *) fail "no target $1" ;;
  esac
}
take_turns "$SEED" "" single-plain fleet-plain single-gzip fleet-gzip
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
echo "wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of $DURATION per target taking turns in a random order (SEED=$SEED), median round shown; loopback;"
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
