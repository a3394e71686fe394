#!/bin/sh
# /init of the throw-away User-mode-Linux guest (busybox sh, runs as PID 1).
#
# Packed into the initramfs by run-in-guest.sh; not meant to run on the host. The host passes its
# shared directory as the kernel argument JW_SHARED=... (unknown key=value kernel arguments arrive as
# environment variables of init). That directory holds cmd.sh (what to run) and receives exit-code.
#
# Channels (see run-in-guest.sh): kernel console -> con0 (host boot log), command stdout -> ttyS0,
# command stderr -> ttyS1. Anything this script prints goes to the boot log.

export PATH=/bin
fail() {
    echo "guest-init: $*"
    # exit-code stays absent: the host reports a harness failure and shows this boot log.
    sync
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

[ -n "$JW_SHARED" ] || fail "kernel argument JW_SHARED is missing"
kver=$(uname -r)

# Host root, read-only, with a throw-away tmpfs on top: the guest sees every host path (dotnet, the
# build output, /etc/passwd) but cannot change the host.
mount -t hostfs -o ro,/ none /lower || fail "cannot mount the host root through hostfs"
insmod "/lower/usr/lib/uml/modules/$kver/kernel/fs/overlayfs/overlay.ko" \
    || fail "cannot load overlay.ko for UML kernel $kver"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot \
    || fail "cannot mount the overlay root"

mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
# /run on the host holds live sockets and pid files of host daemons; the guest gets an empty one.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run

# Pure cgroup v2 (the kernel was booted with cgroup_no_v1=all): every controller enabled for children.
mount -t cgroup2 -o nsdelegate cgroup2 /newroot/sys/fs/cgroup || fail "cannot mount cgroup2"
for c in $(cat /newroot/sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /newroot/sys/fs/cgroup/cgroup.subtree_control || fail "cannot enable controller $c"
done

# The host directories the guest may write to (control files; the caller's results directory), each
# at the same path as on the host.
mkdir -p "/newroot$JW_SHARED"
mount -t hostfs -o "$JW_SHARED" none "/newroot$JW_SHARED" || fail "cannot mount shared dir $JW_SHARED"
if [ -n "$JW_RESULTS" ]; then
    mkdir -p "/newroot$JW_RESULTS"
    mount -t hostfs -o "$JW_RESULTS" none "/newroot$JW_RESULTS" || fail "cannot mount results dir $JW_RESULTS"
fi

# Loopback: without it anything that talks to 127.0.0.1 (Kestrel + client) hangs.
ip link set lo up || fail "cannot bring lo up"
hostname jobworker-vm

# Optional scratch block device (ubdb=FILE on the host): /dev/ubdb.
if [ -n "$JW_SCRATCH" ] && [ ! -b "/newroot$JW_SCRATCH" ]; then
    fail "scratch device $JW_SCRATCH requested but missing in the guest"
fi
# Optional partitioned disk (ubdc=FILE with an MBR): its first partition must have been found.
if [ -n "$JW_PARTITION" ] && [ ! -b "/newroot$JW_PARTITION" ]; then
    fail "partition $JW_PARTITION requested but missing in the guest (partition table not read?)"
fi

# Optional cgroup for the command (as under systemd Delegate=yes): created below the root with
# every controller available from its parent, the command starts inside it.
cgroup_procs=
if [ -n "$JW_CGROUP" ]; then
    path=/newroot/sys/fs/cgroup
    rest=$JW_CGROUP
    while [ -n "$rest" ]; do
        part=${rest%%/*}
        [ "$part" = "$rest" ] && rest= || rest=${rest#*/}
        path=$path/$part
        mkdir -p "$path" || fail "cannot create cgroup $path"
        if [ -n "$rest" ]; then
            for c in $(cat "$path/cgroup.controllers"); do
                echo "+$c" > "$path/cgroup.subtree_control" || fail "cannot enable $c in $path"
            done
        fi
    done
    cgroup_procs=$path/cgroup.procs
fi

# Byte-identical output: no \n -> \r\n translation on the serial lines that carry the command's
# stdout/stderr. The command itself writes into pipes (not a tty), as it would in CI.
stty -opost < /dev/ttyS0
stty -opost < /dev/ttyS1
mkfifo /run-out /run-err
cat /run-out > /dev/ttyS0 &
out_pid=$!
cat /run-err > /dev/ttyS1 &
err_pid=$!

(
    [ -z "$cgroup_procs" ] || echo 0 > "$cgroup_procs" || exit 125
    exec chroot /newroot /bin/bash "$JW_SHARED/cmd.sh"
) < /dev/null > /run-out 2> /run-err
rc=$?
wait $out_pid $err_pid
# stty waits (TCSADRAIN) until the serial lines have handed everything to the host.
stty -opost < /dev/ttyS0
stty -opost < /dev/ttyS1

echo "$rc" > "/newroot$JW_SHARED/exit-code"
sync
poweroff -f
