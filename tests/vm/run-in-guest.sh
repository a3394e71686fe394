#!/usr/bin/env bash
# Runs one command inside a throw-away User-mode-Linux guest that has real cgroup v2 controllers
# (cpu, io, memory, pids), and exits with the command's exit code.
#
# Usage: tests/vm/run-in-guest.sh [options] -- CMD [ARGS...]
#   --timeout SEC         kill the guest after SEC seconds (default 600); exit code 124
#   --mem SIZE            guest memory, UML syntax (default 2G)
#   --scratch-disk MB     attach a sparse MB-sized scratch disk as /dev/ubdb; the command sees
#                         JOBWORKER_TEST_SCRATCH_DEVICE=/dev/ubdb
#   --partitioned-disk    attach a 4 MB disk /dev/ubdc with an MBR partition table and one
#                         partition, /dev/ubdc1; the command sees JOBWORKER_TEST_PARTITION=/dev/ubdc1
#   --results DIR         host directory the guest may write to, mounted at the same path in the
#                         guest (everything else the guest writes is thrown away); the command sees
#                         JOBWORKER_VM_RESULTS=DIR
#   --cgroup PATH         start the command in cgroup /sys/fs/cgroup/PATH (created, with every
#                         controller available from its parent), as a service under systemd
#                         Delegate=yes would be; default: the root cgroup
#   --boot-log FILE       keep the guest's kernel console log in FILE
#   --verbose             print timings and the kernel console log to stderr
#
# The guest sees the host's whole file system read-only with a tmpfs on top (writes are discarded),
# runs CMD as root with the same working directory and environment as the caller, stdin /dev/null,
# stdout and stderr streamed back separately. Exit codes other than CMD's: 124 time limit reached,
# 125 the harness or the guest failed (the kernel console log is printed).
#
# Needs root (apt-get, UML's host side). Installs user-mode-linux, busybox-static and cpio if missing.
set -euo pipefail

readonly script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly cache_dir=${JOBWORKER_VM_CACHE:-$script_dir/.cache}
readonly uml=/usr/bin/linux.uml

timeout_sec=600
mem=2G
scratch_mb=
partitioned_disk=0
results_dir=
cgroup=
boot_log_copy=
verbose=0

# fd 3: the caller's stderr, kept while stderr itself is silenced around killing the guest (bash would
# otherwise report "Killed" for UML's processes).
exec 3>&2
die() { echo "run-in-guest: $*" >&3; exit 125; }
log() { [ "$verbose" = 0 ] || echo "run-in-guest: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

while [ $# -gt 0 ]; do
    case $1 in
        --timeout) timeout_sec=${2:?--timeout needs seconds}; shift 2 ;;
        --mem) mem=${2:?--mem needs a size such as 2G}; shift 2 ;;
        --scratch-disk) scratch_mb=${2:?--scratch-disk needs a size in MB}; shift 2 ;;
        --partitioned-disk) partitioned_disk=1; shift ;;
        --results) results_dir=${2:?--results needs a directory}; shift 2 ;;
        --cgroup) cgroup=${2:?--cgroup needs a path below /sys/fs/cgroup}; shift 2 ;;
        --boot-log) boot_log_copy=${2:?--boot-log needs a file}; shift 2 ;;
        --verbose) verbose=1; shift ;;
        --) shift; break ;;
        *) die "unknown option '$1'; usage: $0 [--timeout SEC] [--scratch-disk MB] [--results DIR] -- CMD [ARGS...]" ;;
    esac
