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
# install-deps.sh provisions Node.js 24 in .node/ when the node on PATH is older (and says so in one line); the
# build below and bin/berth (which prefers .node/bin/node by itself) then run on it.
./scripts/install-deps.sh
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
berth_use_node
berth_npm run build --silent >/tmp/berth-demo-build.log 2>&1 || {
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
