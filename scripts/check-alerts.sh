#!/usr/bin/env bash
# Checks the shipped Prometheus alert rules (docs/alerts.md) with promtool:
#   promtool check rules   deploy/prometheus/dockwarden-alerts.yml   (syntax, PromQL, templates)
#   promtool test rules    deploy/prometheus/dockwarden-alerts.test.yml (each alert firing and not)
#   self-test              each rule weakened on purpose must make the unit tests fail
# promtool comes from Debian's `prometheus` package, installed when missing (as root; the
# package's service is not started where no init system runs it). Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=deploy/prometheus
RULES=dockwarden-alerts.yml
TESTS=dockwarden-alerts.test.yml

if ! command -v promtool >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "promtool not found: apt-get install --no-install-recommends prometheus"; exit 1; }
  echo "installing promtool (Debian package prometheus)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends prometheus
fi
promtool --version 2>&1 | head -1

(cd "$DIR" && promtool check rules "$RULES" && promtool test rules "$TESTS")

# The tests must bite: every change below makes some alert fire too early, too late or for the
# wrong target, and `promtool test rules` has to notice.
MUTANTS=(
  'dockwarden_informer_synced == 0 and dockwarden_denied_live|dockwarden_informer_synced == 0'
  'dockwarden_informer_synced == 0 unless dockwarden_denied_live|dockwarden_informer_synced == 0'
  'for: 5m|for: 0m'
  'reconnects_total[10m]) > 2|reconnects_total[10m]) > 0'
  'reconnects_total[10m]) > 2|reconnects_total[10m]) > 3'
  'for: 20m|for: 5m'
  'dockwarden_policy_file_valid == 0|dockwarden_policy_file_valid < 2'
  'for: 2m|for: 0m'
  '          or (|          or on() vector(0) > 1 and ('
  '{result="error"}[10m]) > 0|{result=~"error|audit"}[10m]) > 0'
  'dockwarden_denied_live > 0 and dockwarden_policy_audit == 0|dockwarden_denied_live > 0'
  'dockwarden_denied_live > 0 and dockwarden_policy_audit == 1|dockwarden_denied_live > 0'
  'for: 10m|for: 1m'
  'for: 30m|for: 10m'
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$DIR/$TESTS" "$work/"
survived=0
for m in "${MUTANTS[@]}"; do
  from=${m%%|*} to=${m#*|}
  python3 - "$DIR/$RULES" "$work/$RULES" "$from" "$to" <<'PY'
import sys
src, dst, a, b = sys.argv[1:]
text = open(src).read()
if a not in text:
    sys.exit(f"self-test: {a!r} is not in {src} any more; update the list in check-alerts.sh")
open(dst, "w").write(text.replace(a, b, 1))
PY
  if (cd "$work" && promtool test rules "$TESTS" >/dev/null 2>&1); then
    echo "FAILED self-test: the unit tests pass with '$from' changed to '$to'"
    survived=$((survived + 1))
  fi
done
[ "$survived" = 0 ] || exit 1
echo "self-test: all ${#MUTANTS[@]} weakened rule files fail the unit tests"
echo "check-alerts: all checks passed"
