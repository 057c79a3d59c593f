#!/usr/bin/env bash
# Load test of GET /containers (issue 10): status-api beside nginx serving the same bytes
# from a file (the floor), in one run, plain and gzip, at N running containers for each N
# in SIZES. The goal: status-api >= 0.8x nginx's req/s and p99 <= 1.5x nginx's p99, and
# status-api's RSS <= 20 MiB at 1,000 containers under that load.
#
# The containers are sleepers of our own image (FROM scratch, nothing pulled), named
# dwtest-api-bench-<pid>-N and labelled so that status-api (--scope) sees only them. nginx
# (Debian's nginx-light, one worker, as the issue measured) listens on a free loopback port
# and is started and stopped by this script, by PID. wrk (Debian's) drives the load over
# loopback. Containers, image, processes and files are removed at the end, pass or fail.
#
#   bash bench/api-load.sh          # SIZES="100 1000", 3 rounds of 5 s per target, 16 connections
#   SIZES=100 ROUNDS=5 DURATION=10s CONNECTIONS=32 bash bench/api-load.sh
#   BASELINE_API=/tmp/old/status-api bash bench/api-load.sh   # an earlier build as a third target
#
# With BASELINE_API, another status-api binary (e.g. the build before a change) serves the same
# containers on its own port and takes its turns too: its rows show the before, status-api's
# the after, both beside nginx in the same run.
#
# The machine is shared: a burst of other work during one target's run would decide the
# comparison. So the targets take turns, ROUNDS rounds of one turn each, in a fresh random
# order every round (SEED=N repeats a run's orders), and the table shows each one's median
# round.
#
# Not a timed test: figures depend on the machine (this one: 2 cores shared by wrk, the
# server under test and dockerd). Exit status: 0 when every goal is met, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"100 1000"}
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
NGINX_WORKERS=${NGINX_WORKERS:-1}
PREFIX="dwtest-api-bench-$$"
SCOPE="dwtest.scope=$PREFIX"
TAG="dwtest-api-bench-sleeper:$$"
WORK=$(mktemp -d /tmp/dwtest-api-bench.XXXXXX)
BENCH=bench EXTRA_TOOLS="nginx:nginx-light"
. bench/wrk-lib.sh

# start_api BINARY LOG: a status-api on a free loopback port (read back from its log); sets
# STARTED_PID and STARTED_ADDR.
start_api() {
  local bin=$1 log=$2
  "${API_ENV[@]}" "$bin" --listen 127.0.0.1:0 --scope "$SCOPE" --log-format json >"$log" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  STARTED_ADDR=""
  for _ in $(seq 1 100); do
    STARTED_ADDR=$(grep -o '"addr":"[^"]*"' "$log" | head -1 | cut -d'"' -f4 || true)
    [ -n "$STARTED_ADDR" ] && break
    kill -0 "$STARTED_PID" 2>/dev/null || { cat "$log" >&2; fail "$bin exited"; }
    sleep 0.1
  done
  [ -n "$STARTED_ADDR" ] || { cat "$log" >&2; fail "$bin did not start"; }
  for _ in $(seq 1 150); do
    "$BIN/status-api" healthcheck --url "http://$STARTED_ADDR/readyz" 2>/dev/null && break
    sleep 0.2
  done
}
start_api "$BIN/status-api" "$WORK/api.log"
API_PID=$STARTED_PID API_ADDR=$STARTED_ADDR
BASE_ADDR=""
if [ -n "${BASELINE_API:-}" ]; then
  [ -x "$BASELINE_API" ] || fail "BASELINE_API=$BASELINE_API is not an executable"
  start_api "$BASELINE_API" "$WORK/base.log"
  BASE_PID=$STARTED_PID BASE_ADDR=$STARTED_ADDR
  log "baseline status-api $BASELINE_API (pid $BASE_PID) on $BASE_ADDR"
fi

# nginx, one worker, serving the files this script writes from status-api's answers.
NGINX_PORT=$(free_port)
mkdir -p "$WORK/www" "$WORK/nginx-tmp"
chmod 755 "$WORK" "$WORK/www"
cat >"$WORK/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx-tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $WORK/www;
    location = /containers { default_type application/json; try_files /containers.json =404; }
    location = /containers.gz {
      default_type application/json;
      add_header Content-Encoding gzip;
      try_files /containers.json.gz =404;
    }
  }
}
EOF
nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" -g 'daemon off; user root;' &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 1 50); do
  curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$WORK/nginx-error.log" >&2; fail "nginx exited"; }
  sleep 0.1
