#!/usr/bin/env bash
# Headless-browser test of status-api's page (issues 3 and 10): the real static status-api
# against the real engine, scoped by label to containers of its own, loaded in Debian's
# chromium in four situations, each checked in the rendered DOM and saved as a screenshot
# under target/screenshots/ (look at them):
#   1. audit mode        status-api-audit.png     denied container marked "DENIED · audit"
#   2. enforce mode      status-api-enforce.png   "DENIED", a killed one "killed by dockwarden"
#   3. refused policy    status-api-refused.png   the warning that an older policy is in force
#   4. unhealthy         status-api-unhealthy.png a detail page: Docker's unhealthy is red
#   5. fleet             status-api-fleet.png     three peered status-api (node column, node
#                        tiles, a drifted node flagged), status-api-fleet-unreachable.png
#                        (a stopped node's tile says UNREACHABLE)
# plus status-api-killed.png, the detail page of the killed container ("What dockwarden did").
# The controller's GET /decisions is played by a static file served on loopback (python3's
# http.server), holding decisions about these containers in the controller's format.
# Exits non-zero on any failure; removes what it made (containers and images named
# dwtest-api-browser-*), pass or fail. Installs chromium when absent.
set -euo pipefail
cd "$(dirname "$0")/.."

SHOT_DIR=target/screenshots
TAG=dwtest-api-browser-sleeper:$$
TAG_HC=dwtest-api-browser-healthy:$$
PREFIX="dwtest-api-browser-$$"
SCOPE="dwtest.scope=$PREFIX"
SECRET="dwtest-browser-secret-$$-$RANDOM"
WORK=$(mktemp -d /tmp/dwtest-api-browser.XXXXXX)
PIDS=()

log() { printf '[browser-test] %s\n' "$*"; }
fail() { printf '[browser-test] FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ids=$(docker ps -aq --filter "name=^/?$PREFIX-" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  docker rmi -f "$TAG" "$TAG_HC" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# 1. Chromium (Debian's package; fonts explicitly, recommends skipped). Idempotent.
if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends chromium fonts-liberation fonts-dejavu-core
fi
timeout 10 docker info >/dev/null 2>&1 || fail "no Docker Engine answers"

# 2. The binaries (static, as the image ships them) and two FROM-scratch images of our own:
#    the sleeper, and the sleeper with a healthcheck that passes (exec form: no shell).
bash scripts/build-static.sh
BIN=target/x86_64-unknown-linux-gnu/release
mkdir -p "$WORK/ctx"
cp "$BIN/dw-sleeper" "$WORK/ctx/"
printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$WORK/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" --label dwtest=1 "$WORK/ctx" >/dev/null
printf 'FROM %s\nHEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD ["/dw-sleeper", "0"]\n' "$TAG" >"$WORK/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG_HC" --label dwtest=1 "$WORK/ctx" >/dev/null

# 3. Containers in our scope.
run() { # name [docker run args...]
  local name=$1; shift
  docker run -d --name "$PREFIX-$name" --label "$SCOPE" "$@"
}
run web-1 --network none "$TAG" >/dev/null
run web-2 --network none -e "SECRET=$SECRET" --label 'note=<script>alert(1)</script>' "$TAG" >/dev/null
# Published on loopback (nothing listens inside; no traffic is sent) and EXPOSE-only.
run web-ports -p 127.0.0.1::80 --expose 9000 "$TAG" >/dev/null
run web-healthy --network none "$TAG_HC" >/dev/null
# Docker's healthcheck fails: a shell-form check in an image without a shell.
run web-sick --network none --health-cmd 'exit 0' --health-interval 1s --health-retries 1 "$TAG" >/dev/null
INTRUDER=$(run intruder --network none "$TAG")
GONE=$(run gone --network none "$TAG" 0)
run job --network none "$TAG" 0 >/dev/null
docker create --name "$PREFIX-spare" --label "$SCOPE" --network none "$TAG" >/dev/null

# 4. The controller's decisions, in its format: the intruder in audit (would have been
#    killed), "gone" killed in enforce mode.
mkdir -p "$WORK/ctl" "$WORK/policy"
sleep 1 # the kill comes after the start, as it would
now=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
cat >"$WORK/ctl/decisions" <<EOF
{"capacity":1000,"decisions":[
{"time":"$now","container":"$PREFIX-intruder","id":"$INTRUDER","image":"$TAG","verdict":"deny","rule":null,"reason":"no [[allow]] rule matches","action":"kill","result":"audit","latency_ms":3.1,"trigger":"start event"},
{"time":"$now","container":"$PREFIX-gone","id":"$GONE","image":"$TAG","verdict":"deny","rule":null,"reason":"no [[allow]] rule matches","action":"kill","result":"ok","latency_ms":12.3,"trigger":"start event"}
]}
EOF
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CTL_PORT=$(free_port)
python3 -m http.server "$CTL_PORT" --bind 127.0.0.1 --directory "$WORK/ctl" >"$WORK/ctl.log" 2>&1 &
PIDS+=($!)

