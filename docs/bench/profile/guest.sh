#!/bin/sh
# The ad-hoc guest script behind the README's context-switch and profile figures (not part of
# the test suite). Runs as the guest's init (rdinit=/guest.sh, see run.sh): hackbench and the
# wakeup pairs under EEVDF and under scx_brisk in turn, counting context switches and IPIs,
# then a `perf record -a` profile of each under each scheduler. Output goes to the second
# serial port.
# set -u but not -e: this script is init, and init exiting panics the guest; a failing step
# shows in the log instead. $HB, $W and $2 are split into words on purpose.
set -u
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run; mkdir -p /dev/shm; mount -t tmpfs tmpfs /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing; mount -t bpf bpf /sys/fs/bpf
ip link set lo up
kver=$(uname -r); [ -e "/boot/config-$kver" ] || ln -s config "/boot/config-$kver"
stty -F /dev/ttyS1 raw -echo
exec >/dev/ttyS1 2>&1
cd /tmp
echo 0 >/proc/sys/kernel/kptr_restrict; echo -1 >/proc/sys/kernel/perf_event_paranoid
echo 1 >/proc/sys/net/core/bpf_jit_kallsyms
HB="hackbench -g 4 -l 100"
W="/bin/brisk-guest workload wakeup --duration-s 5 --load-pct 50"
start_brisk() {
  /bin/scx_brisk "$@" >/tmp/brisk.log 2>&1 & BP=$!
  i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != enabled ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  echo "sched_ext: $(cat /sys/kernel/sched_ext/state)"
}
stop_brisk() { kill -INT "$BP"; wait "$BP"; echo "scx_brisk exit $?"; }
phase() {
  echo "== $1"; a=$(grep ctxt /proc/stat)
  for i in 1 2 3; do $HB | grep Time; done
  b=$(grep ctxt /proc/stat); echo "hackbench x3: $a -> $b"
  grep -E "RES|CAL" /proc/interrupts | sed 's/^/before /'
  echo "wakeup: $($W | tr -d '\n' | head -c 400)"
  grep -E "RES|CAL" /proc/interrupts | sed 's/^/after /'
}
for r in 1 2; do
  phase eevdf
  start_brisk "$@"; phase "scx_brisk $*"; stop_brisk
done
profile() {
  perf record -a -F 2000 -o "/tmp/$1.data" -- $2 >/dev/null 2>&1
  echo "== perf $1"; perf report -i "/tmp/$1.data" --stdio --sort sym 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
}
profile eevdf-hackbench "$HB"; profile eevdf-wakeup "$W"
start_brisk "$@"; profile brisk-hackbench "$HB"; profile brisk-wakeup "$W"; stop_brisk
echo "BRISK-GUEST-EXIT 0"
sync; poweroff -f
