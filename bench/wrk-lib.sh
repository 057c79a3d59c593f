# Shared by the wrk benches (api-load.sh, fleet-load.sh), sourced from the repository's root
# after they set BENCH (the log prefix), PREFIX (their containers' names), TAG (the sleeper
# image), WORK (a temporary directory), THREADS, CONNECTIONS and DURATION. Gives: log and
# fail; the cleanup on exit (processes in PIDS by PID, containers named PREFIX-*, the image,
# WORK); the tools (wrk, curl and any in EXTRA_TOOLS, from Debian); the static build and
# the sleeper image (BIN); API_ENV (status-api's environment as deployed); free_port; load
# (one wrk round) with its RPS, P99 and ERRS; median; count.
# shellcheck shell=bash disable=SC2034
PIDS=()

log() { printf '[%s] %s\n' "$BENCH" "$*" >&2; }
fail() { printf '[%s] FAIL: %s\n' "$BENCH" "$*" >&2; exit 1; }

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  log "removing containers named $PREFIX-*"
  ids=$(docker ps -aq --filter "name=^/?$PREFIX-" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -n "$ids" ] && echo "$ids" | xargs -n 100 docker rm -f >/dev/null 2>&1
  docker rmi -f "$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
for t in ${EXTRA_TOOLS:-}; do command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}"); done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
timeout 10 docker info >/dev/null 2>&1 || fail "no Docker Engine answers"

# status-api as the deployments run it: with the MALLOC_ARENA_MAX that docker-compose.yml sets
# for it (the stack and the DaemonSet set the same), in API_ENV; not for wrk or nginx.
arena=$(sed -n 's/^ *- MALLOC_ARENA_MAX=\([0-9]*\)$/\1/p' docker-compose.yml)
[ -n "$arena" ] || fail "docker-compose.yml sets no MALLOC_ARENA_MAX for status-api"
API_ENV=(env "MALLOC_ARENA_MAX=$arena")

# status-api as shipped (static release) and the sleeper fixture (FROM scratch, nothing pulled).
bash scripts/build-static.sh >&2
BIN=target/x86_64-unknown-linux-gnu/release
mkdir -p "$WORK/ctx"
cp "$BIN/dw-sleeper" "$WORK/ctx/"
printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$WORK/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" --label dwtest=1 "$WORK/ctx" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wrk's latency (e.g. 635.91us, 1.20ms, 2.01s) in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.2f", v * 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else printf "%s", v }'
}

# load NAME URL [wrk args...]: one measured round (a warm-up first time), appended to
# NAME's lists of req/s, p99 and errors.
declare -A RPS P99 ERRS WARM
load() {
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

# The targets of a bench take turns, one round each, in a fresh order every round: a fixed
# order gave the slow rounds to the targets in its first places, whichever build was there
# (docs/status-api-performance.md). SEED=N repeats a run's orders.
SEED=${SEED:-$RANDOM}
# shuffled SEED WORD...: the words (no spaces), one per line, in the order SEED draws.
shuffled() {
  local seed=$1
  shift
  printf '%s\n' "$@" | awk -v s="$seed" 'BEGIN { srand(s) } { printf "%.9f %s\n", rand(), $0 }' | sort -n | cut -d' ' -f2
}
# take_turns SEED_BASE LABEL TARGET...: ROUNDS rounds, each running every TARGET once through
# the bench's own `turn TARGET`, in the order shuffled draws from SEED_BASE + the round.
take_turns() {
  local base=$1 label=$2 round order t
  shift 2
  for round in $(seq 1 "$ROUNDS"); do
    order=$(shuffled "$((base + round))" "$@")
    log "round $round of $ROUNDS$label (SEED=$SEED):" $order
    for t in $order; do turn "$t"; done
  done
}

# The median of a list of numbers.
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# How many containers a list answer holds.
count() { curl -fsS "$1" | grep -o '"id":"[0-9a-f]\{64\}"' | wc -l; }
