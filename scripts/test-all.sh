#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine (as root): installs what it needs, then builds, type-checks,
# lints and runs every test. Its last line is "N passed, N failed, N skipped". Everything runs on the Node.js that
# install-deps.sh chose (scripts/node-env.sh): Node.js 24 from .node/ when the node on PATH is older.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
berth_use_node
exec node scripts/test.mjs "$@"
