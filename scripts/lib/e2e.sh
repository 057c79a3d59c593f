# Helpers shared by the end-to-end tests of the compose deployment (scripts/e2e-*.sh).
# Source it after `cd` to the directory whose docker-compose.yml is under test, with
# COMPOSE_PROJECT_NAME exported (unique per run) and E2E_TAG set (the log prefix).
# shellcheck shell=bash

T0=$(date +%s%N)
# The script's own stdout and stderr, for its cleanup trap: a signal can end the script inside
# a function whose output is redirected (wait_for's checks go to /dev/null).
exec 3>&1 4>&2
restore_stdio() { exec 1>&3 2>&4; }
log() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[%s %4d.%ds] %s\n' "$E2E_TAG" $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }
fail() { log "FAIL: $*"; exit 1; }

require_engine() {
  command -v docker-compose >/dev/null || fail "docker-compose is not installed"
  docker info >/dev/null 2>&1 || fail "no Docker Engine answers"
}

# free_port: a TCP port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])'; }

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
# reloaded_with PATTERN...: a "policy reloaded" line of the controller holding every PATTERN
reloaded_with() { controller_logs | grep 'policy reloaded' | filter "$@" >/dev/null; }

# scope_is_set: the controller got DOCKWARDEN_SCOPE (this engine is shared: it must govern only
# this run's label); fails the test otherwise.
scope_is_set() {
  docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(docker-compose ps -q state-controller)" \
    | grep -qxF "DOCKWARDEN_SCOPE=$DOCKWARDEN_SCOPE" \
    || fail "the controller did not get DOCKWARDEN_SCOPE; refusing to go on on a shared engine"
}

# check_containers_page URL: GET URL as JSON and as HTML; both of this project's containers are
# listed, running and allowed (dockwarden's own: spared).
check_containers_page() {
  local url=$1 json html hdr
  json=$(curl -fsS --max-time 5 "$url") || fail "GET $url"
  python3 - "$json" "$COMPOSE_PROJECT_NAME" <<'PY' || fail "GET /containers JSON is not what the README promises"
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
print(f"    JSON: {len(cs)} containers on the engine; ours: {names}, allowed=True, spared={[c.get('spared') for c in mine]}")
PY
  hdr=$(mktemp)
  html=$(curl -fsS --max-time 5 -H 'Accept: text/html' -D "$hdr" "$url") || { rm -f "$hdr"; fail "GET $url as HTML"; }
  grep -qi '^content-type: *text/html' "$hdr" || fail "Accept: text/html did not get text/html: $(grep -i content-type "$hdr")"
  rm -f "$hdr"
  grep -qi '<html' <<<"$html" || fail "the HTML page has no <html>"
  grep -qF "${COMPOSE_PROJECT_NAME}_status-api_1" <<<"$html" || fail "the HTML page does not list the status-api container"
  log "ok: GET /containers as HTML ($(wc -c <<<"$html") bytes, lists ${COMPOSE_PROJECT_NAME}_status-api_1)"
}

# remove_project IMAGE...: removes this project's containers and network and the given images,
# whatever state they are in (for cleanup traps; never fails).
remove_project() {
  local ids
  docker-compose down --remove-orphans -t 5 >/dev/null 2>&1
  ids=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
  # shellcheck disable=SC2086 # one ID per word
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  docker network rm "${COMPOSE_PROJECT_NAME}_default" >/dev/null 2>&1
  [ $# -gt 0 ] && docker rmi -f "$@" >/dev/null 2>&1
  return 0
}

# project_left: what of this project is still on the engine (containers, network), one per line.
project_left() {
  docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"
  docker network ls -q --filter "name=^${COMPOSE_PROJECT_NAME}_"
}
