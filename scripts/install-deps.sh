#!/usr/bin/env bash
# Installs what berth's tests and sandbox need on a fresh Debian machine (run as root): the netfilter tools, the
# network-namespace tools, traffic tools, kubectl, Node.js 24 in .node/ when the node on PATH is older
# (scripts/node-env.sh), then the npm packages with that Node.js. Idempotent; one line about Node.js, otherwise quiet
# unless it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iptables nftables busybox-static musl-tools iproute2 conntrack arping ndisc6 ipv6toolkit tcpdump wrk socat ipvsadm procps kmod strace ca-certificates openssl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v kubectl >/dev/null 2>&1; then missing+=(kubernetes-client); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/berth-apt.log 2>&1 || {
    cat /tmp/berth-apt.log
    exit 1
  }
fi
# shellcheck source=scripts/node-env.sh
. scripts/node-env.sh
berth_provision_node

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  berth_npm ci --no-audit --no-fund --loglevel=error
fi
