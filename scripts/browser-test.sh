#!/usr/bin/env bash
# Headless-browser test of status-api (issue 3, acceptance 4): starts the real static
# status-api binary against the real engine, scoped by label to a few containers of its own
# (running, exited, created, one the allowlist denies, one with a secret in its
# environment), loads /containers in Debian's chromium, checks the rendered DOM and saves a
# screenshot under target/screenshots/. Exits non-zero on any failure; removes what it made
# (containers and image named dwtest-browser-*), pass or fail. Installs chromium when absent.
set -euo pipefail
cd "$(dirname "$0")/.."

SHOT_DIR=target/screenshots
SHOT="$SHOT_DIR/status-api-containers.png"
TAG=dwtest-browser-sleeper:latest
PREFIX="dwtest-browser-$$"
SCOPE="dwtest.scope=$PREFIX"
SECRET="dwtest-browser-secret-$$-$RANDOM"
WORK=$(mktemp -d /tmp/dwtest-browser.XXXXXX)
API_PID=""

log() { printf '[browser-test] %s\n' "$*"; }
fail() { printf '[browser-test] FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  if [ -n "$API_PID" ]; then kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true; fi
  ids=$(docker ps -aq --filter "name=^/?$PREFIX" 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
  docker rmi -f "$TAG" >/dev/null 2>&1 || true
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

# 2. The binaries (static, as the image ships them; a no-op when scripts/test.sh built them)
#    and a FROM-scratch sleeper image of our own (nothing is pulled).
bash scripts/build-static.sh
BIN=target/x86_64-unknown-linux-gnu/release
mkdir -p "$WORK/ctx"
cp "$BIN/dw-sleeper" "$WORK/ctx/"
printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$WORK/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" --label dwtest=1 "$WORK/ctx" >/dev/null

# 3. Containers in our scope.
run() { # name [docker run args...] -- [cmd...]
  local name=$1; shift
  docker run -d --name "$PREFIX-$name" --label "$SCOPE" --network none "$@" >/dev/null
}
run web-1 "$TAG"
run web-2 -e "SECRET=$SECRET" --label 'note=<script>alert(1)</script>' "$TAG"
run intruder "$TAG"
run job "$TAG" 0
docker create --name "$PREFIX-spare" --label "$SCOPE" --network none "$TAG" >/dev/null
NAMES="web-1 web-2 intruder job spare"

mkdir -p "$WORK/policy"
cat >"$WORK/policy/allowlist.toml" <<EOF
mode = "audit"
[[allow]]
name = "$PREFIX-web-*"
[[allow]]
name = "$PREFIX-job"
[[allow]]
name = "$PREFIX-spare"
EOF

# 4. The real binary, on a free loopback port (read back from its log).
"$BIN/status-api" --listen 127.0.0.1:0 --scope "$SCOPE" --allowlist "$WORK/policy/allowlist.toml" \
  --stats-interval 1 --log-format json >"$WORK/api.log" 2>&1 &
API_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR=$(sed -n 's/.*"message":"status-api listening".*"addr":"\([^"]*\)".*/\1/p; s/.*"addr":"\([^"]*\)".*"message":"status-api listening".*/\1/p' "$WORK/api.log" | head -1)
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
sleep 3 # two sampling rounds (1 s apart): CPU % needs two

# 5. The browser: rendered DOM, then a screenshot.
CHROME=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
  --disable-extensions --user-data-dir="$WORK/profile" --window-size=1400,800)
timeout 90 "${CHROME[@]}" --dump-dom "$URL" >"$WORK/dom.html" 2>"$WORK/chromium.log" ||
  { tail -20 "$WORK/chromium.log"; fail "chromium --dump-dom failed"; }
mkdir -p "$SHOT_DIR"
rm -f "$SHOT"
timeout 90 "${CHROME[@]}" --screenshot="$SHOT" "$URL" >>"$WORK/chromium.log" 2>&1 ||
  { tail -20 "$WORK/chromium.log"; fail "chromium --screenshot failed"; }
[ -s "$SHOT" ] || fail "no screenshot written"

# 6. What a person would check on the page.
DOM="$WORK/dom.html"
# One row per element on its own line, for grep.
sed 's/<tr /\n<tr /g' "$DOM" >"$WORK/rows.html"
row() { grep -F "data-name=\"$PREFIX-$1\"" "$WORK/rows.html" || true; }
grep -q '<table id="containers">' "$DOM" || fail "no containers table in the rendered page"
for n in $NAMES; do
  [ -n "$(row "$n")" ] || fail "container $PREFIX-$n is not on the page"
done
for n in web-1 web-2 intruder; do
  row "$n" | grep -q 'data-state="running"' || fail "$n not shown as running"
  row "$n" | grep -q '[0-9] %' || fail "$n shows no CPU figure"
  row "$n" | grep -q 'iB / ' || fail "$n shows no memory figure"
done
row job | grep -q 'data-state="exited"' || fail "job not shown as exited"
row job | grep -q 'Exited (0)' || fail "job has no Docker-like status"
row spare | grep -q 'data-state="created"' || fail "spare not shown as created"
row intruder | grep -q 'class="container denied"' || fail "the denied container is not marked"
row intruder | grep -q 'DENIED' || fail "the denied container has no DENIED badge"
for n in web-1 web-2 job spare; do
  row "$n" | grep -q 'class="container denied"' && fail "$n is marked denied but is allowed"
done
[ "$(grep -c 'class="container denied"' "$WORK/rows.html")" = 1 ] || fail "exactly one row should be denied"
grep -q 'synced with Docker' "$DOM" || fail "the page does not say it is synced"
if grep -qF "$SECRET" "$DOM"; then fail "a container's environment appears on the page"; fi
if grep -q '<script' "$DOM"; then fail "a script element on the page"; fi

log "PASS: $(echo "$NAMES" | wc -w) containers rendered, denied one marked; screenshot: $SHOT"