policy() { # mode
  cat >"$WORK/policy/allowlist.toml.tmp" <<EOF
mode = "$1"
[[allow]]
name = "$PREFIX-web-*"
[[allow]]
name = "$PREFIX-job"
[[allow]]
name = "$PREFIX-spare"
EOF
  mv "$WORK/policy/allowlist.toml.tmp" "$WORK/policy/allowlist.toml"
}
policy audit

# 5. The real binary, on a free loopback port (read back from its log).
"$BIN/status-api" --listen 127.0.0.1:0 --scope "$SCOPE" --allowlist "$WORK/policy/allowlist.toml" \
  --controller-url "http://127.0.0.1:$CTL_PORT" --stats-interval 1 --log-format json >"$WORK/api.log" 2>&1 &
API_PID=$!
PIDS+=("$API_PID")
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(grep -o '"addr":"[^"]*"' "$WORK/api.log" | head -1 | cut -d'"' -f4 || true)
  [ -n "$ADDR" ] && break
  kill -0 "$API_PID" 2>/dev/null || { cat "$WORK/api.log"; fail "status-api exited"; }
  sleep 0.1
done
[ -n "$ADDR" ] || { cat "$WORK/api.log"; fail "no listening address in the log"; }
URL="http://$ADDR/containers"
log "status-api (pid $API_PID) on $ADDR"
for _ in $(seq 1 100); do
  "$BIN/status-api" healthcheck --url "http://$ADDR/readyz" 2>/dev/null && break
  sleep 0.2
done
"$BIN/status-api" healthcheck --url "http://$ADDR/readyz" || fail "status-api never synced with Docker"
# Two sampling rounds (CPU % needs two) and Docker's healthchecks settled.
for _ in $(seq 1 50); do
  curl -fsS "$URL" | grep -q '"health":"unhealthy"' && curl -fsS "$URL" | grep -q '"health":"healthy"' && break
  sleep 0.3
done
sleep 2

CHROME=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
  --disable-extensions --user-data-dir="$WORK/profile" --window-size=1500,1250)
mkdir -p "$SHOT_DIR"
# shot NAME URL: rendered DOM into $WORK/NAME.html (one row per line), screenshot NAME.png.
shot() {
  local name=$1 url=$2 png="$SHOT_DIR/status-api-$1.png"
  timeout 90 "${CHROME[@]}" --dump-dom "$url" >"$WORK/$name.dom" 2>>"$WORK/chromium.log" ||
    { tail -20 "$WORK/chromium.log"; fail "chromium --dump-dom $url failed"; }
  sed 's/<tr /\n<tr /g' "$WORK/$name.dom" >"$WORK/$name.html"
  rm -f "$png"
  timeout 90 "${CHROME[@]}" --screenshot="$png" "$url" >>"$WORK/chromium.log" 2>&1 ||
    { tail -20 "$WORK/chromium.log"; fail "chromium --screenshot $url failed"; }
  [ -s "$png" ] || fail "no screenshot $png"
  log "screenshot: $png"
}
row() { grep -F "data-name=\"$PREFIX-$2\"" "$WORK/$1.html" || true; }
has() { grep -q "$2" "$WORK/$1.dom" || fail "$1: $3"; }
hasnt() { if grep -q "$2" "$WORK/$1.dom"; then fail "$1: $3"; fi; }

# Audit mode.
shot audit "$URL"
has audit 'AUDIT mode' "no audit mode badge"
has audit 'table id="containers"' "no containers table"
for n in web-1 web-2 web-ports web-healthy web-sick intruder gone job spare; do
  [ -n "$(row audit "$n")" ] || fail "container $PREFIX-$n is not on the page"
