#!/usr/bin/env bash
# Raw-shell proof that the User-mode-Linux guest enforces cgroup v2 limits, independent of the
# project's code: memory.max (OOM kill), cpu.max (throttling), pids.max (fork fails), io.max (direct
# writes to the scratch disk slowed down), the same limits in a delegated subgroup, and that the
# host's .NET runs in the guest.
#
# Usage (on the host): tests/vm/smoke.sh
# It re-runs itself inside the guest through run-in-guest.sh and exits non-zero if any check fails.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

if [ "${JOBWORKER_VM:-}" != 1 ]; then
    # Host side: a trivial .NET program to time in the guest, built once (own Directory.*.props so
    # the repository's build settings and central package management do not apply).
    hello=$script_dir/.cache/hello
    if [ ! -f "$hello/bin/hello.dll" ]; then
        mkdir -p "$hello/src"
        echo '<Project />' > "$hello/src/Directory.Build.props"
        echo '<Project />' > "$hello/src/Directory.Packages.props"
        cat > "$hello/src/hello.csproj" <<'EOF'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <ImplicitUsings>disable</ImplicitUsings>
  </PropertyGroup>
</Project>
EOF
        echo 'System.Console.WriteLine("hello from .NET " + System.Environment.Version);' > "$hello/src/Program.cs"
        dotnet build -nologo -v q -c Release -o "$hello/bin" "$hello/src/hello.csproj" >&2
    fi
    exec "$script_dir/run-in-guest.sh" --timeout 300 --scratch-disk 64 -- "$script_dir/smoke.sh"
fi

# ---- Guest side --------------------------------------------------------------------------------
root=/sys/fs/cgroup
failures=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
stat_field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

echo "guest: $(uname -r), controllers: $(cat $root/cgroup.controllers), cpus: $(nproc)"

