#!/usr/bin/env bash
# End-to-end check of the deployment (issue 4, acceptance 1 and 2): does on this machine what
# the README's "Run it" tells a user, and checks what the user should then see.
#
#   1. bash scripts/build-static.sh; docker-compose up -d --build   (the no-registry image path)
#   2. both services healthy; the image is under 25 MB
#   3. GET /containers as JSON and as HTML (Accept: text/html)
#   4. shipped policy is audit: a denied container is logged ("would kill") and left running
#   5. edit config/allowlist.toml to mode = "enforce": the running denied container is killed,
#      a new denied one too, each with its decision line in `docker-compose logs state-controller`
#   6. edit it again to allow a name: the container that was denied now lives
#   7. docker-compose down, and nothing is left behind
#
# Differences from a user's run, all for sharing this engine with other tests: a unique project
# name (dwtest-e2e-PID), a free host port instead of 8080, a dwtest-* image tag, a copy of the
# config directory (the repository's file is never edited), and DOCKWARDEN_SCOPE set to a
# label only this run's containers carry, so the controller governs nothing else here.
# Everything it creates is removed on exit, pass or fail. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

ID=$$
export COMPOSE_PROJECT_NAME="dwtest-e2e-$ID"
# A repository path ending in /dockwarden, so that the shipped rule image = "*/dockwarden:*"
# applies to it as it does to the default dockwarden:local.
export DOCKWARDEN_IMAGE="dwtest-e2e-$ID/dockwarden:local"
export DOCKWARDEN_SCOPE="dwtest.scope=e2e-$ID"
SLEEPER="dwtest-e2e-$ID-sleeper:local"
C_DENIED="dwtest-e2e-$ID-denied"   # started under audit, killed when enforce is switched on
C_LATE="dwtest-e2e-$ID-late"       # started under enforce: killed at once
C_OK="dwtest-e2e-$ID-ok"           # denied, then allowed by a policy edit: lives
TMP=$(mktemp -d "/tmp/dwtest-e2e-$ID.XXXXXX")
export DOCKWARDEN_CONFIG_DIR="$TMP/config"
MAX_IMAGE_BYTES=25000000           # 25 MB, as `docker images` counts

T0=$(date +%s%N)
log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[e2e %4d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    log "failed (rc=$rc); last logs:"
    docker-compose logs --no-color --tail=60 2>/dev/null | sed 's/^/    /'
  fi
  docker-compose down --remove-orphans -t 5 >/dev/null 2>&1
  docker rm -f "$C_DENIED" "$C_LATE" "$C_OK" >/dev/null 2>&1
  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  docker network rm "${COMPOSE_PROJECT_NAME}_default" >/dev/null 2>&1
  docker rmi -f "$DOCKWARDEN_IMAGE" "$SLEEPER" >/dev/null 2>&1
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v docker-compose >/dev/null || fail "docker-compose is not installed"
docker info >/dev/null 2>&1 || fail "no Docker Engine answers"

# wait_for SECONDS WHAT CMD...: retries CMD every 0.25 s until it succeeds or time runs out.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${secs}s waiting for: $what"
    sleep 0.25
  done
  log "ok: $what"
}
state() { docker inspect -f '{{.State.Status}}' "$1" 2>/dev/null; }
is_state() { [ "$(state "$1")" = "$2" ]; }
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$(docker-compose ps -q "$1")" 2>/dev/null)" = healthy ]; }
controller_logs() { docker-compose logs --no-color state-controller 2>/dev/null; }
# filter PATTERN...: the stdin lines holding every PATTERN; KEY=VALUE matches the field with
# or without quotes (key=value, key="value"), anything else is a plain substring.
filter() {
  local lines; lines=$(cat)
  for p in "$@"; do
    if [[ $p =~ ^([a-z_]+)=([A-Za-z0-9_.-]+)$ ]]; then
      lines=$(grep -E -- "(^| )${BASH_REMATCH[1]}=\"?${BASH_REMATCH[2]}(\"| |$)" <<<"$lines") || return 1
    else
      lines=$(grep -F -- "$p" <<<"$lines") || return 1
    fi
  done
  printf '%s\n' "$lines"
}
# has_decision NAME PATTERN...: a decision line about container NAME holding every PATTERN
has_decision() { local name=$1; shift; controller_logs | grep ' decision ' | filter "container=$name" "$@" >/dev/null; }
show_decision() { controller_logs | grep ' decision ' | filter "container=$1" | tail -n "${2:-1}" | sed 's/^/    /'; }
# (--network none: the fixture needs no network, and the default bridge is shared state)
run_sleeper() { docker run -d --network none --name "$1" --label "$DOCKWARDEN_SCOPE" "$SLEEPER" >/dev/null; }
# reloaded_with PATTERN...: a "policy reloaded" line of the controller holding every PATTERN
reloaded_with() { controller_logs | grep 'policy reloaded' | filter "$@" >/dev/null; }
# edit_policy: replaces allowlist.toml by rename, as editors and `sed -i` do
edit_policy() { cp "$POLICY" "$POLICY.new" && "$@" "$POLICY.new" && mv "$POLICY.new" "$POLICY"; }
add_rule() { printf '\n# added by the e2e test\n[[allow]]\nname = "%s"\n' "$C_OK" >>"$1"; }

