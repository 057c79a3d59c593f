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

# Static release binaries for the images the tests and the deployment build.
bash scripts/build-static.sh

# Checks that need no engine run beside the tests: the deployment files (yamllint,
# Kubernetes schemas, checkov, hadolint, the stack file, the shipped policies) and the
# Prometheus alert rules.
background=(scripts/lint-deploy.sh scripts/check-alerts.sh)
declare -A bg_pid
for s in "${background[@]}"; do
  bash "$s" >"target/checks/$(basename "$s" .sh).log" 2>&1 &
  bg_pid[$s]=$!
done

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast || failed+=("cargo nextest")
else
  cargo test --workspace --no-fail-fast -- --test-threads=1 || failed+=("cargo test")
fi

# The page in a real browser, the compose deployment and the README's first-run command on
# a fresh clone, a real three-node swarm of private engines, and the k8s pod as kubelet +
# cri-dockerd run it (the last two need root: .ci/run has it).
for s in scripts/browser-test.sh scripts/e2e-compose.sh scripts/e2e-firstrun.sh \
  scripts/swarm-test.sh scripts/kubelet-test.sh; do
  [ -f "$s" ] || continue
  printf '\n=== %s ===\n' "$s"
  bash "$s" || failed+=("$s")
done

for s in "${background[@]}"; do
  printf '\n=== %s ===\n' "$s"
  status=0
  wait "${bg_pid[$s]}" || status=$?
  cat "target/checks/$(basename "$s" .sh).log"
  [ "$status" = 0 ] || failed+=("$s")
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf '\n=== FAILED: %s ===\n' "${failed[*]}"
  exit 1
fi
printf '\n=== all checks passed ===\n'
