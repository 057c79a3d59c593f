#!/usr/bin/env bash
# dockwarden benchmarks, one command: `bash bench/run.sh`. Prints the tables of
# time-to-kill (the controller beside the floor killer, same run), footprint (RSS, CPU,
# image size) and, when bench/api-load.sh is there, the status API under load.
#
# Everything it creates is named dwtest-bench-<run>-* and labelled dwtest.scope=<that name>;
# every killer it starts is scoped to one such label. The trap removes this run's
# containers and image and ends the processes it started (by PID), pass or fail. It does
# not call scripts/cleanup.sh by default: that removes EVERY dwtest* container and image,
# including those of tests running beside it on a shared engine; set BENCH_CLEANUP_ALL=1
# to run it too (CI, a machine of your own).
#
# Settings (environment):
#   BENCH_REPS=3            repetitions of every figure (median and worst are over them)
#   BENCH_SIZES=1,50,200    time-to-kill burst sizes (denied containers; +N/4 allowed)
#   BENCH_FOOTPRINT_N=200   containers in the footprint burst
#   BENCH_QUIET_LOAD=1.5    wait (up to BENCH_QUIET_WAIT=600 s) for the 1-min load to drop below this
#   BENCH_SKIP=api,image    skip parts: ttk, footprint, image, api
#   BENCH_BASELINE=BIN      another state-controller binary (an earlier build: `git worktree add
#                           /tmp/old REV && bash /tmp/old/scripts/build-static.sh`) whose time
#                           to kill is measured in the same run, right after this build's
# Output is also written to target/bench/<run>/report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${BENCH_REPS:-3}
SIZES=${BENCH_SIZES:-1,50,200}
FOOT_N=${BENCH_FOOTPRINT_N:-200}
QUIET_LOAD=${BENCH_QUIET_LOAD:-1.5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-600}
SKIP=${BENCH_SKIP:-}
RUN_ID="r$(date +%s)-$$"
WORK="$PWD/target/bench/$RUN_ID"
IMAGE="dwtest-bench-dockwarden:$RUN_ID"
REL=target/x86_64-unknown-linux-gnu/release
mkdir -p "$WORK"
REPORT="$WORK/report.txt"