done
log "status-api (pid $API_PID) on $API_ADDR, nginx (pid $NGINX_PID, $NGINX_WORKERS worker) on 127.0.0.1:$NGINX_PORT"

# same_bytes: nginx's files become status-api's answers of this moment, plain and gzip as it
# sends them, before each of nginx's rounds. A copy taken once, before the rounds, had nginx
# serve a smaller body than status-api's for the whole run: status-api's answer grows while
# its sampling fills in every container's figures (at 1,000 containers that takes about two
# minutes at 8 stats calls a second), and at 1,000 the gzip answer is about one loopback
# segment (65,483 bytes), so a few hundred bytes decide whether TCP sends an answer in one
# segment or two, and how the kernel paces it (docs/status-api-performance.md).
declare -A BYTES
same_bytes() {
  curl -fsS -o "$WORK/www/containers.json.new" "http://$API_ADDR/containers" &&
    curl -fsS -H 'Accept-Encoding: gzip' -o "$WORK/www/containers.json.gz.new" "http://$API_ADDR/containers" ||
    fail "status-api did not answer"
  gzip -t <"$WORK/www/containers.json.gz.new" 2>/dev/null || fail "status-api's gzip answer is not gzip"
  chmod 644 "$WORK/www/containers.json.new" "$WORK/www/containers.json.gz.new"
  # A rename: nginx opens the file per request and never sees half of one.
  mv -f "$WORK/www/containers.json.new" "$WORK/www/containers.json"
  mv -f "$WORK/www/containers.json.gz.new" "$WORK/www/containers.json.gz"
  BYTES[plain-$N]+=" $(wc -c <"$WORK/www/containers.json")"
  BYTES[gzip-$N]+=" $(wc -c <"$WORK/www/containers.json.gz")"
}

# turn TARGET: one measured round of TARGET at the current N (see take_turns).
turn() {
  case $1 in
    api-plain) load "$1-$N" "http://$API_ADDR/containers" ;;
    api-gzip) load "$1-$N" "http://$API_ADDR/containers" -H 'Accept-Encoding: gzip' ;;
    nginx-plain) same_bytes && load "$1-$N" "http://127.0.0.1:$NGINX_PORT/containers" ;;
    nginx-gzip) same_bytes && load "$1-$N" "http://127.0.0.1:$NGINX_PORT/containers.gz" -H 'Accept-Encoding: gzip' ;;
    base-plain) load "$1-$N" "http://$BASE_ADDR/containers" ;;
    base-gzip) load "$1-$N" "http://$BASE_ADDR/containers" -H 'Accept-Encoding: gzip' ;;
    *) fail "no target $1" ;;
  esac
}

declare -A RSS_LINE
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

