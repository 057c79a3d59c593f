#!/usr/bin/env bash
# First run in one command (README "Run it"): on a host with Docker Engine, docker-compose and
# Rust, and no image registry, builds both programs as static binaries
# (scripts/build-static.sh), builds the image FROM scratch from them and starts both services
# (docker-compose up -d --build), then waits until both are healthy and says where to look.
#
# Safe to run again (after a pull, an edit, a failed run): cargo and the image build redo only
# what changed, and compose recreates a container only when its image or settings changed.
# Everything docker-compose.yml reads is honoured (DOCKWARDEN_API_PORT, DOCKWARDEN_IMAGE,
# COMPOSE_PROJECT_NAME, ..., from the environment or .env). With CARGO_TARGET_DIR set, the
# two binaries are copied from there to target/, where the image build takes them from.
# DOCKWARDEN_DOCKERFILE=Dockerfile builds inside a pulled Rust image instead: no host Rust.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'up: %s\n' "$*"; }
die() { printf 'up: ERROR: %s\n' "$*" >&2; exit 1; }

BIN_DIR=target/x86_64-unknown-linux-gnu/release   # where Dockerfile.local copies them from
BINARIES=(state-controller status-api)
HEALTH_WAIT_SECS=${DOCKWARDEN_UP_WAIT:-90}

# --- 1. what is needed --------------------------------------------------------------------
command -v docker >/dev/null || die "docker not found: install Docker Engine (Debian: apt-get install docker.io)"
command -v docker-compose >/dev/null || die "docker-compose not found (Debian: apt-get install docker-compose)"
# `docker version` asks only /version: it answers even when other containers are stuck.
timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "no Docker Engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}: start it (systemctl start docker), or use an account that may reach its socket (the docker group)"
docker-compose config -q || die "docker-compose.yml does not validate with these settings (see above)"
registry_build=0
[ "${DOCKWARDEN_DOCKERFILE:-Dockerfile.local}" = Dockerfile ] && registry_build=1
if [ "$registry_build" = 0 ]; then
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs), or, with a registry, DOCKWARDEN_DOCKERFILE=Dockerfile $0"
fi

# --- 2. the static binaries ---------------------------------------------------------------
if [ "$registry_build" = 0 ]; then
  say "building the static binaries: bash scripts/build-static.sh (5-10 minutes the first time)"
  bash scripts/build-static.sh
  target_dir=$(cargo metadata --no-deps --format-version 1 | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
  mkdir -p "$BIN_DIR"
  for b in "${BINARIES[@]}"; do
    built="$target_dir/x86_64-unknown-linux-gnu/release/$b"
    [ -x "$built" ] || die "scripts/build-static.sh made no $built"
    if [ "$(realpath "$built")" != "$(realpath -m "$BIN_DIR/$b")" ] && ! cmp -s "$built" "$BIN_DIR/$b"; then
      cp -p "$built" "$BIN_DIR/$b"   # CARGO_TARGET_DIR elsewhere: the image build reads target/
    fi
  done
else
  say "DOCKWARDEN_DOCKERFILE=Dockerfile: the image compiles both programs inside a pulled Rust image"
fi

# --- 3. image and services ----------------------------------------------------------------
say "building the image and starting both services: docker-compose up -d --build"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! docker-compose up -d --build 2>&1 | tee "$out"; then
  if grep -qiE 'port is already allocated|address already in use' "$out"; then
    die "the status API's port ${DOCKWARDEN_API_PORT:-8080} is taken; choose another: DOCKWARDEN_API_PORT=8081 $0"
  fi
  die "docker-compose up -d --build failed (see above)"
fi

# --- 4. healthy? ----------------------------------------------------------------------------
health() { # health SERVICE: healthy | starting | unhealthy | exited | ... (its container's)
  local id; id=$(docker-compose ps -q "$1")
  [ -n "$id" ] || { echo missing; return; }
  docker inspect -f '{{if eq .State.Status "running"}}{{if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}{{else}}{{.State.Status}}{{end}}' "$id"
}
say "waiting for both services to be healthy (their health checks run every 10 s)"
end=$(( $(date +%s) + HEALTH_WAIT_SECS ))
for svc in state-controller status-api; do
  while :; do
    h=$(health "$svc")
    case $h in
      healthy) say "$svc: healthy"; break ;;
      starting | running) ;;
      *) docker-compose logs --no-color --tail=30 "$svc" >&2 || true
         die "$svc is $h (its last log lines are above)" ;;
    esac
    if [ "$(date +%s)" -ge "$end" ]; then
      docker-compose logs --no-color --tail=30 "$svc" >&2 || true
      die "$svc is still $h after ${HEALTH_WAIT_SECS}s (its last log lines are above)"
    fi
    sleep 1
  done
done

# --- 5. where to look -----------------------------------------------------------------------
addr=$(docker-compose port status-api 8080)
addr=${addr/0.0.0.0/localhost}
addr=${addr/127.0.0.1/localhost}
policy="${DOCKWARDEN_CONFIG_DIR:-./config}/allowlist.toml"
mode=$(sed -n 's/^mode *= *"\([a-z]*\)".*/\1/p' "$policy" | head -1)
say "dockwarden is running."
cat <<EOF
  page:     http://$addr/containers   (JSON for programs: curl $addr/containers)
  logs:     docker-compose logs -f state-controller
  stop:     docker-compose down        start again: docker-compose up -d
  policy:   $policy, mode = "${mode:-enforce}"$([ "$mode" = audit ] && echo ': denied containers are logged, not touched')
EOF