# --- 1. what the README says: build the static binaries, then compose builds and starts -------
log "README step: bash scripts/build-static.sh"
bash scripts/build-static.sh
for b in state-controller status-api dw-sleeper; do
  [ -x "target/x86_64-unknown-linux-gnu/release/$b" ] || fail "static binary $b missing"
done
cp -r config "$DOCKWARDEN_CONFIG_DIR"
POLICY="$DOCKWARDEN_CONFIG_DIR/allowlist.toml"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])')
export DOCKWARDEN_API_PORT=$PORT
log "README step: docker-compose up -d --build   (project $COMPOSE_PROJECT_NAME, port $PORT, scope $DOCKWARDEN_SCOPE)"
docker-compose up -d --build >"$TMP/up.log" 2>&1 || { sed 's/^/    /' "$TMP/up.log"; fail "docker-compose up -d --build"; }
grep -E '^(Step|Successfully|Creating)' "$TMP/up.log" | sed 's/^/    /'

# Safety first: this engine is shared; the controller must govern only this run's label.
SC=$(docker-compose ps -q state-controller)
docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$SC" | grep -qxF "DOCKWARDEN_SCOPE=$DOCKWARDEN_SCOPE" \
  || fail "the controller did not get DOCKWARDEN_SCOPE; refusing to go on on a shared engine"

# --- 2. health and size -------------------------------------------------------------------------
wait_for 60 "state-controller healthy (HEALTHCHECK: state-controller healthcheck)" healthy state-controller
wait_for 60 "status-api healthy (HEALTHCHECK: status-api healthcheck)" healthy status-api
SIZE=$(docker image inspect -f '{{.Size}}' "$DOCKWARDEN_IMAGE")
log "image $DOCKWARDEN_IMAGE: $SIZE bytes ($((SIZE / 1000000)).$((SIZE % 1000000 / 100000)) MB; limit 25 MB)"
[ "$SIZE" -lt "$MAX_IMAGE_BYTES" ] || fail "image is $SIZE bytes, not under 25 MB"
USERS=$(docker inspect -f '{{.Name}} user={{.Config.User}} readonly={{.HostConfig.ReadonlyRootfs}} capdrop={{.HostConfig.CapDrop}} restart={{.HostConfig.RestartPolicy.Name}}' $(docker-compose ps -q))
sed 's/^/    /' <<<"$USERS"

# --- 3. the status API, as a program and as a browser sees it ---------------------------------
URL="http://127.0.0.1:$PORT/containers"
JSON=$(curl -fsS --max-time 5 "$URL") || fail "GET $URL"
python3 - "$JSON" "$COMPOSE_PROJECT_NAME" <<'PY' || fail "GET /containers JSON is not what the README promises"
import json, sys
doc = json.loads(sys.argv[1]); project = sys.argv[2]
cs = doc["containers"]
assert isinstance(cs, list), "containers is not a list"
mine = [c for c in cs if c["name"].startswith(project + "_")]
names = sorted(c["name"] for c in mine)
assert len(mine) == 2, f"expected both dockwarden containers, got {names}"
for c in mine:
    for k in ("id", "name", "image", "state", "allowed"):
        assert k in c, f"{c['name']}: no {k!r}"
    assert c["state"] == "running", c
    assert c["allowed"] is True, f"{c['name']} not allowed: {c}"
print(f"    JSON: {len(cs)} containers on the engine; ours: {names}, allowed=True")
PY
HTML_HDR="$TMP/html.headers"
HTML=$(curl -fsS --max-time 5 -H 'Accept: text/html' -D "$HTML_HDR" "$URL") || fail "GET $URL as HTML"
grep -qi '^content-type: *text/html' "$HTML_HDR" || fail "Accept: text/html did not get text/html: $(grep -i content-type "$HTML_HDR")"
grep -qi '<html' <<<"$HTML" || fail "the HTML page has no <html>"
grep -qF "${COMPOSE_PROJECT_NAME}_status-api_1" <<<"$HTML" || fail "the HTML page does not list the status-api container"
log "ok: GET /containers as HTML ($(wc -c <<<"$HTML") bytes, lists ${COMPOSE_PROJECT_NAME}_status-api_1)"

