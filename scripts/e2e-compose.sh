#!/usr/bin/env bash
# End-to-end check of the deployment (issue 4, acceptance 1 and 2): does on this machine the
# two steps the README's first-run command (scripts/up.sh) takes, checks what the user should
# then see, then audit, enforce and policy edits. (scripts/e2e-firstrun.sh runs the command
# itself on a fresh clone.)
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
export DOCKWARDEN_IMAGE="dwtest-e2e-$ID/dockwarden:local"
export DOCKWARDEN_SCOPE="dwtest.scope=e2e-$ID"
SLEEPER="dwtest-e2e-$ID-sleeper:local"
C_DENIED="dwtest-e2e-$ID-denied"   # started under audit, killed when enforce is switched on
C_LATE="dwtest-e2e-$ID-late"       # started under enforce: killed at once
C_OK="dwtest-e2e-$ID-ok"           # denied, then allowed by a policy edit: lives
TMP=$(mktemp -d "/tmp/dwtest-e2e-$ID.XXXXXX")
export DOCKWARDEN_CONFIG_DIR="$TMP/config"
MAX_IMAGE_BYTES=25000000           # 25 MB, as `docker images` counts

E2E_TAG=e2e
# shellcheck source=scripts/lib/e2e.sh
source scripts/lib/e2e.sh

cleanup() {
  local rc=$?
  set +e
  restore_stdio
  if [ "$rc" != 0 ]; then
    log "failed (rc=$rc); last logs:"
    docker-compose logs --no-color --tail=60 2>/dev/null | sed 's/^/    /'
  fi
  docker rm -f "$C_DENIED" "$C_LATE" "$C_OK" >/dev/null 2>&1
  remove_project "$DOCKWARDEN_IMAGE" "$SLEEPER"
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_engine

# (--network none: the fixture needs no network, and the default bridge is shared state)
run_sleeper() { docker run -d --network none --name "$1" --label "$DOCKWARDEN_SCOPE" "$SLEEPER" >/dev/null; }
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
PORT=$(free_port)
export DOCKWARDEN_API_PORT=$PORT
log "README step: docker-compose up -d --build   (project $COMPOSE_PROJECT_NAME, port $PORT, scope $DOCKWARDEN_SCOPE)"
docker-compose up -d --build >"$TMP/up.log" 2>&1 || { sed 's/^/    /' "$TMP/up.log"; fail "docker-compose up -d --build"; }
grep -E '^(Step|Successfully|Creating)' "$TMP/up.log" | sed 's/^/    /'

# Safety first: this engine is shared; the controller must govern only this run's label.
scope_is_set

# --- 2. health and size -------------------------------------------------------------------------
wait_for 60 "state-controller healthy (HEALTHCHECK: state-controller healthcheck)" healthy state-controller
wait_for 60 "status-api healthy (HEALTHCHECK: status-api healthcheck)" healthy status-api
SIZE=$(docker image inspect -f '{{.Size}}' "$DOCKWARDEN_IMAGE")
log "image $DOCKWARDEN_IMAGE: $SIZE bytes ($((SIZE / 1000000)).$((SIZE % 1000000 / 100000)) MB; limit 25 MB)"
[ "$SIZE" -lt "$MAX_IMAGE_BYTES" ] || fail "image is $SIZE bytes, not under 25 MB"
# shellcheck disable=SC2046 # one container ID per word
docker inspect -f '{{.Name}} user={{.Config.User}} readonly={{.HostConfig.ReadonlyRootfs}} capdrop={{.HostConfig.CapDrop}} restart={{.HostConfig.RestartPolicy.Name}}' $(docker-compose ps -q) \
  | sed 's/^/    /'

# --- 3. the status API, as a program and as a browser sees it ---------------------------------
URL="http://127.0.0.1:$PORT/containers"
check_containers_page "$URL"

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
left=$(project_left)
[ -z "$left" ] || fail "containers or network left after down: $left"
docker rm -f "$C_DENIED" "$C_LATE" "$C_OK" >/dev/null
docker rmi "$DOCKWARDEN_IMAGE" "$SLEEPER" >/dev/null
left=$(docker ps -aq --filter "name=^/dwtest-e2e-$ID"; docker images -q "$DOCKWARDEN_IMAGE"; docker images -q "$SLEEPER"; docker network ls -q --filter "name=^dwtest-e2e-$ID")
[ -z "$left" ] || fail "left behind: $left"
log "ok: nothing left behind (containers, network, images of project $COMPOSE_PROJECT_NAME)"
log "e2e-compose: PASSED"
