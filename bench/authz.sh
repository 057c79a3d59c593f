#!/usr/bin/env bash
# What the authorization plugin costs, measured in one run on ONE private engine, beside
# the floor and, optionally, an earlier build:
#   off     no plugin
#   floor   a minimal allow-all plugin (testkit's dw-floor-plugin): what the engine's plugin
#           round trip itself costs
#   dw      this build's controller as the plugin, judging identity and host power
#           (profile baseline) under a policy that allows what the bench runs
#   signed  the same with a signed_by rule: the image's signature verified once, then
#           answered from the cache (issues 17 and 18)
#   base    BENCH_BASELINE=PATH: an earlier build's state-controller, as `dw`
# Per mode: `docker run --rm` end to end (median, p90), POST /containers/create (p50, p99:
# the request the plugin judges hardest) and GET /containers/json (p50, p99: answered at once).
# The modes alternate in blocks so drift hits all alike. Goals: what dw adds over `off` is at
# most 1.2x what the floor adds (run p90, create p99, GET p99); a create under signed_by
# with a cached verification within 10 % of one without (p99). A first verification is
# printed beside a registry round trip (GET of the signature manifest).
#
# The private engine follows ECOSYSTEM §11 (own network namespace, data root, socket and
# config file); the image is the sleeper pushed to a loopback registry of the bench's own
# (reached from the engine's namespace by dw-bridge) and signed by scripts/lib/cosign_sign.py.
# Everything is removed on exit.
#
# Settings: BENCH_RUNS=20 (docker runs per mode), BENCH_GETS=2000, BENCH_CREATES=300,
#           BENCH_BLOCKS=2 (rounds over all modes), BENCH_BASELINE (see above).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-20}
GETS=${BENCH_GETS:-2000}
CREATES=${BENCH_CREATES:-300}
BLOCKS=${BENCH_BLOCKS:-2}
BASELINE=${BENCH_BASELINE:-}
ID="dwtest-bench-authz-$$"
P="/tmp/$ID"
HOST="unix://$P/docker.sock"
REL=target/x86_64-unknown-linux-gnu/release
SLEEPER=dwtest-sleeper:latest
PLUGINS=/run/docker/plugins
PIDS=()

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  if [ -n "${DOCKERD_PID:-}" ]; then
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DOCKERD_PID" 2>/dev/null
  fi
  grep -o " $P[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$P" "$PLUGINS/$ID"-*.sock
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start() { "$@" & PIDS+=($!); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "bench: building static release binaries" >&2
bash scripts/build-static.sh >&2
PY=$(bash scripts/lib/sign-venv.sh)
mkdir -p "$P/keys" "$PLUGINS"
if ! docker image inspect "$SLEEPER" >/dev/null 2>&1; then
  mkdir -p "$P/ctx" && cp "$REL/dw-sleeper" "$P/ctx/"
  printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$P/ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$SLEEPER" --label dwtest=1 "$P/ctx" >/dev/null
fi
docker save "$SLEEPER" -o "$P/sleeper.tar"

# A registry of the bench's own, and a key pair.
RPORT=$(free_port)
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\nlog:\n  level: warn\n' \
  "$P/registry" "$RPORT" >"$P/registry.yml"
start docker-registry serve "$P/registry.yml" >"$P/registry.log" 2>&1
"$PY" scripts/lib/cosign_sign.py keygen "$P/keys/ci"
IMAGE="127.0.0.1:$RPORT/$ID/sleeper:1"

# The plugins: the floor, this build (unsigned and signed_by policies), maybe a baseline.
start "$REL/dw-floor-plugin" "$PLUGINS/$ID-floor.sock"
printf '[[allow]]\nname = "*"\n' >"$P/allow.toml"
printf '[[allow]]\nname = "*"\nsigned_by = ["keys/ci.pub"]\n' >"$P/signed.toml"
declare -A MPORT
controller() { # mode binary policy
  MPORT[$1]=$(free_port)
  start "$2" --allowlist "$3" --docker-host "$HOST" --authz-socket "$PLUGINS/$ID-$1.sock" \
    --metrics-listen "127.0.0.1:${MPORT[$1]}" >"$P/$1.log" 2>&1
}
controller dw "$REL/state-controller" "$P/allow.toml"
controller signed "$REL/state-controller" "$P/signed.toml"
MODES=(off floor dw signed)
if [ -n "$BASELINE" ]; then
  controller base "$BASELINE" "$P/allow.toml"
  MODES+=(base)
fi
for m in "${MODES[@]}"; do
  [ "$m" = off ] && continue
  for _ in $(seq 1 100); do [ -S "$PLUGINS/$ID-$m.sock" ] && break; sleep 0.1; done
done

# Authorization requests a plugin has answered so far.
asked() {
  case "$1" in
    off) echo 0 ;;
    floor) curl -s --unix-socket "$PLUGINS/$ID-floor.sock" http://plugin/count ;;
    *) curl -s "http://127.0.0.1:${MPORT[$1]}/metrics" | awk '/^dockwarden_authz_requests_total/ {n += $2} END {print n + 0}' ;;
  esac
}
# Switches the engine's authorization plugin (SIGHUP reload of its config file) and waits
# until requests reach the new one.
mode() {
  if [ "$1" = off ]; then echo '{"authorization-plugins": []}' >"$P/daemon.json"
  else echo "{\"authorization-plugins\": [\"$ID-$1\"]}" >"$P/daemon.json"; fi
  [ -n "${DOCKERD_PID:-}" ] || return 0
  kill -HUP "$DOCKERD_PID"
  for _ in $(seq 1 100); do
    sleep 0.1
    local before; before=$(asked "$1")
    DOCKER_HOST=$HOST docker version >/dev/null 2>&1 || continue
    local after; after=$(asked "$1")
    if [ "$1" = off ] || [ "$after" -gt "$before" ]; then return 0; fi
  done
  echo "bench: the engine did not switch to the plugin $1" >&2; exit 1
}
mode off
setsid unshare --net dockerd --config-file "$P/daemon.json" --data-root "$P/data" --exec-root "$P/exec" \
  --pidfile "$P/docker.pid" -H "$HOST" --bridge=none --iptables=false --ip-masq=false \
  --containerd-namespace "$ID" --containerd-plugins-namespace "$ID-p" >"$P/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 1 300); do DOCKER_HOST=$HOST docker version >/dev/null 2>&1 && break; sleep 0.2; done