done
[ $# -gt 0 ] || die "no command given; usage: $0 [options] -- CMD [ARGS...]"
[[ $timeout_sec =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds, got '$timeout_sec'"
[ -z "$scratch_mb" ] || [[ $scratch_mb =~ ^[1-9][0-9]*$ ]] || die "--scratch-disk must be a size in MB, got '$scratch_mb'"
[[ $mem =~ ^[1-9][0-9]*[KMG]?$ ]] || die "--mem must look like 2G or 1536M, got '$mem'"
[[ -z $cgroup || $cgroup =~ ^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$ ]] || die "--cgroup must be a relative path such as system.slice/jobworker.service, got '$cgroup'"
if [ -n "$results_dir" ]; then
    [ -d "$results_dir" ] || die "results directory '$results_dir' does not exist"
    results_dir=$(cd -- "$results_dir" && pwd -P)
fi
[ "$(id -u)" = 0 ] || die "must run as root (installs packages; UML needs to ptrace its own processes)"

# --- 1. Packages, only if missing ---------------------------------------------------------------
t0=$(now)
missing=()
for pkg in user-mode-linux busybox-static cpio; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "run-in-guest: installing ${missing[*]}" >&2
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=300 "${missing[@]}" >&2
    }
    # The package lists may be absent (fresh CI image): update once, only when the install fails.
    apt_install || { apt-get update -q -o DPkg::Lock::Timeout=300 >&2 && apt_install; } \
        || die "cannot install ${missing[*]}"
    log "installed ${missing[*]} in $(elapsed "$t0") s"
fi
[ -x "$uml" ] || die "$uml is missing although user-mode-linux is installed"

# --- 2. The initramfs: busybox + guest-init.sh, cached by content --------------------------------
key=$(cat "$script_dir/guest-init.sh" /bin/busybox | sha256sum | cut -c1-16)
initramfs=$cache_dir/initramfs-$key.cpio
if [ ! -s "$initramfs" ]; then
    t0=$(now)
    mkdir -p "$cache_dir"
    stage=$(mktemp -d "$cache_dir/stage.XXXXXX")
    mkdir -p "$stage"/{bin,dev,proc,sys,lower,rw,newroot}
    cp /bin/busybox "$stage/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$stage/bin/$applet"
    done
    # The kernel opens /dev/console for init before init could mount devtmpfs.
    mknod -m 600 "$stage/dev/console" c 5 1
    install -m 755 "$script_dir/guest-init.sh" "$stage/init"
    (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$stage.cpio"
    mv -f "$stage.cpio" "$initramfs"
    rm -rf "$stage"
    # Images of older guest-init.sh versions are never used again.
    find "$cache_dir" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "initramfs-$key.cpio" -delete
    log "built $initramfs in $(elapsed "$t0") s"
fi

# --- 3. Per-run directory: control files, fifos, boot log, scratch disk --------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobworker-vm.XXXXXX")
shared=$tmp/shared
mkdir -p "$shared" "$tmp/uml"
uml_pid=
sleep_pid=
reader_pids=()

# Everything UML started is in its own session/process group (setsid below). Kill that group until
# no member is left: UML's helper processes survive a kill of the main process otherwise.
kill_guest() {
    [ -n "$uml_pid" ] || return 0
    local tries=0
    while [ -n "$(ps -o pid= -g "$uml_pid" 2>/dev/null)" ]; do
        kill -KILL -- "-$uml_pid" 2>/dev/null || true
        tries=$((tries + 1))
        [ $tries -lt 100 ] || { echo "run-in-guest: processes of group $uml_pid survive SIGKILL" >&3; break; }
        sleep 0.05
    done 2>/dev/null
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    exec 2>/dev/null
    kill_guest
    [ -z "$sleep_pid" ] || kill "$sleep_pid" || true
    for p in "${reader_pids[@]}"; do kill "$p" || true; done
    wait || true
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cmd.sh runs under the host's bash inside the guest: same cwd, same environment (minus shell
# bookkeeping), plus what tells a test where it is.
{
    echo '#!/bin/bash'
    printf 'cd -- %q || { echo "run-in-guest: working directory %q does not exist in the guest" >&2; exit 125; }\n' "$PWD" "$PWD"
    printf 'exec env -i --'
    while IFS= read -r name; do
        case $name in PWD|OLDPWD|SHLVL|_|BASH_FUNC_*|JOBWORKER_VM*|JOBWORKER_TEST_SCRATCH_DEVICE|JOBWORKER_TEST_PARTITION) continue ;; esac
        printf ' %q' "$name=${!name}"
    done < <(compgen -e)
    printf ' %q' "PWD=$PWD" "JOBWORKER_VM=1"
    [ -z "$results_dir" ] || printf ' %q' "JOBWORKER_VM_RESULTS=$results_dir"
    [ -z "$scratch_mb" ] || printf ' %q' "JOBWORKER_TEST_SCRATCH_DEVICE=/dev/ubdb"
    [ "$partitioned_disk" = 0 ] || printf ' %q' "JOBWORKER_TEST_PARTITION=/dev/ubdc1"
    printf ' %q' "$@"
    echo
} > "$shared/cmd.sh"

args=(
    "mem=$mem" "initrd=$initramfs" "cgroup_no_v1=all"
    "umid=jw" "uml_dir=$tmp/uml"
    # Kernel console and UML's own messages -> boot log; command stdout/stderr -> ttyS0/ttyS1.
    "con=null" "con0=null,fd:1" "ssl=null" "ssl0=null,fd:4" "ssl1=null,fd:5"
    "JW_SHARED=$shared"
)
[ -z "$results_dir" ] || args+=("JW_RESULTS=$results_dir")
[ -z "$cgroup" ] || args+=("JW_CGROUP=$cgroup")
if [ -n "$scratch_mb" ]; then
    truncate -s "${scratch_mb}M" "$tmp/scratch.img"
    args+=("ubdb=$tmp/scratch.img" "JW_SCRATCH=/dev/ubdb")
fi
if [ "$partitioned_disk" = 1 ]; then
    # MBR by hand (no partitioning tool needed): one Linux (0x83) partition from sector 2048 to the end
    # of the 8192-sector disk, then the 0x55AA signature. The guest kernel reads it at boot.
    truncate -s 4M "$tmp/partitioned.img"
    printf '\x00\x00\x21\x00\x83\x00\x00\x00\x00\x08\x00\x00\x00\x18\x00\x00' \
        | dd of="$tmp/partitioned.img" bs=1 seek=446 conv=notrunc status=none
    printf '\x55\xaa' | dd of="$tmp/partitioned.img" bs=1 seek=510 conv=notrunc status=none
    args+=("ubdc=$tmp/partitioned.img" "JW_PARTITION=/dev/ubdc1")
fi

# Readers of the two output channels. UML switches its fds to non-blocking mode; handing it fifos
# keeps that from leaking into the caller's stdout/stderr.
mkfifo "$tmp/out" "$tmp/err"
cat "$tmp/out" &
reader_pids+=($!)
cat "$tmp/err" >&2 &
reader_pids+=($!)

# --- 4. Boot, wait for the command or the time limit --------------------------------------------
t0=$(now)
# In a non-interactive shell a background job is not a group leader, so setsid execs UML in place:
# $! is UML's pid and the id of its new session and process group.
TMPDIR=/dev/shm setsid "$uml" "${args[@]}" < /dev/null > "$tmp/boot.log" 2>&1 3>&- 4> "$tmp/out" 5> "$tmp/err" &
uml_pid=$!
sleep "$timeout_sec" &
sleep_pid=$!

timed_out=0
wait -n "$uml_pid" "$sleep_pid" || true
if kill -0 "$uml_pid" 2>/dev/null && ! kill -0 "$sleep_pid" 2>/dev/null; then
    timed_out=1
fi
exec 2>/dev/null
kill "$sleep_pid" || true
wait "$sleep_pid" || true
sleep_pid=
kill_guest
wait "$uml_pid" || true
for p in "${reader_pids[@]}"; do wait "$p" || true; done
reader_pids=()
exec 2>&3
log "guest ran for $(elapsed "$t0") s"

[ -z "$boot_log_copy" ] || cp "$tmp/boot.log" "$boot_log_copy"
if [ "$verbose" = 1 ]; then
    echo "----- guest kernel console -----" >&2
    cat "$tmp/boot.log" >&2
    echo "----- end of guest kernel console -----" >&2
fi

if [ "$timed_out" = 1 ]; then
    echo "run-in-guest: time limit of ${timeout_sec} s reached; guest killed. Last kernel console lines:" >&2
    tail -n 30 "$tmp/boot.log" >&2
    exit 124
fi
if [ ! -s "$shared/exit-code" ]; then
    echo "run-in-guest: the guest stopped without recording the command's exit code. Kernel console:" >&2
    tail -n 60 "$tmp/boot.log" >&2
    exit 125
fi
exit "$(cat "$shared/exit-code")"
