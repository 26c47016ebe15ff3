#!/usr/bin/env bash
# Boots the harness's guest with guest.sh as init, perf (the host's, with its libraries) added.
# Needs a prior `stress-tests/vm test` or `bench` (kernel and initramfs under target/vm).
# Usage: docs/bench/profile/run.sh [SCX_BRISK_ARGS...]; the output is in target/vm/profile.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/lib64" "$work/root/lib/x86_64-linux-gnu"
cp /usr/bin/perf "$work/root/bin/perf"
ldd /usr/bin/perf | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
    cp -L "$lib" "$work/root/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$work/root/lib64/"
{ printf '#!/bin/sh\nexec /guest-main.sh'; [ $# -eq 0 ] || printf ' %q' "$@"; printf '\n'; } >"$work/root/guest.sh"
cp "$root/docs/bench/profile/guest.sh" "$work/root/guest-main.sh"
chmod +x "$work/root/guest.sh" "$work/root/guest-main.sh"
(cd "$work/root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/extra.cpio.gz"
cat "$root/target/vm/initramfs.cpio.gz" "$work/extra.cpio.gz" >"$work/initramfs.cpio.gz"
kernel="$(ls -d "$root"/target/vm/kernel/*/ | head -1)"
timeout 1200 qemu-system-x86_64 -nodefaults -accel tcg -cpu max -smp 2 -m 2048M \
    -kernel "$kernel/vmlinuz" -initrd "$work/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/guest.sh" -display none \
    -no-reboot -monitor none -serial file:"$work/console.log" -serial file:"$root/target/vm/profile.log"
echo "output: $root/target/vm/profile.log"
