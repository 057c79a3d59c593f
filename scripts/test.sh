#!/usr/bin/env bash
# The test command (README "Test it"): unit tests, integration tests against the real
# Docker Engine, then the end-to-end and deployment checks. Everything it creates is named
# dwtest* and removed at the end, pass or fail. Every check runs even when an earlier one
# failed; the exit status says whether all passed, and the summary says which did not.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() { bash scripts/cleanup.sh; }
trap cleanup EXIT
cleanup

failed=()
mkdir -p target/checks

# Checks run in the background, each job's output in a log of its own, printed at the end.
declare -A bg_pid
background=()
bg_log() { echo "target/checks/$(basename "${1%% *}" .sh).log"; }
# bg_start "SCRIPT [SCRIPT...]": one background job running the scripts one after the other.
bg_start() {
  (
    status=0
    for s in $1; do
      [ -f "$s" ] || continue
      printf '\n=== %s ===\n' "$s"
      bash "$s" || { printf '\n=== FAILED: %s ===\n' "$s"; status=1; }
    done
    exit "$status"
  ) >"$(bg_log "$1")" 2>&1 &
  bg_pid[$1]=$!
  background+=("$1")
}

# Checks that need no engine run beside the builds and the tests: the deployment files (yamllint,
# Kubernetes schemas, checkov, hadolint, the stack file, the shipped policies) and the
# Prometheus alert rules.
bg_start scripts/lint-deploy.sh
bg_start scripts/check-alerts.sh

# Static release binaries for the images the tests and the deployment build, and the test
# binaries, side by side: each build has stretches where it uses one core (a big crate, a
# link), so the two together finish sooner than one after the other. They use different
# target directories, so neither waits for the other's lock.
if cargo nextest --version >/dev/null 2>&1; then
  runner=(cargo nextest run --workspace) serial=()
else
  runner=(cargo test --workspace) serial=(-- --test-threads=1)
fi
bash scripts/build-static.sh &
static_pid=$!
test_build=0
"${runner[@]}" --no-run || test_build=$?
wait "$static_pid"
[ "$test_build" = 0 ] || { echo "the tests do not build"; exit 1; }

"${runner[@]}" --no-fail-fast "${serial[@]}" || failed+=("${runner[*]:0:2}")

# After the tests (beside them, the load would slow and perturb their timing): a real
# three-node swarm, and the k8s pod as kubelet + cri-dockerd run it, one after the other on
# private engines of their own (they only build and save images on the shared one; both need
# root: .ci/run has it), beside the page in a real browser, the compose deployment and the
# README's first-run command on a fresh clone, which use the shared engine.
bg_start "scripts/swarm-test.sh scripts/kubelet-test.sh"
for s in scripts/browser-test.sh scripts/e2e-compose.sh scripts/e2e-firstrun.sh; do
  [ -f "$s" ] || continue
  printf '\n=== %s ===\n' "$s"
  bash "$s" || failed+=("$s")
done

for job in "${background[@]}"; do
  printf '\n=== %s ===\n' "$job"
  status=0
  wait "${bg_pid[$job]}" || status=$?
  cat "$(bg_log "$job")"
  [ "$status" = 0 ] || failed+=("$job")
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf '\n=== FAILED: %s ===\n' "${failed[*]}"
  exit 1
fi
printf '\n=== all checks passed ===\n'