# A fixture to deny: an image made FROM scratch from the workspace's static dw-sleeper.
CTX="$TMP/sleeper"; mkdir -p "$CTX"
cp target/x86_64-unknown-linux-gnu/release/dw-sleeper "$CTX/"
printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$CTX/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$SLEEPER" "$CTX" >/dev/null 2>&1 || fail "building $SLEEPER"

# --- 4. the shipped policy audits: logged, not touched ------------------------------------------
grep -qx 'mode = "audit"' "$POLICY" || fail "the shipped allowlist is not in audit mode"
run_sleeper "$C_DENIED"
wait_for 20 "audit: decision line for $C_DENIED (verdict=deny, not done)" \
  has_decision "$C_DENIED" "verdict=deny" "audit mode"
show_decision "$C_DENIED"
sleep 1
is_state "$C_DENIED" running || fail "audit mode touched $C_DENIED (state $(state "$C_DENIED"))"
log "ok: $C_DENIED still running under audit"

# --- 5. switch to enforce by editing the mounted file (as the README says) ----------------------
sed -i 's/^mode = "audit"/mode = "enforce"/' "$POLICY"
log "edited allowlist.toml: mode = \"enforce\""
wait_for 20 "controller: policy reloaded mode=enforce" reloaded_with "mode=enforce"
wait_for 20 "reload killed the running denied container $C_DENIED" is_state "$C_DENIED" exited
wait_for 10 "decision line: $C_DENIED action=kill result=ok" \
  has_decision "$C_DENIED" "verdict=deny" "action=kill" "result=ok"
show_decision "$C_DENIED"
run_sleeper "$C_LATE"
wait_for 10 "a new denied container $C_LATE is killed" is_state "$C_LATE" exited
wait_for 10 "decision line: $C_LATE action=kill result=ok" \
  has_decision "$C_LATE" "verdict=deny" "action=kill" "result=ok"
show_decision "$C_LATE"
log "exit codes: $C_DENIED=$(docker inspect -f '{{.State.ExitCode}}' "$C_DENIED") $C_LATE=$(docker inspect -f '{{.State.ExitCode}}' "$C_LATE") (137 = SIGKILL)"

# --- 6. another edit: allow a name; the container that was denied now lives ---------------------
run_sleeper "$C_OK"
wait_for 10 "$C_OK (not yet allowed) is killed" is_state "$C_OK" exited
edit_policy add_rule
RULES=$(grep -c '^\[\[allow\]\]' "$POLICY")
log "edited allowlist.toml: [[allow]] name = \"$C_OK\" ($RULES rules)"
wait_for 20 "controller: policy reloaded rules=$RULES" reloaded_with "mode=enforce" "rules=$RULES"
docker start "$C_OK" >/dev/null
wait_for 10 "decision line: $C_OK verdict=allow" has_decision "$C_OK" "verdict=allow"
sleep 3
is_state "$C_OK" running || fail "$C_OK was allowed but is $(state "$C_OK")"
show_decision "$C_OK"
log "ok: $C_OK runs (3 s after start) under the edited policy"
JSON=$(curl -fsS --max-time 5 "$URL") || fail "GET $URL"
python3 - "$JSON" "$C_OK" "$C_LATE" <<'PY' || log "WARNING: status-api does not show the edited policy's verdicts yet"
import json, sys
cs = {c["name"]: c for c in json.loads(sys.argv[1])["containers"]}
ok, late = cs[sys.argv[2]], cs[sys.argv[3]]
print(f"    status-api: {ok['name']} state={ok['state']} allowed={ok.get('allowed')}; "
      f"{late['name']} state={late['state']} allowed={late.get('allowed')}")
assert ok["allowed"] is True and late["allowed"] is False
PY

# --- 7. down, and nothing left behind -----------------------------------------------------------
log "README step: docker-compose down"
docker-compose down -t 5 2>&1 | sed 's/^/    /'
left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
[ -z "$left" ] || fail "containers left after down: $left"
[ -z "$(docker network ls -q --filter "name=^${COMPOSE_PROJECT_NAME}_")" ] || fail "network left after down"
docker rm -f "$C_DENIED" "$C_LATE" "$C_OK" >/dev/null
docker rmi "$DOCKWARDEN_IMAGE" "$SLEEPER" >/dev/null
left=$(docker ps -aq --filter "name=^/dwtest-e2e-$ID"; docker images -q "$DOCKWARDEN_IMAGE"; docker images -q "$SLEEPER"; docker network ls -q --filter "name=^dwtest-e2e-$ID")
[ -z "$left" ] || fail "left behind: $left"
log "ok: nothing left behind (containers, network, images of project $COMPOSE_PROJECT_NAME)"
log "e2e-compose: PASSED"
