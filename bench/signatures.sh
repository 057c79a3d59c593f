#!/usr/bin/env bash
# What a cosign signature verification costs (issue 18), in one run against a real registry
# (Debian's docker-registry on a loopback port, started here): a baseline registry round trip
# (one GET of the signature manifest over the same client), a first verification (cold
# cache: the signature manifest, then the payload blob), and a cached answer (`lookup`, what
# a pure decision calls, and `verify` on a warm cache). Prints p50/p90/p99 in microseconds.
#
# The image is a one-file `docker import`, pushed; it is signed by scripts/lib/cosign_sign.py.
# Everything is named dwtest-prov-bench-<pid> and removed on exit (the registry is killed by
# its PID). Settings: BENCH_SIG_ROUNDS=200.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${BENCH_SIG_ROUNDS:-200}
ID="dwtest-prov-bench-$$"
P=$(mktemp -d "/tmp/$ID-XXXX")
BIN=$(command -v docker-registry || echo /usr/bin/docker-registry)
[ -x "$BIN" ] || { echo "Debian's docker-registry is not installed (apt-get install docker-registry)" >&2; exit 1; }

cleanup() {
  set +e
  [ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
  [ -n "${PUSHED:-}" ] && docker rmi -f "$PUSHED" >/dev/null 2>&1
  docker rmi -f "$ID:1" >/dev/null 2>&1
  rm -rf "$P"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PY=$(bash scripts/lib/sign-venv.sh)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR="127.0.0.1:$PORT"
cat >"$P/config.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: $P/data
http:
  addr: $ADDR
log:
  level: warn
YML
"$BIN" serve "$P/config.yml" >"$P/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

echo "bench: $ID content" >"$P/content"
tar -C "$P" -c content | docker import - "$ID:1" >/dev/null
PUSHED="$ADDR/$ID:1"
docker tag "$ID:1" "$PUSHED"
docker push -q "$PUSHED" >/dev/null
REF=$(docker image inspect -f '{{index .RepoDigests 0}}' "$PUSHED")
"$PY" scripts/lib/cosign_sign.py keygen "$P/ci"
"$PY" scripts/lib/cosign_sign.py sign --key "$P/ci.key" "$REF"

echo "bench: building the sigbench example (release)" >&2
cargo build -q --release -p dockwarden-common --example sigbench
target/release/examples/sigbench "$REF" "$P/ci.pub" "$ROUNDS"
