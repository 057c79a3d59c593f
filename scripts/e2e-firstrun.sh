#!/usr/bin/env bash
# First run on a fresh clone (issue 11): clones this repository's HEAD into a temporary
# directory and runs there the one command the README's "Run it" gives, then checks what a
# new user should see:
#
#   1. the command ends well, and both services are healthy
#   2. GET /containers answers JSON and, to a browser, HTML; both dockwarden containers are
#      listed as running and allowed (spared)
#   3. the controller's log shows the state list, with its own two containers as spared
#   4. the command again changes nothing (same containers)
#   5. the shipped policy switched to enforce: both services stay up, spared again
#   6. the README's stop command, `docker-compose down`, and removing the image leave nothing
#
# Differences from a user's run, all for sharing this engine with other tests:
#   - COMPOSE_PROJECT_NAME=dwtest-firstrun-PID, DOCKWARDEN_IMAGE=dwtest-firstrun-PID/dockwarden:local,
#     a free host port in DOCKWARDEN_API_PORT;
#   - DOCKWARDEN_SCOPE=dwtest.scope=dwtest-firstrun-PID, and a compose override (COMPOSE_FILE)
#     that puts this label on the two dockwarden containers only: the controller governs
#     nothing else on this engine, but does govern its own containers (step 5 tests sparing);
#   - CARGO_TARGET_DIR is this checkout's target/ (unless set), and the clone's files that are
#     byte-identical to this checkout's take their modification times: cargo finds the crates
#     scripts/test.sh has just compiled fresh and compiles nothing again (a cold build takes
#     5-10 minutes here). A file missing from the commit, or changed since, is still compiled
#     from the clone; then, on exit, the files this checkout changed since HEAD are touched so
#     that its own next build compiles them again. DWTEST_FIRSTRUN_COLD=1: a cold build in
#     the clone's own target/ instead, as a user's first run (removed on exit).
# Everything it creates is removed on exit, pass or fail; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

FIRST_RUN=./scripts/up.sh    # the README's command; checked against README.md below

ID=$$
NAME="dwtest-firstrun-$ID"
export COMPOSE_PROJECT_NAME="$NAME"
export DOCKWARDEN_IMAGE="$NAME/dockwarden:local"
export DOCKWARDEN_SCOPE="dwtest.scope=$NAME"
COLD=${DWTEST_FIRSTRUN_COLD:-0}
if [ "$COLD" = 1 ]; then unset CARGO_TARGET_DIR; else export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"; fi
# As a new user: none of the deployment's settings but the ones above.
unset DOCKWARDEN_CONFIG_DIR DOCKWARDEN_DOCKERFILE DOCKWARDEN_USER DOCKER_GID DOCKWARDEN_LOG_FORMAT STATUS_API_TOKEN
TMP=$(mktemp -d "/tmp/$NAME.XXXXXX")
CLONE="$TMP/dockwarden"
export COMPOSE_FILE="$CLONE/docker-compose.yml:$TMP/scope-labels.yml"
SC="${NAME}_state-controller_1"
API="${NAME}_status-api_1"

E2E_TAG=firstrun
# shellcheck source=scripts/lib/e2e.sh
source scripts/lib/e2e.sh

# The clone's build rewrote this checkout's crates in the shared target/ from HEAD's sources;
# files changed since HEAD must look newer than that build, or cargo would keep HEAD's.
retouch_changed() {
  [ "${CARGO_TARGET_DIR:-}" = "$REPO/target" ] || return 0
  git -C "$REPO" diff --name-only -z HEAD | (cd "$REPO" && xargs -0r touch -c --)
  git -C "$REPO" ls-files -z --others --exclude-standard | (cd "$REPO" && xargs -0r touch -c --)
}

