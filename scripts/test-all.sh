#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine (as root): installs what it needs, then builds, type-checks,
# lints and runs every test. Its last line is "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
exec node scripts/test.mjs "$@"