# Runs "$@" inside cgroup $1 (moves a fresh shell there first, so only the command is limited).
run_in() {
    local cg=$1
    shift
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# Tests the four limits in cgroup $1 (created below an existing group whose subtree_control
# already enables every controller).
check_limits() {
    local base=$1 label=$2 cg rc t0 t1

    # memory.max: 64 MiB against a 300 MB buffer (dd touches every page of its buffer).
    cg=$base/mem
    mkdir "$cg"
    echo 64M > "$cg/memory.max"
    rc=0
    run_in "$cg" dd if=/dev/zero of=/dev/null bs=300M count=1 2>/dev/null || rc=$?
    local oom peak
    oom=$(stat_field "$cg/memory.events" oom_kill)
    peak=$(cat "$cg/memory.peak")
    if [ "$rc" = 137 ] && [ "$oom" -ge 1 ] && [ "$peak" -le $((64 << 20)) ] && [ "$peak" -ge $((48 << 20)) ]; then
        pass "$label memory.max 64M: 300 MB allocator killed (exit $rc), oom_kill $oom, memory.peak $((peak >> 20)) MiB"
    else
        fail "$label memory.max 64M: exit $rc (want 137), oom_kill $oom (want >= 1), memory.peak $peak"
    fi
    rmdir "$cg"

    # cpu.max: 20% of one CPU for a 3 s busy loop -> about 0.6 s of CPU time.
    cg=$base/cpu
    mkdir "$cg"
    echo "20000 100000" > "$cg/cpu.max"
    t0=$(now)
    run_in "$cg" timeout 3 sh -c 'while :; do :; done' || true
    t1=$(now)
    local usage throttled
    usage=$(stat_field "$cg/cpu.stat" usage_usec)
    throttled=$(stat_field "$cg/cpu.stat" nr_throttled)
    if [ "$usage" -le 900000 ] && [ "$usage" -ge 300000 ] && [ "$throttled" -gt 0 ]; then
        pass "$label cpu.max 20%: $(secs "$t0" "$t1") s busy loop used $((usage / 1000)) ms CPU, nr_throttled $throttled"
    else
        fail "$label cpu.max 20%: usage ${usage} us (want 0.3-0.9 s), nr_throttled $throttled (want > 0)"
    fi
    rmdir "$cg"

    # pids.max: 5 tasks; the shell itself is one, so starting 10 sleepers must fail somewhere.
    cg=$base/pids
    mkdir "$cg"
    echo 5 > "$cg/pids.max"
    local started
    started=$(run_in "$cg" sh -c 'n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 >/dev/null 2>&1 & [ $? = 0 ] && n=$((n+1)); done; echo $n' 2>/dev/null || true)
    local current pevents
    current=$(cat "$cg/pids.current")
    pevents=$(stat_field "$cg/pids.events" max)
    echo 1 > "$cg/cgroup.kill"
    while [ "$(cat "$cg/pids.current")" != 0 ]; do sleep 0.1; done
    if [ "$pevents" -gt 0 ] && [ "$current" -le 5 ]; then
        pass "$label pids.max 5: forks refused ${pevents} times, $current tasks left running, group killed and empty"
    else
        fail "$label pids.max 5: pids.events max $pevents (want > 0), pids.current $current (want <= 5), shell reported '$started'"
    fi
    rmdir "$cg"

    # io.max: 2 MiB/s of direct writes on the scratch disk; 8 MiB must take >= 3.5 s.
    if [ -n "${JOBWORKER_TEST_SCRATCH_DEVICE:-}" ]; then
        local dev majmin
        dev=$(basename "$JOBWORKER_TEST_SCRATCH_DEVICE")
        majmin=$(cat "/sys/class/block/$dev/dev")
        cg=$base/io
        mkdir "$cg"
        if echo "$majmin wbps=2097152" > "$cg/io.max"; then
            t0=$(now)
            run_in "$cg" dd if=/dev/zero of="$JOBWORKER_TEST_SCRATCH_DEVICE" bs=1M count=8 oflag=direct 2>/dev/null
            t1=$(now)
            local took
            took=$(secs "$t0" "$t1")
            if awk -v t="$took" 'BEGIN { exit !(t >= 3.5) }'; then
                pass "$label io.max wbps=2MiB/s on $JOBWORKER_TEST_SCRATCH_DEVICE ($majmin): 8 MiB direct write took $took s ($(grep "^$majmin" "$cg/io.stat"))"
            else
                fail "$label io.max wbps=2MiB/s on $JOBWORKER_TEST_SCRATCH_DEVICE ($majmin): 8 MiB took only $took s"
            fi
        else
            fail "$label io.max: the kernel refused '$majmin wbps=2097152' for $JOBWORKER_TEST_SCRATCH_DEVICE"
        fi
        rmdir "$cg"
    fi
}

# Baseline for io: the same write without a limit (shows the limit, not the disk, is slow).
if [ -n "${JOBWORKER_TEST_SCRATCH_DEVICE:-}" ]; then
    t0=$(now)
    dd if=/dev/zero of="$JOBWORKER_TEST_SCRATCH_DEVICE" bs=1M count=8 oflag=direct 2>/dev/null
    echo "info  unthrottled 8 MiB direct write on $JOBWORKER_TEST_SCRATCH_DEVICE: $(secs "$t0" "$(now)") s"
fi

base=$root/smoke
mkdir "$base"
echo "+cpu +io +memory +pids" > "$base/cgroup.subtree_control"
check_limits "$base" "[root]"
rmdir "$base"

# Delegated layout, as under systemd Delegate=yes: a service group holding a process may not enable
# controllers for children ("no internal processes"), so the service first moves itself into a leaf.
svc=$root/system.slice/jobworker.service
mkdir -p "$svc"
echo "+cpu +io +memory +pids" > "$root/system.slice/cgroup.subtree_control"
# The "service" is a subshell sitting in $svc.
(
    echo $BASHPID > "$svc/cgroup.procs"
    if echo "+memory" > "$svc/cgroup.subtree_control" 2>/dev/null; then
        fail "[delegated] enabling controllers in a group with a process should fail (EBUSY)"
    else
        pass "[delegated] enabling controllers in a group with a process fails, as expected"
    fi
    mkdir "$svc/runner"
    echo $BASHPID > "$svc/runner/cgroup.procs"
    echo "+cpu +io +memory +pids" > "$svc/cgroup.subtree_control"
    mkdir "$svc/jobs"
    echo "+cpu +io +memory +pids" > "$svc/jobs/cgroup.subtree_control"
    check_limits "$svc/jobs" "[delegated]"
    rmdir "$svc/jobs"
    exit "$failures"
) || failures=$((failures + $?))
rmdir "$svc/runner" "$svc" "$root/system.slice"

# .NET from the host, through the overlay.
t0=$(now)
if info=$(dotnet --info 2>&1); then
    pass "dotnet --info in $(secs "$t0" "$(now)") s ($(echo "$info" | grep -m1 -i 'Version:' | xargs))"
else
    fail "dotnet --info failed: $info"
fi
hello_dll=$script_dir/.cache/hello/bin/hello.dll
if [ -f "$hello_dll" ]; then
    t0=$(now)
    if out=$(dotnet "$hello_dll" 2>&1); then
        pass "dotnet hello in $(secs "$t0" "$(now)") s: $out"
    else
        fail "dotnet hello failed: $out"
    fi
fi

# Loopback works (Kestrel and its clients need it).
timeout 10 busybox nc -l -p 47321 > /tmp/nc.out &
listener=$!
sleep 0.5
if echo "over loopback" 2>/dev/null > /dev/tcp/127.0.0.1/47321 && wait "$listener" && [ "$(cat /tmp/nc.out)" = "over loopback" ]; then
    pass "loopback: TCP over 127.0.0.1 works"
else
    fail "loopback: no TCP over 127.0.0.1"
fi

if [ "$failures" = 0 ]; then
    echo "smoke: all checks passed"
else
    echo "smoke: $failures check(s) failed"
    exit 1
fi
