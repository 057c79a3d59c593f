#!/usr/bin/env bash
# What the authorization plugin costs, measured in one run on ONE private engine, with and
# without the plugin (switched by a SIGHUP reload of the engine's authorization-plugins):
#   - `docker run --rm` end to end (create, start, wait, remove), median and p90 over runs;
#   - GET /containers/json over the engine's socket, p50 and p99 over many requests.
# The modes alternate in blocks (off, on, on, off, ...) so drift hits both alike. Goals
# (issue 9): docker run +5 % at most, GET p99 +1 ms at most.
#
# The private engine follows ECOSYSTEM §11 (own network namespace, data root, socket and
# config file); the plugin is the controller built by scripts/build-static.sh, allowing
# everything (so both modes run the same containers). Everything is removed on exit.
#
# Settings: BENCH_RUNS=20 (docker runs per mode), BENCH_GETS=2000 (GETs per mode),
#           BENCH_BLOCKS=4 (alternating blocks).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-20}
GETS=${BENCH_GETS:-2000}
BLOCKS=${BENCH_BLOCKS:-4}
ID="dwtest-bench-authz-$$"
P="/tmp/$ID"
NAME="$ID"
PLUGIN_SOCK="/run/docker/plugins/$NAME.sock"
HOST="unix://$P/docker.sock"
REL=target/x86_64-unknown-linux-gnu/release
SLEEPER=dwtest-sleeper:latest

cleanup() {
  set +e
  [ -n "${CTRL_PID:-}" ] && kill "$CTRL_PID" 2>/dev/null
  if [ -n "${DOCKERD_PID:-}" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
  fi
  grep -o " $P[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$P" "$PLUGIN_SOCK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building static release binaries" >&2
bash scripts/build-static.sh >&2
mkdir -p "$P" /run/docker/plugins
if ! docker image inspect "$SLEEPER" >/dev/null 2>&1; then
  mkdir -p "$P/ctx" && cp "$REL/dw-sleeper" "$P/ctx/"
  printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$P/ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$SLEEPER" --label dwtest=1 "$P/ctx" >/dev/null
fi
docker save "$SLEEPER" -o "$P/sleeper.tar"

printf '[[allow]]\nname = "*"\n' >"$P/allow.toml"
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$REL/state-controller" --allowlist "$P/allow.toml" --docker-host "$HOST" \
  --authz-socket "$PLUGIN_SOCK" --metrics-listen "127.0.0.1:$MPORT" >"$P/controller.log" 2>&1 &
CTRL_PID=$!
for _ in $(seq 1 100); do [ -S "$PLUGIN_SOCK" ] && break; sleep 0.1; done

# Requests the plugin has answered so far (its own metric).
asked() {
  curl -s "http://127.0.0.1:$MPORT/metrics" | awk '/^dockwarden_authz_requests_total/ {n += $2} END {print n + 0}'
}
mode() { # off|on: the engine's authorization plugins, reloaded with SIGHUP (docker info does
  # not show a reload's plugins: check that requests reach the plugin, or do not)
  if [ "$1" = on ]; then echo "{\"authorization-plugins\": [\"$NAME\"]}" >"$P/daemon.json"
  else echo '{"authorization-plugins": []}' >"$P/daemon.json"; fi
  [ -n "${DOCKERD_PID:-}" ] || return 0
  kill -HUP "$DOCKERD_PID"
  for _ in $(seq 1 100); do
    sleep 0.1
    local before; before=$(asked)
    DOCKER_HOST=$HOST docker version >/dev/null 2>&1 || continue
    local after; after=$(asked)
    if [ "$1" = on ] && [ "$after" -gt "$before" ]; then return 0; fi
    if [ "$1" = off ] && [ "$after" -eq "$before" ]; then return 0; fi
  done
  echo "bench: the engine did not switch the plugin $1" >&2; exit 1
}
mode off
setsid unshare --net dockerd --config-file "$P/daemon.json" --data-root "$P/data" --exec-root "$P/exec" \
  --pidfile "$P/docker.pid" -H "$HOST" --bridge=none --iptables=false --ip-masq=false \
  --containerd-namespace "$ID" --containerd-plugins-namespace "$ID-p" >"$P/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 300); do DOCKER_HOST=$HOST docker version >/dev/null 2>&1 && break; sleep 0.2; done
DOCKER_HOST=$HOST docker load -q -i "$P/sleeper.tar" >/dev/null

# One docker run, end to end, in ms.
run_ms() {
  local t0 t1; t0=$(date +%s%N)
  DOCKER_HOST=$HOST docker run --rm --network none "$SLEEPER" 0 >/dev/null
  t1=$(date +%s%N); echo $(((t1 - t0) / 1000)) | awk '{printf "%.1f\n", $1/1000}'
}
# GETs over one keep-alive connection; prints one latency per line, in ms.
gets_ms() {
  python3 - "$P/docker.sock" "$1" <<'PY'
import http.client, socket, sys, time
class C(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker"); self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); self.sock.connect(self.path)
c = C(sys.argv[1])
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter_ns()
    c.request("GET", "/containers/json?all=1"); r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    print("%.3f" % ((time.perf_counter_ns() - t0) / 1e6))
PY
}

# A few containers for the list to return, and a warm-up in each mode.
for i in 1 2 3 4 5; do DOCKER_HOST=$HOST docker create --name "bench-$i" --network none "$SLEEPER" >/dev/null; done
for m in on off; do mode "$m"; run_ms >/dev/null; gets_ms 200 >/dev/null; done

per_block_runs=$(((RUNS + BLOCKS / 2 - 1) / (BLOCKS / 2)))
per_block_gets=$(((GETS + BLOCKS / 2 - 1) / (BLOCKS / 2)))
: >"$P/run-off"; : >"$P/run-on"; : >"$P/get-off"; : >"$P/get-on"
order=(off on on off off on on off off on on off)
for b in $(seq 0 $((BLOCKS - 1))); do
  m=${order[$b]}
  mode "$m"
  for _ in $(seq 1 "$per_block_runs"); do run_ms >>"$P/run-$m"; done
  gets_ms "$per_block_gets" >>"$P/get-$m"
done
refused=$(grep -c 'result=refused' "$P/controller.log" || true)

q() { sort -n "$1" | awk -v q="$2" '{a[NR]=$1} END {i=int(NR*q+0.999999); if(i<1)i=1; if(i>NR)i=NR; printf "%.2f", a[i]}'; }
printf '\nauthorization plugin cost, one private engine (Docker %s), %s docker runs and %s GETs per mode, load %s\n\n' \
  "$(DOCKER_HOST=$HOST docker version --format '{{.Server.Version}}')" "$(wc -l <"$P/run-on")" "$(wc -l <"$P/get-on")" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| measure | without plugin | with plugin | added |\n|:--|--:|--:|--:|\n'
for s in "docker run --rm, median:run:0.5" "docker run --rm, p90:run:0.9" "GET /containers/json, p50:get:0.5" "GET /containers/json, p99:get:0.99"; do
  IFS=: read -r label f quant <<<"$s"
  off=$(q "$P/$f-off" "$quant"); on=$(q "$P/$f-on" "$quant")
  awk -v l="$label" -v a="$off" -v b="$on" 'BEGIN {printf "| %s | %.2f ms | %.2f ms | %+.2f ms (%+.1f%%) |\n", l, a, b, b-a, (b-a)/a*100}'
done
printf '\nrequests refused by the plugin during the run: %s (the policy allows everything)\n' "$refused"