skip() { case ",$SKIP," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
say() { printf '%s\n' "$*" | tee -a "$REPORT"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

cleanup() {
  set +e
  if [ -f "$WORK/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null; done <"$WORK/pids"
  fi
  ids=$(timeout 60 docker ps -aq --filter "name=^/dwtest-bench-$RUN_ID" 2>/dev/null)
  [ -n "$ids" ] && timeout 120 docker rm -f $ids >/dev/null 2>&1
  timeout 60 docker rmi -f "$IMAGE" >/dev/null 2>&1
  [ "${BENCH_CLEANUP_ALL:-0}" = 1 ] && bash scripts/cleanup.sh
  rm -rf "$WORK/ctx"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 30 docker info >/dev/null 2>&1 || { echo "bench: no Docker Engine answers (docker info, 30 s)" >&2; exit 1; }

# A quiet machine gives comparable figures; other people's compiles do not.
waited=0
while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v q="$QUIET_LOAD" 'BEGIN{exit !(l>q)}' &&
  [ "$waited" -lt "$QUIET_WAIT" ]; do
  [ "$waited" = 0 ] && echo "bench: load $(load) > $QUIET_LOAD, waiting up to ${QUIET_WAIT}s for a quieter machine" >&2
  sleep 10
  waited=$((waited + 10))
done

say "dockwarden bench, run $RUN_ID, $(date -u +%FT%TZ), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo); load at start: $(load) (waited ${waited}s for quiet)"
say "engine: $(docker version --format 'Docker {{.Server.Version}} (API {{.Server.APIVersion}})'), storage driver $(docker info --format '{{.Driver}}')"
say ""

echo "bench: building static release binaries (scripts/build-static.sh)" >&2
bash scripts/build-static.sh >&2
for b in state-controller status-api dw-floor-killer dw-bench dw-sleeper; do
  [ -x "$REL/$b" ] || { echo "bench: $REL/$b missing after the build" >&2; exit 1; }
done

# The sleeper fixture image the bursts run (the same one the tests build).
if ! docker image inspect dwtest-sleeper:latest >/dev/null 2>&1; then
  mkdir -p "$WORK/ctx"
  cp "$REL/dw-sleeper" "$WORK/ctx/"
  printf 'FROM scratch\nCOPY dw-sleeper /dw-sleeper\nENTRYPOINT ["/dw-sleeper"]\n' >"$WORK/ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t dwtest-sleeper:latest --label dwtest=1 "$WORK/ctx" >/dev/null
  rm -rf "$WORK/ctx"
fi

# Docker 20.10 can deadlock in libnetwork under heavy container churn (moby/moby#42545,
# fixed after 20.10.24): then `docker info` hangs and so would every burst. Check before
# each part and stop with the reason rather than report hung containers as figures.
engine_ok() {
  timeout 30 docker info >/dev/null 2>&1 && return 0
  say "bench: the engine does not answer \`docker info\` within 30 s (stalled; see moby/moby#42545): stopping"
  exit 3
}

status=0
engine_ok
if ! skip ttk; then
  say "== time to kill (load before: $(load)) =="
  "$REL/dw-bench" ttk --controller "$REL/state-controller" --floor "$REL/dw-floor-killer" \
    --sizes "$SIZES" --reps "$REPS" --run-id "$RUN_ID" --workdir "$WORK" | tee -a "$REPORT" || status=1
  say "(load after: $(load))"
  if [ -n "${BENCH_BASELINE:-}" ]; then
    say ""
    say "== time to kill, baseline $BENCH_BASELINE (same run; load before: $(load)) =="
    "$REL/dw-bench" ttk --controller "$BENCH_BASELINE" --floor "$REL/dw-floor-killer" \
      --sizes "$SIZES" --reps "$REPS" --run-id "$RUN_ID-base" --workdir "$WORK/baseline" | tee -a "$REPORT" || status=1
    say "(load after: $(load))"
  fi
  say ""
fi

engine_ok
if ! skip footprint; then
  say "== footprint (load before: $(load)) =="
  "$REL/dw-bench" footprint --controller "$REL/state-controller" --api "$REL/status-api" \
    --n "$FOOT_N" --reps "$REPS" --run-id "$RUN_ID" --workdir "$WORK" | tee -a "$REPORT" || status=1
  say "(load after: $(load))"
  say ""
fi

engine_ok
if ! skip image; then
  say "== image size =="
  # The no-registry build of the README (nothing is pulled): Dockerfile.local where it
  # exists, else the runtime-local target of the Dockerfile.
  if [ -f Dockerfile.local ]; then
    build=(-f Dockerfile.local)
  else
    build=(--target runtime-local)
  fi
  if DOCKER_BUILDKIT=0 docker build -q "${build[@]}" -t "$IMAGE" --label dwtest=1 . >/dev/null; then
    size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
    say "| what | bytes | MiB |"
    say "|:-----|------:|----:|"
    say "$(printf '| image %s (docker build %s) | %s | %.1f |' "dockwarden" "${build[*]}" "$size" "$(awk -v b="$size" 'BEGIN{print b/1048576}')")"
    for b in state-controller status-api; do
      s=$(stat -c %s "$REL/$b")
      say "$(printf '| binary %s (static, stripped) | %s | %.1f |' "$b" "$s" "$(awk -v b="$s" 'BEGIN{print b/1048576}')")"
    done
  else
    say "image build failed"
    status=1
  fi
  say ""
fi

engine_ok
if ! skip api; then
  if [ -f bench/api-load.sh ]; then
    say "== status API under load: bench/api-load.sh (load before: $(load)) =="
    bash bench/api-load.sh 2>&1 | tee -a "$REPORT" || status=1
    say "(load after: $(load))"
  else
    say "== status API under load: bench/api-load.sh not present yet, skipped =="
  fi
fi

say ""
say "load at end: $(load); report: $REPORT"
exit $status