DOCKER_HOST=$HOST docker load -q -i "$P/sleeper.tar" >/dev/null

# The engine reaches the registry at the same address (a forwarder in its namespace), pushes
# the image (it gets its repo digest) and the signer signs that digest.
NETNS="--net=/proc/$(cat "$P/docker.pid")/ns/net"
nsenter "$NETNS" ip link set lo up
start "$REL/dw-bridge" "unix:$P/reach.sock" "tcp:127.0.0.1:$RPORT"
for _ in $(seq 1 50); do [ -S "$P/reach.sock" ] && break; sleep 0.1; done
start nsenter "$NETNS" "$REL/dw-bridge" "tcp:127.0.0.1:$RPORT" "unix:$P/reach.sock"
sleep 0.3
DOCKER_HOST=$HOST docker tag "$SLEEPER" "$IMAGE"
DOCKER_HOST=$HOST docker push -q "$IMAGE" >/dev/null
DIGEST=$(DOCKER_HOST=$HOST docker image inspect -f '{{range .RepoDigests}}{{.}}{{end}}' "$IMAGE")
"$PY" scripts/lib/cosign_sign.py sign --key "$P/keys/ci.key" "$DIGEST"

run_ms() {
  local t0 t1; t0=$(date +%s%N)
  DOCKER_HOST=$HOST docker run --rm --network none "$IMAGE" 0 >/dev/null
  t1=$(date +%s%N); echo $(((t1 - t0) / 1000)) | awk '{printf "%.1f\n", $1/1000}'
}
# Timed requests over one keep-alive connection; prints one latency per line, in ms.
#   api get N          GET /containers/json
#   api create N TAG   POST /containers/create (removed again, untimed)
api() {
  python3 - "$P/docker.sock" "$@" "$IMAGE" <<'PY'
import http.client, json, socket, sys, time
class C(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker"); self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); self.sock.connect(self.path)
sock, what, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
image = sys.argv[-1]
c = C(sock)
body = json.dumps({"Image": image, "HostConfig": {"NetworkMode": "none"}})
for i in range(n):
    t0 = time.perf_counter_ns()
    if what == "get":
        c.request("GET", "/containers/json?all=1"); r = c.getresponse(); r.read()
        assert r.status == 200, r.status
    else:
        c.request("POST", "/containers/create", body, {"Content-Type": "application/json"})
        r = c.getresponse(); out = r.read()
        assert r.status == 201, (r.status, out)
    print("%.3f" % ((time.perf_counter_ns() - t0) / 1e6))
    if what == "create":
        c.request("DELETE", "/containers/%s?force=1" % json.loads(out)["Id"]); c.getresponse().read()
PY
}

# A few containers for the list to return; warm-ups in each mode (the signed plugin's
# first create verifies the signature: timed apart, cold).
for i in 1 2 3 4 5; do DOCKER_HOST=$HOST docker create --name "bench-$i" --network none "$IMAGE" >/dev/null; done
mode signed
first_verification=$(api create 1)
sig_manifest="http://127.0.0.1:$RPORT/v2/$ID/sleeper/manifests/sha256-${DIGEST##*sha256:}.sig"
round_trip=$(python3 - "$sig_manifest" <<'PY'
import sys, time, urllib.request
ts = []
for _ in range(20):
    t0 = time.perf_counter_ns()
    req = urllib.request.Request(sys.argv[1], headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    urllib.request.urlopen(req).read()
    ts.append((time.perf_counter_ns() - t0) / 1e6)
ts.sort(); print("%.2f" % ts[len(ts) // 2])
PY
)
for m in "${MODES[@]}"; do mode "$m"; run_ms >/dev/null; api get 100 >/dev/null; api create 10 >/dev/null; done

per_runs=$(((RUNS + BLOCKS - 1) / BLOCKS))
per_gets=$(((GETS + BLOCKS - 1) / BLOCKS))
per_creates=$(((CREATES + BLOCKS - 1) / BLOCKS))
for m in "${MODES[@]}"; do : >"$P/run-$m"; : >"$P/get-$m"; : >"$P/create-$m"; done
for b in $(seq 1 "$BLOCKS"); do
  order=("${MODES[@]}")
  # Every other block in reverse, so that no mode always follows the same one.
  if [ $((b % 2)) = 0 ]; then mapfile -t order < <(printf '%s\n' "${MODES[@]}" | tac); fi
  for m in "${order[@]}"; do
    mode "$m"
    for _ in $(seq 1 "$per_runs"); do run_ms >>"$P/run-$m"; done
    api create "$per_creates" >>"$P/create-$m"
    api get "$per_gets" >>"$P/get-$m"
  done
done
refused=$(cat "$P"/dw.log "$P"/signed.log | grep -c 'result=refused' || true)

q() { sort -n "$1" | awk -v q="$2" '{a[NR]=$1} END {i=int(NR*q+0.999999); if(i<1)i=1; if(i>NR)i=NR; printf "%.2f", a[i]}'; }
printf '\nauthorization plugin cost, one private engine (Docker %s), per mode %s docker runs, %s creates, %s GETs; load %s\n\n' \
  "$(DOCKER_HOST=$HOST docker version --format '{{.Server.Version}}')" "$(wc -l <"$P/run-dw")" \
  "$(wc -l <"$P/create-dw")" "$(wc -l <"$P/get-dw")" "$(cut -d' ' -f1-3 /proc/loadavg)"
head="| measure |"; sep="|:--|"
for m in "${MODES[@]}"; do head+=" $m |"; sep+="--:|"; done
printf '%s added by floor | added by dw | dw/floor |\n%s--:|--:|--:|\n' "$head" "$sep"
declare -A VAL
for s in "docker run --rm, median:run:0.5" "docker run --rm, p90:run:0.9" "POST create, p50:create:0.5" \
  "POST create, p99:create:0.99" "GET /containers/json, p50:get:0.5" "GET /containers/json, p99:get:0.99"; do
  IFS=: read -r label f quant <<<"$s"
  row="| $label |"
  for m in "${MODES[@]}"; do VAL[$m]=$(q "$P/$f-$m" "$quant"); row+=" ${VAL[$m]} ms |"; done
  added=$(awk -v a="${VAL[off]}" -v fl="${VAL[floor]}" -v d="${VAL[dw]}" 'BEGIN {
    fa = fl - a; da = d - a; r = (fa > 0.005) ? sprintf("%.2fx", da / fa) : "n/a";
    printf "%+.2f ms | %+.2f ms | %s", fa, da, r }')
  echo "$row $added |"
  declare "Q_${f}_${quant/./_}_dw=${VAL[dw]}" "Q_${f}_${quant/./_}_off=${VAL[off]}" \
    "Q_${f}_${quant/./_}_floor=${VAL[floor]}" "Q_${f}_${quant/./_}_signed=${VAL[signed]}"
done
printf '\nfirst create under signed_by (cold cache: verifies the signature): %s ms; one registry round trip (GET of the signature manifest, median of 20): %s ms\n' \
  "$first_verification" "$round_trip"
printf 'requests refused by the plugins during the run: %s (the policies allow everything signed)\n\n' "$refused"

verdict() { awk -v d="$1" -v f="$2" -v a="$3" -v lim="$4" -v l="$5" 'BEGIN {
  fa = f - a; da = d - a; ok = (da <= lim * fa) || (da <= 0.05);
  printf "%s %s: dw adds %+.2f ms, the floor %+.2f ms (limit %.1fx)\n", ok ? "PASS" : "MISS", l, da, fa, lim }'; }
verdict "$Q_run_0_9_dw" "$Q_run_0_9_floor" "$Q_run_0_9_off" 1.2 "docker run p90"
verdict "$Q_create_0_99_dw" "$Q_create_0_99_floor" "$Q_create_0_99_off" 1.2 "create p99"
verdict "$Q_get_0_99_dw" "$Q_get_0_99_floor" "$Q_get_0_99_off" 1.2 "GET p99"
awk -v s="$Q_create_0_99_signed" -v d="$Q_create_0_99_dw" 'BEGIN {
  printf "%s create p99 with a cached signed_by verification: %.2f ms vs %.2f ms without (limit +10%%)\n", (s <= d * 1.1) ? "PASS" : "MISS", s, d }'
