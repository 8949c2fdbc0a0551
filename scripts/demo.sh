#!/usr/bin/env bash
# The README's first command: on a fresh Debian machine, as root, bring up the sandbox cluster (nodes as network
# namespaces, the real berth controller) with a demo LoadBalancer Service, and show the answer of every EXTERNAL-IP.
# It installs what it needs (scripts/install-deps.sh), builds, takes down what an earlier run left, then runs
# `bin/berth sandbox up --demo`. Extra arguments go to `sandbox up` (e.g. --nodes 5, --dual-stack).
# Afterwards: `bin/berth sandbox down` removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: run it as root (the sandbox creates network namespaces and netfilter rules): sudo $0 $*" >&2
  exit 1
fi
# Node.js >= 20.19 (package.json engines). Debian 12's own nodejs is 18: say so instead of failing later.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; then
  echo "demo.sh: needs Node.js 20.19 or newer (found: $(node --version 2>/dev/null || echo none)); Debian 12 ships 18: install it from Debian 13 or https://deb.nodesource.com, then run $0 again" >&2
  exit 1
fi

./scripts/install-deps.sh
npm run build --silent >/tmp/berth-demo-build.log 2>&1 || {
  cat /tmp/berth-demo-build.log >&2
  echo "demo.sh: the build failed (output above)" >&2
  exit 1
}

# The same --prefix for down as for up, so a custom prefix's leftovers are found too.
prefix=()
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --prefix) prefix=(--prefix "${args[$((i + 1))]:-}") ;;
    --prefix=*) prefix=(--prefix "${args[$i]#--prefix=}") ;;
  esac
done
bin/berth sandbox down "${prefix[@]}"
exec bin/berth sandbox up --demo "$@"