cleanup() {
  local rc=$?
  set +e
  restore_stdio
  if [ -d "$CLONE" ]; then
    cd "$CLONE"
    if [ "$rc" != 0 ]; then
      log "failed (rc=$rc); last logs:"
      docker-compose logs --no-color --tail=60 2>/dev/null | sed 's/^/    /'
    fi
    remove_project "$DOCKWARDEN_IMAGE"
  fi
  retouch_changed
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

require_engine
grep -qxF "$FIRST_RUN" README.md || fail "README.md no longer shows the first-run command $FIRST_RUN on a line of its own"

# --- 0. a fresh clone --------------------------------------------------------------------------
HEAD=$(git rev-parse --verify -q HEAD) || fail "$REPO is not a git checkout with a commit: the first-run test clones it"
git clone -q --no-hardlinks "$REPO" "$CLONE"
git -C "$CLONE" checkout -q --detach "$HEAD"
[ -z "$(git status --porcelain --untracked-files=no)" ] || log "note: uncommitted changes here are not in the clone (HEAD $HEAD)"
cd "$CLONE"
[ ! -e target ] || fail "the fresh clone has a target/ already"
export DOCKWARDEN_API_PORT; DOCKWARDEN_API_PORT=$(free_port)
log "cloned ${HEAD:0:12} into $CLONE (project $NAME, port $DOCKWARDEN_API_PORT, CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-unset, the clone builds in its own target/})"
if [ "$COLD" != 1 ]; then
  same=0
  while IFS= read -r -d '' f; do
    if cmp -s "$REPO/$f" "$f"; then touch -r "$REPO/$f" "$f"; same=$((same + 1)); fi
  done < <(git ls-files -z)
  log "$same files identical to this checkout's got its modification times (cargo reuses its build)"
fi
printf 'services:\n  state-controller:\n    labels: ["%s"]\n  status-api:\n    labels: ["%s"]\n' \
  "$DOCKWARDEN_SCOPE" "$DOCKWARDEN_SCOPE" >"$TMP/scope-labels.yml"

# --- 1. the README's command -------------------------------------------------------------------
log "README command: $FIRST_RUN"
t=$(date +%s)
"$FIRST_RUN" >"$TMP/up.log" 2>&1 || { sed 's/^/    /' "$TMP/up.log"; fail "$FIRST_RUN failed"; }
grep -E '^(up: |  [a-z]+: )' "$TMP/up.log" | sed 's/^/    /'
log "ok: $FIRST_RUN took $(( $(date +%s) - t )) s"
scope_is_set
wait_for 30 "state-controller healthy" healthy state-controller
wait_for 30 "status-api healthy" healthy status-api
grep -qF "http://localhost:$DOCKWARDEN_API_PORT/containers" "$TMP/up.log" || fail "$FIRST_RUN did not print the page's address"

# --- 2. the page -------------------------------------------------------------------------------
check_containers_page "http://127.0.0.1:$DOCKWARDEN_API_PORT/containers"

# --- 3. the state list in the controller's log -------------------------------------------------
synced_logged() { controller_logs | grep -q 'state list synced with Docker'; }
state_line() { controller_logs | grep ' state ' | filter "container=$1" "$2" >/dev/null; }
wait_for 20 "controller log: state list synced with Docker" synced_logged
wait_for 10 "controller log: state line $SC verdict=spare" state_line "$SC" "verdict=spare"
wait_for 10 "controller log: state line $API verdict=spare" state_line "$API" "verdict=spare"
controller_logs | grep -E 'state list synced| state container=' | head -3 | sed 's/^/    /'

# --- 4. again: nothing changes -----------------------------------------------------------------
ids_before=$(docker-compose ps -q | sort)
t=$(date +%s)
"$FIRST_RUN" >"$TMP/up2.log" 2>&1 || { sed 's/^/    /' "$TMP/up2.log"; fail "$FIRST_RUN failed the second time"; }
[ "$(docker-compose ps -q | sort)" = "$ids_before" ] || fail "running $FIRST_RUN again recreated containers"
log "ok: $FIRST_RUN again: same containers, took $(( $(date +%s) - t )) s"

# --- 5. enforce: dockwarden's own containers are spared ----------------------------------------
POLICY=config/allowlist.toml
grep -qx 'mode = "audit"' "$POLICY" || fail "the shipped allowlist is not in audit mode"
if grep -qE '^image *= *".*dockwarden' "$POLICY"; then fail "the shipped allowlist still allows a dockwarden image"; fi
sed -i 's/^mode = "audit"/mode = "enforce"/' "$POLICY"
log "edited the clone's config/allowlist.toml: mode = \"enforce\""
wait_for 20 "controller: policy reloaded mode=enforce" reloaded_with "mode=enforce"
wait_for 10 "decision line: $SC verdict=spare" has_decision "$SC" "verdict=spare"
wait_for 10 "decision line: $API verdict=spare" has_decision "$API" "verdict=spare"
show_decision "$API"
sleep 3
for c in "$SC" "$API"; do
  is_state "$c" running || fail "$c is $(state "$c") under enforce"
  [ "$(docker inspect -f '{{.RestartCount}}' "$c")" = 0 ] || fail "$c was restarted under enforce"
done
if controller_logs | grep ' decision ' | grep -E 'verdict="?deny' | grep -qF "$NAME"; then
  fail "the controller denied one of its own containers"
fi
check_containers_page "http://127.0.0.1:$DOCKWARDEN_API_PORT/containers"
log "ok: under enforce both services run, spared, 3 s after the reload"

# --- 6. stop, and nothing left -----------------------------------------------------------------
log "README command: docker-compose down"
docker-compose down -t 5 2>&1 | sed 's/^/    /'
left=$(project_left)
[ -z "$left" ] || fail "containers or network left after down: $left"
docker rmi "$DOCKWARDEN_IMAGE" >/dev/null
left=$(docker ps -aq --filter "name=^/$NAME"; docker images -q "$NAME/*"; docker network ls -q --filter "name=^$NAME"; docker volume ls -q --filter "name=^$NAME")
[ -z "$left" ] || fail "left behind: $left"
log "ok: nothing left behind (containers, network, volumes, image of project $NAME)"
log "e2e-firstrun: PASSED"
