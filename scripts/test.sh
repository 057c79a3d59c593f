#!/usr/bin/env bash
# The test command (README "Test it"): unit tests, integration tests against the real
# Docker Engine, then the deployment checks. Everything it creates is named dwtest* and
# removed at the end, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() { bash scripts/cleanup.sh; }
trap cleanup EXIT
cleanup

# Static release binaries for the images the tests and the deployment build.
bash scripts/build-static.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast -- --test-threads=1
fi

# The page in a real browser, then the deployment checks, the alert rules, the README's
# first-run command on a fresh clone, a real three-node swarm of private engines, and the
# k8s pod as kubelet + cri-dockerd run it (the last two need root: .ci/run has it); each
# exits non-zero on failure.
for s in scripts/browser-test.sh scripts/lint-deploy.sh scripts/check-alerts.sh \
  scripts/e2e-compose.sh scripts/e2e-firstrun.sh scripts/swarm-test.sh scripts/kubelet-test.sh; do
  if [ -f "$s" ]; then
    printf '\n=== %s ===\n' "$s"
    bash "$s"
  fi
done