ROWS=()
ok=1
started=0
for N in $SIZES; do
  if [ "$N" -gt "$started" ]; then
    log "starting containers $((started + 1))..$N"
    seq $((started + 1)) "$N" | xargs -P 8 -I{} docker run -d --name "$PREFIX-{}" --label "$SCOPE" --network none "$TAG" >/dev/null ||
      fail "could not start $N containers (the shared engine may be too loaded for this many)"
    started=$N
  fi
  running=$(docker ps -q --filter "label=$SCOPE" --filter status=running | wc -l)
  [ "$running" -eq "$N" ] || fail "$running of $N containers running"
  # Wait until status-api lists all N, with their resource figures (a sampling round).
  for _ in $(seq 1 300); do
    [ "$(count "http://$API_ADDR/containers")" -eq "$N" ] && curl -fsS "http://$API_ADDR/containers" | grep -q '"sampled_at"' && break
    sleep 0.5
  done
  [ "$(count "http://$API_ADDR/containers")" -eq "$N" ] || fail "status-api does not list $N containers"
  if [ -n "$BASE_ADDR" ]; then
    for _ in $(seq 1 300); do
      [ "$(count "http://$BASE_ADDR/containers")" -eq "$N" ] && curl -fsS "http://$BASE_ADDR/containers" | grep -q '"sampled_at"' && break
      sleep 0.5
    done
  fi
  # The same bytes for nginx (again before each of its rounds: same_bytes).
  same_bytes
  [ "$(count "http://127.0.0.1:$NGINX_PORT/containers")" -eq "$N" ] || fail "nginx does not serve the $N containers"

  # A fresh order of the targets in every round (take_turns in bench/wrk-lib.sh).
  targets=(api-plain api-gzip nginx-plain nginx-gzip)
  [ -n "$BASE_ADDR" ] && targets+=(base-plain base-gzip)
  take_turns "$((SEED + N * 100))" " at $N containers" "${targets[@]}"
  [ "$(count "http://$API_ADDR/containers")" -eq "$N" ] || fail "status-api lost containers under load"
  rss=$(rss_kib "$API_PID" VmRSS)
  hwm=$(rss_kib "$API_PID" VmHWM)
  for form in plain gzip; do
    servers=(api)
    [ -n "$BASE_ADDR" ] && servers+=(base)
    for server in "${servers[@]}"; do
      a="$server-$form-$N" b="nginx-$form-$N"
      ar=$(median "${RPS[$a]}") br=$(median "${RPS[$b]}") ap=$(median "${P99[$a]}") bp=$(median "${P99[$b]}")
      log "$a rounds: req/s${RPS[$a]}; p99${P99[$a]}"
      log "$b rounds: req/s${RPS[$b]}; p99${P99[$b]}"
      r=$(awk -v a="$ar" -v b="$br" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      p=$(awk -v a="$ap" -v b="$bp" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 99) }')
      if [ "$server" = api ]; then
        verdict=$(awk -v r="$r" -v p="$p" -v e="${ERRS[$a]}" 'BEGIN { print (r >= 0.8 && p <= 1.5 && e == 0) ? "ok" : "MISSED" }')
        [ "$verdict" = ok ] || ok=0
        label=$N
      else
        verdict="(base)"
        label="$N base"
      fi
      # The median of the sizes nginx served (status-api's, taken before each nginx round).
      bytes=$(median "${BYTES[$form-$N]}")
      log "$form bytes at $N, before each nginx round:${BYTES[$form-$N]}"
      ROWS+=("$(printf '| %9s | %-5s | %8s | %10s | %9s | %9s | %10s | %9s | %9s | %7s | %6s |' \
        "$label" "$form" "$bytes" "$ar" "$ap" "${ERRS[$a]}" "$br" "$bp" "${r}x" "${p}x" "$verdict")")
    done
  done
  rss_mib=$(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')
  hwm_mib=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
  RSS_LINE[$N]="status-api RSS at $N containers after the load: $rss_mib MiB (peak since start $hwm_mib MiB)"
  if [ -n "$BASE_ADDR" ]; then
    RSS_LINE[$N]+="; baseline: $(awk -v k="$(rss_kib "$BASE_PID" VmRSS)" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
    RSS_LINE[$N]+=" (peak $(awk -v k="$(rss_kib "$BASE_PID" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }') MiB)"
  fi
  if [ "$N" -ge 1000 ] && awk -v h="$hwm" 'BEGIN { exit !(h > 20 * 1024) }'; then ok=0; RSS_LINE[$N]+=" — over the 20 MiB goal"; fi
done

echo
echo "GET /containers, status-api beside nginx ($NGINX_WORKERS worker) serving the same bytes from a file"
echo "wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of $DURATION per target taking turns in a random order (SEED=$SEED), median round shown; loopback;"
echo "$(nproc) cores shared by wrk, both servers, dockerd and whatever else runs on the machine; one run of this script"
echo "load average (1, 5, 15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg): other work on the machine shows here"
echo
printf '| %9s | %-5s | %8s | %10s | %9s | %9s | %10s | %9s | %9s | %7s | %6s |\n' \
  "N" "form" "bytes" "api req/s" "api p99" "api errs" "nginx r/s" "nginx p99" "req/s x" "p99 x" "goal"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' ------------ ------- ---------- ------------ ----------- ----------- ------------ ----------- ----------- --------- --------
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "p99 in ms. req/s x: status-api over nginx (goal >= 0.80); p99 x: status-api over nginx (goal <= 1.50);"
echo "api errs: non-2xx answers and socket errors over all rounds. Every round's figures are in the log above."
[ -z "$BASE_ADDR" ] || echo "\"N base\" rows: the baseline build $BASELINE_API, same containers, same rounds (no goal)."
for N in $SIZES; do echo "${RSS_LINE[$N]}"; done
[ "$ok" = 1 ] && echo "All goals met." || { echo "Some goals MISSED (see the goal column and RSS lines)."; exit 1; }