done
row audit intruder | grep -q 'class="container audit"' || fail "the denied container is not marked (audit)"
row audit intruder | grep -q 'DENIED · audit' || fail "no audit badge on the denied container"
row audit intruder | grep -q 'would be killed' || fail "audit does not say it would be killed"
row audit gone | grep -q 'killed by dockwarden' || fail "the killed container is not shown as killed"
row audit gone | grep -q 'class="container"' || fail "the killed container is marked as a live alarm"
grep -q 'id="denied-live"[^>]*><b>1</b>' "$WORK/audit.dom" || fail "the denied tile does not count exactly the live one"
row audit web-sick | grep -q 'badge class-critical">unhealthy' || fail "unhealthy is not red"
row audit web-sick | grep -q 'class-healthy' && fail "an unhealthy container shows a healthy badge"
row audit web-healthy | grep -q 'badge class-healthy">healthy' || fail "a healthy healthcheck is not green"
row audit web-1 | grep -q 'badge class-running">running' || fail "no healthcheck should be 'running', not green"
row audit web-ports | grep -q '127.0.0.1:[0-9]* → 80/tcp' || fail "published port not shown as host → container"
row audit web-ports | grep -q '9000/tcp exposed only' || fail "EXPOSE-only port not marked"
row audit job | grep -q 'Exited (0)' || fail "job has no Docker-like status"
has audit 'What dockwarden did recently' "no recent actions"
hasnt audit "$SECRET" "a container's environment appears on the page"
hasnt audit '<script' "a script element on the page"

# Enforce mode.
policy enforce
for _ in $(seq 1 50); do curl -fsS -H 'Accept: text/html' "$URL" | grep -q 'ENFORCE mode' && break; sleep 0.2; done
shot enforce "$URL"
has enforce 'ENFORCE mode: denied containers are killed' "no enforce mode badge"
row enforce intruder | grep -q 'class="container denied"' || fail "the denied container is not marked (enforce)"
row enforce intruder | grep -q '>DENIED<' || fail "no DENIED badge in enforce mode"

# A refused policy: the older one stays, and the page says so.
printf 'mode = "enforce"\n[[allow]]\nnmae = "typo"\n' >"$WORK/policy/allowlist.toml"
for _ in $(seq 1 50); do curl -fsS -H 'Accept: text/html' "$URL" | grep -q 'policy-refused' && break; sleep 0.2; done
shot refused "$URL"
has refused 'The allowlist file on disk was refused' "no refused-policy warning"
has refused 'allowlist.toml:3' "the warning does not point at the line"
has refused 'ENFORCE mode' "the older policy in force is not shown"

# Detail pages: the unhealthy container, and the killed one with what dockwarden did.
shot unhealthy "http://$ADDR/containers/$PREFIX-web-sick"
has unhealthy 'class-critical">unhealthy' "the detail page shows no unhealthy badge"
has unhealthy 'healthcheck: unhealthy' "the detail page does not say why"
shot killed "http://$ADDR/containers/$GONE"
has killed 'What dockwarden did' "no decisions on the detail page"
has killed 'killed [0-9]* m\?s after start by dockwarden: no \[\[allow\]\] rule matches' "no sentence about the kill"
grep -q 'exit code</dt><dd>0</dd>' "$WORK/killed.dom" || fail "the killed container's exit code is not shown"
grep -q 'exit code</dt><dd>–</dd>' "$WORK/unhealthy.dom" || fail "a running container shows an exit code"

# A label holding markup is shown as text on the detail page, never as markup.
shot labels "http://$ADDR/containers/$PREFIX-web-2"
has labels 'note=&lt;script&gt;alert(1)&lt;/script&gt;' "the label is not shown escaped"
hasnt labels '<script' "a label became a script element"
hasnt labels "$SECRET" "a container's environment appears on its detail page"
rm -f "$SHOT_DIR/status-api-labels.png"

# 6. The fleet page (issue 20): three status-api processes peered by a list, each scoped to
#    "its node's" containers: node a is the one above (same scope, policy and decisions),
#    b and c have a container of their own; c enforces another policy (drift).
FLEET_B="dwtest.fleet=$PREFIX-b"
FLEET_C="dwtest.fleet=$PREFIX-c"
# Not in node a's scope (no "$SCOPE" label): each is seen by its own node only.
docker run -d --name "$PREFIX-node-b-web" --network none --label "$FLEET_B" "$TAG" >/dev/null
docker run -d --name "$PREFIX-node-c-web" --network none --label "$FLEET_C" "$TAG" >/dev/null
policy enforce
mkdir -p "$WORK/policy-c"
printf 'mode = "audit"\n[[allow]]\nname = "%s-node-*"\n' "$PREFIX" >"$WORK/policy-c/allowlist.toml"
PA=$(free_port) PB=$(free_port) PC=$(free_port)
PEERS="127.0.0.1:$PA,127.0.0.1:$PB,127.0.0.1:$PC"
fleet_api() { # NAME PORT SCOPE POLICY [args...]
  local name=$1 port=$2 scope=$3 pol=$4; shift 4
  "$BIN/status-api" --listen "127.0.0.1:$port" --scope "$scope" --allowlist "$pol" --peers "$PEERS" \
    --node-name "$PREFIX-$name" --fleet-interval 1 --peer-timeout 1 "$@" >"$WORK/fleet-$name.log" 2>&1 &
  PIDS+=($!)
}
fleet_api node-a "$PA" "$SCOPE" "$WORK/policy/allowlist.toml" --controller-url "http://127.0.0.1:$CTL_PORT"
fleet_api node-b "$PB" "$FLEET_B" "$WORK/policy/allowlist.toml"
fleet_api node-c "$PC" "$FLEET_C" "$WORK/policy-c/allowlist.toml"
FLEET_URL="http://127.0.0.1:$PA/fleet"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PA/fleet/nodes" 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)
sys.exit(0 if v["reachable"] == 3 and v["drifted"] == 1 and all(n["containers"] for n in v["nodes"]) else 1)' 2>/dev/null && break
  sleep 0.3
