#!/bin/sh
# Builds the lb-pod image's root filesystem as a plain directory tree: what bin/berth-lb-pod runs and nothing else.
#
#   scripts/build-lb-pod-rootfs.sh [OUT]        (default OUT: build/lb-pod-rootfs; root not needed)
#
# The tree holds busybox, statically linked (sh, awk and the few file tools the scripts use: no dynamic loading on
# each of the entrypoint's process starts), iptables in both variants (xtables-nft-multi
# and xtables-legacy-multi with the iptables-/ip6tables- names the entrypoint calls), nft, conntrack, every shared
# library they load (followed with ldd, the dynamic loader included) and the iptables match/target modules, plus
# bin/berth-lb-pod, bin/berth-lb-pod-check and bin/berth-wait, and berth-sigwait (images/lb-pod/berth-sigwait.c,
# compiled here statically with musl: the resident waiter, a few pages where a waiting shell kept ~1.7 MiB).
# images/lb-pod/Dockerfile runs this same script in a
# Debian build stage of each target platform and copies the tree into FROM scratch; the data-plane tests and the
# sandbox's kubelet run the lb-pod chrooted into it, so a missing library or module fails a test here. Needs, on the
# building machine: busybox-static, iptables, nftables, conntrack, musl-tools (Debian packages of those names) and
# ldd/ldconfig.
# Prints the tree's size and writes it, in bytes, to OUT.size (bench/lb-pod.ts reports it).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/build/lb-pod-rootfs}
case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-lb-pod-rootfs: $1 is missing (install the Debian package $2)" >&2; exit 1; }; }
need busybox busybox-static; need xtables-nft-multi iptables; need xtables-legacy-multi iptables; need nft nftables
need conntrack conntrack; need musl-gcc musl-tools; need ldd libc-bin; need ldconfig libc-bin

rm -rf "$out"
mkdir -p "$out/usr/bin" "$out/usr/sbin" "$out/usr/lib" "$out/etc/berth/rules" "$out/run/berth" "$out/proc" "$out/sys" \
  "$out/dev" "$out/tmp" "$out/var/run"
# Debian's merged /usr: /bin, /sbin and /lib are links into /usr, so paths ldd prints (/lib/...) resolve too.
ln -s usr/bin "$out/bin"; ln -s usr/sbin "$out/sbin"; ln -s usr/lib "$out/lib"
chmod 1777 "$out/tmp"

# Copies a file to the same path under $out (the real file, under its resolved path, plus the name it was asked by).
copy() {
  real=$(readlink -f "$1")
  mkdir -p "$out$(dirname "$real")"
  [ -e "$out$real" ] || cp -p "$real" "$out$real"
  if [ "$1" != "$real" ] && [ ! -e "$out$1" ] && [ ! -L "$out$1" ]; then
    mkdir -p "$out$(dirname "$1")"
    ln -s "$real" "$out$1"
  fi
}
# A binary or module and every library it loads (ldd lists the whole closure, the loader on a line of its own).
copy_with_libraries() {
  copy "$1"
  ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do copy "$lib"; done
}

copy_with_libraries "$(command -v busybox)"
busybox_path=$(readlink -f "$(command -v busybox)")
# What the scripts run (sh, awk, cat, mkdir, mkfifo, mv, rm, date), and a little to look around with.
for applet in sh ash awk cat mkdir mkfifo mv rm date sleep kill pwd readlink env ls grep head tail wc sed printf echo true false ps cp ln; do
  ln -sf "$busybox_path" "$out/usr/bin/$applet"
done

for tool in xtables-nft-multi xtables-legacy-multi nft conntrack; do copy_with_libraries "$(command -v "$tool")"; done
nft_multi=$(readlink -f "$(command -v xtables-nft-multi)")
legacy_multi=$(readlink -f "$(command -v xtables-legacy-multi)")
for name in iptables ip6tables; do
  for suffix in "" -save -restore; do
    ln -sf "$nft_multi" "$out/usr/sbin/$name-nft$suffix"
    ln -sf "$legacy_multi" "$out/usr/sbin/$name-legacy$suffix"
    # Plain iptables / iptables-save for people debugging in the pod: the nft variant, as on Debian and Alpine.
    ln -sf "$nft_multi" "$out/usr/sbin/$name$suffix"
  done
done

# iptables' match and target modules (libxt_*, libipt_*, libip6t_*; not ebtables' or arptables'), from the directory
# next to libxtables, where iptables looks for them.
xtables_dir="$(dirname "$(readlink -f "$(ldd "$nft_multi" | awk '$1 ~ /^libxtables/ { print $3 }')")")/xtables"
[ -d "$xtables_dir" ] || { echo "build-lb-pod-rootfs: no iptables modules in $xtables_dir" >&2; exit 1; }
for module in "$xtables_dir"/libxt_*.so "$xtables_dir"/libipt_*.so "$xtables_dir"/libip6t_*.so; do copy_with_libraries "$module"; done

for script in berth-lb-pod berth-lb-pod-check berth-wait; do
  cp "$repo/bin/$script" "$out/usr/bin/$script"
  chmod 755 "$out/usr/bin/$script"
done
# Static (nothing to load, nothing shared to count) and stripped; -Os: its size is its resident text.
musl-gcc -static -Os -s -o "$out/usr/bin/berth-sigwait" "$repo/images/lb-pod/berth-sigwait.c"
# Names iptables and nft look up (protocols by name, the root user for nft's own checks); tiny.
printf 'root:x:0:0:root:/:/bin/sh\n' >"$out/etc/passwd"
printf 'root:x:0:\n' >"$out/etc/group"
[ -f /etc/protocols ] && cp /etc/protocols "$out/etc/protocols"
# The loader's cache, so libraries resolve in the chroot exactly as here whatever the loader's built-in paths are.
ldconfig -r "$out" 2>/dev/null || :

size=$(du -sb "$out" | awk '{ print $1 }')
echo "$size" >"$out.size"
awk -v b="$size" -v d="$out" 'BEGIN { printf "lb-pod rootfs: %d bytes (%.1f MiB) in %s\n", b, b / 1048576, d }'
