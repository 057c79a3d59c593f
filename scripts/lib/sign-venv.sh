#!/usr/bin/env bash
# Prints the path of a Python that has `cryptography` for scripts/lib/cosign_sign.py (the
# test signer of issue 18): $DWTEST_PYTHON when set, else a venv under target/sign-venv
# made once from PyPI (remade when the pin below changes), like scripts/lint-deploy.sh's
# target/lint-venv. A lock keeps parallel test processes from making it twice.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${DWTEST_PYTHON:-}" ]; then echo "$DWTEST_PYTHON"; exit 0; fi
PKGS="cryptography==48.0.0"
VENV=target/sign-venv
mkdir -p target
exec 9>target/.dwtest-sign-venv.lock
flock 9
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.dockwarden-pkgs" 2>/dev/null)" != "$PKGS" ]; then
  echo "sign-venv: installing $PKGS into $VENV (once)" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q $PKGS >&2
  echo "$PKGS" >"$VENV/.dockwarden-pkgs"
fi
echo "$PWD/$VENV/bin/python"
