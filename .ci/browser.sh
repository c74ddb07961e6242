#!/usr/bin/env bash
# The storefront clicked through in a real browser: Debian's chromium (installed here when
# missing) driven by playwright-core, axe-core on every page, against the debug binary that
# `cargo test` built, each test's own `bazaar serve --demo` on a free port. Screenshots of every
# step land in target/browser/ (CI keeps them as artifacts).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bin=target/debug/bazaar
[ -x "$bin" ] || cargo build --locked
cd tests/browser
npm ci --no-audit --no-fund --loglevel=error
BAZAAR_BIN="$PWD/../../$bin" CHROMIUM="$(command -v chromium)" npm test
