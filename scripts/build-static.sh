#!/usr/bin/env bash
# Builds static (glibc, crt-static) release binaries of both programs and the test fixture
# into target/x86_64-unknown-linux-gnu/release/. --target is required: without it RUSTFLAGS
# reach proc-macros and the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu \
  -p state-controller -p status-api -p dockwarden-testkit --bins