done
curl -fsS "http://127.0.0.1:$PA/fleet/nodes" | python3 -c '
import json, sys
v = json.load(sys.stdin)
assert v["reachable"] == 3 and v["drifted"] == 1, v
for n in v["nodes"]:
    print("[browser-test]   node %s reachable=%s drift=%s containers=%s" % (n["node"], n["reachable"], n["drift"], n["containers"]))' ||
  { tail -5 "$WORK"/fleet-*.log; fail "the three fleet nodes did not come up (3 reachable, 1 drifted)"; }
shot fleet "$FLEET_URL"
grep -q '<th>Node</th>' "$WORK/fleet.dom" || fail "fleet: no node column"
for n in a b c; do
  grep -q "id=\"node-$PREFIX-node-$n\"" "$WORK/fleet.dom" || fail "fleet: no tile for node $n"
done
sed 's/<div class="tile/\n<div class="tile/g' "$WORK/fleet.dom" >"$WORK/fleet-tiles.html"
grep -F "id=\"node-$PREFIX-node-c\"" "$WORK/fleet-tiles.html" | grep -q 'class="tile drift"' || fail "fleet: node c's tile is not flagged as drifted"
grep -F "id=\"node-$PREFIX-node-c\"" "$WORK/fleet-tiles.html" | grep -q 'POLICY DRIFT' || fail "fleet: node c's tile does not say POLICY DRIFT"
grep -F "id=\"node-$PREFIX-node-a\"" "$WORK/fleet-tiles.html" | grep -q 'POLICY DRIFT' && fail "fleet: node a flagged as drifted"
has fleet 'id="drift"' "fleet: no drift banner"
grep -F "data-name=\"$PREFIX-node-b-web\"" "$WORK/fleet.html" | grep -q "data-node=\"$PREFIX-node-b\"" || fail "fleet: node b's container is not on the page with its node"
grep -F "data-name=\"$PREFIX-intruder\"" "$WORK/fleet.html" | grep -q "data-node=\"$PREFIX-node-a\"" || fail "fleet: node a's container is not on the page with its node"
[ "$(grep -c "data-name=\"$PREFIX-node-b-web\"" "$WORK/fleet.html")" = 1 ] || fail "fleet: node b's container is not listed exactly once"
has fleet "$PREFIX-gone" "fleet: node a's decisions are not among the recent ones"
hasnt fleet "$SECRET" "fleet: a container's environment appears on the page"
hasnt fleet '<script' "fleet: a script element on the page"
# The node filter.
shot fleet-node-b "$FLEET_URL?node=$PREFIX-node-b"
grep -c '<tr class="container' "$WORK/fleet-node-b.html" | grep -qx 1 || fail "fleet: the node filter does not show node b's one container"
rm -f "$SHOT_DIR/status-api-fleet-node-b.png"
# Node b stops: its tile says UNREACHABLE.
kill "${PIDS[-2]}"
for _ in $(seq 1 50); do curl -fsS -H 'Accept: text/html' "$FLEET_URL" | grep -q UNREACHABLE && break; sleep 0.2; done
shot fleet-unreachable "$FLEET_URL"
grep -F "id=\"node-$PREFIX-node-b\"" "$WORK/fleet-unreachable.dom" >/dev/null || fail "fleet: node b vanished instead of being unreachable"
sed 's/<div class="tile/\n<div class="tile/g' "$WORK/fleet-unreachable.dom" | grep -F "id=\"node-$PREFIX-node-b\"" |
  grep -q 'UNREACHABLE' || fail "fleet: node b's tile does not say UNREACHABLE"
sed 's/<div class="tile/\n<div class="tile/g' "$WORK/fleet-unreachable.dom" | grep -F "id=\"node-$PREFIX-node-a\"" |
  grep -q 'POLICY DRIFT' && fail "fleet: node b going down turned the majority (node a flagged as drifted)"

log "PASS: audit, enforce, refused policy, unhealthy and killed pages, and the fleet page (node column, tiles, drift, unreachable) rendered and checked; screenshots in $SHOT_DIR"
