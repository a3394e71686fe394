#!/usr/bin/env bash
# Runs the tests that need real cgroup v2 controllers (trait Category=CgroupControllers) of already
# built xunit.v3 test executables inside ONE User-mode-Linux guest boot, and judges them strictly:
# a failed test, a crashed test executable, a controller test that skipped (the guest has every
# controller, so a skip there means the test did not prove anything), a guest that ran a different
# number of tests than the host lists, or no controller test at all fails the run. Executables
# without a matching test are listed on the host and not run in the guest.
#
# Usage: tests/vm/run-controller-tests.sh [options] TEST_EXE_OR_DLL...
#   --timeout SEC      time limit for the whole guest run (default 900)
#   --trait NAME=VAL   which tests to run (default Category=CgroupControllers)
#   --cgroup PATH      run the test executables in cgroup /sys/fs/cgroup/PATH of the guest (as a
#                      service under systemd Delegate=yes) instead of the root cgroup
#   --results DIR      keep the xunit XML reports (one per executable) in DIR
#
# A TEST_EXE is the apphost (tests/X/bin/Release/net10.0/linux-x64/X) or X.dll (run with dotnet).
# The guest has a 64 MB scratch disk: tests find it in JOBWORKER_TEST_SCRATCH_DEVICE (/dev/ubdb); and
# a partitioned disk: tests find its partition in JOBWORKER_TEST_PARTITION (/dev/ubdc1).
# Last line of output: "guest: N passed, N failed, N skipped".
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
self=$script_dir/$(basename -- "${BASH_SOURCE[0]}")

# ---- Guest side: run each executable, keep going after failures -------------------------------
if [ "${1:-}" = --in-guest ]; then
    trait=$2
    shift 2
    i=0
    for exe in "$@"; do
        i=$((i + 1))
        name=$(basename -- "$exe" .dll)
        report=$JOBWORKER_VM_RESULTS/$i-$name
        echo "=== guest: $name (-trait \"$trait\") ==="
        start=$(date +%s.%N)
        cmd=("$exe")
        [[ $exe != *.dll ]] || cmd=(dotnet "$exe")
        rc=0
        "${cmd[@]}" -noColor -noLogo -noAutoReporters -trait "$trait" -xml "$report.xml" || rc=$?
        echo "$rc" > "$report.rc"
        awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' > "$report.seconds"
    done
    exit 0
fi

# ---- Host side ---------------------------------------------------------------------------------
timeout_sec=900
trait=Category=CgroupControllers
cgroup_args=()
keep_results=

die() { echo "run-controller-tests: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case $1 in
        --timeout) timeout_sec=${2:?--timeout needs seconds}; shift 2 ;;
        --trait) trait=${2:?--trait needs NAME=VALUE}; shift 2 ;;
        --cgroup) cgroup_args=(--cgroup "${2:?--cgroup needs a path}"); shift 2 ;;
        --results) keep_results=${2:?--results needs a directory}; shift 2 ;;
        --) shift; break ;;
        -*) die "unknown option '$1'" ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || die "no test executable given; usage: $0 [--timeout SEC] [--cgroup PATH] [--results DIR] TEST_EXE..."
[[ $trait == *=* ]] || die "--trait must be NAME=VALUE, got '$trait'"

exes=()
for exe in "$@"; do
    [ -f "$exe" ] || die "test executable '$exe' does not exist (build it first: dotnet build -c Release tests/X)"
    exe=$(cd -- "$(dirname -- "$exe")" && pwd -P)/$(basename -- "$exe")
    [[ $exe == *.dll || -x $exe ]] || die "'$exe' is neither executable nor a .dll"
    exes+=("$exe")
done

command -v python3 > /dev/null || die "python3 is needed to read the xunit XML reports (apt-get install python3)"

# Discovery on the host (about 0.3 s per executable, against about 5 s in the guest): executables
# without a matching test are not booted for, and the guest must run exactly the tests listed here.
listed=()
expected=()
for exe in "${exes[@]}"; do
    cmd=("$exe")
    [[ $exe != *.dll ]] || cmd=(dotnet "$exe")
    json=$("${cmd[@]}" -noLogo -noColor -list tests/json -trait "$trait") \
        || die "cannot list the tests of $exe (exit code $?): is it an xunit.v3 test executable?"
    count=$(python3 -c 'import json, sys; print(len(json.loads(sys.stdin.read())))' <<< "$json" 2>/dev/null) \
        || die "unexpected test listing from $exe: $json"
    if [ "$count" = 0 ]; then
        echo "guest: $(basename -- "$exe"): no test with trait $trait, not run in the guest"
    else
        listed+=("$exe")
        expected+=("$count")
    fi
done
if [ ${#listed[@]} = 0 ]; then
    echo "guest: no test carries trait $trait: nothing was proven"
    echo "guest: 0 passed, 0 failed, 0 skipped"
    exit 1
fi
exes=("${listed[@]}")

if [ -n "$keep_results" ]; then
    mkdir -p "$keep_results"
    results=$(cd -- "$keep_results" && pwd -P)
    rm -f "$results"/*-*.xml "$results"/*-*.rc "$results"/*-*.seconds
else
    results=$(mktemp -d "${TMPDIR:-/tmp}/jobworker-vm-results.XXXXXX")
    trap 'rm -rf "$results"' EXIT
fi

start=$(date +%s.%N)
guest_rc=0
"$script_dir/run-in-guest.sh" --timeout "$timeout_sec" --scratch-disk 64 --partitioned-disk --results "$results" "${cgroup_args[@]}" \
    -- "$self" --in-guest "$trait" "${exes[@]}" || guest_rc=$?
seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# Judge the reports: per-test failures and guest skips are listed; counts go in the last line.
summary_rc=0
python3 - "$results" "$guest_rc" "$seconds" "${expected[*]}" "${exes[@]}" <<'EOF' || summary_rc=$?
import os, sys
import xml.etree.ElementTree as ET

results, guest_rc, seconds, exes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[5:]
expected = [int(n) for n in sys.argv[4].split()]
passed = failed = skipped = 0
problems = []

for i, exe in enumerate(exes, 1):
    name = os.path.basename(exe)
    if name.endswith(".dll"):
        name = name[:-4]
    base = os.path.join(results, f"{i}-{name}")
    rc = open(base + ".rc").read().strip() if os.path.exists(base + ".rc") else None
    secs = open(base + ".seconds").read().strip() if os.path.exists(base + ".seconds") else "?"
    if not os.path.exists(base + ".xml"):
        failed += 1
        problems.append(f"CRASH {name}: no xunit report (exit code {rc if rc is not None else 'unknown: the guest stopped first'})")
        continue
    try:
        root = ET.parse(base + ".xml").getroot()
    except ET.ParseError as e:
        failed += 1
        problems.append(f"CRASH {name}: unreadable xunit report ({e}); exit code {rc}")
        continue
    p = f = s = 0
    for test in root.iter("test"):
        result = test.get("result")
        tname = test.get("name")
        if result == "Pass":
            p += 1
        elif result == "Skip":
            s += 1
            reason = (test.findtext("reason") or "").strip()
            problems.append(f"SKIP  {name}: {tname}: skipped in the guest, which has every controller: {reason}")
        elif result == "NotRun":
            continue
        else:
            f += 1
            message = (test.findtext("failure/message") or "").strip()
            stack = (test.findtext("failure/stack-trace") or "").strip()
            problems.append(f"FAIL  {name}: {tname}\n      {message}\n" + "".join(f"      {l}\n" for l in stack.splitlines()[:8]))
    # Errors outside tests (fixture/cleanup failures, catastrophic failures).
    for err in root.iter("error"):
        f += 1
        message = (err.findtext("failure/message") or "").strip()
        problems.append(f"ERROR {name}: {err.get('type')} {err.get('name') or ''}: {message}")
    ran = p + f + s
    if ran != expected[i - 1]:
        f += 1
        problems.append(f"COUNT {name}: the host lists {expected[i - 1]} test(s) with the trait, the guest ran {ran}")
    print(f"guest: {name}: {p} passed, {f} failed, {s} skipped in {secs} s (exit code {rc})")
    passed, failed, skipped = passed + p, failed + f, skipped + s

ok = failed == 0 and skipped == 0 and passed > 0 and guest_rc == 0
if problems:
    print("guest: problems:")
    for line in problems:
        print("  " + line.rstrip("\n"))
if guest_rc != 0:
    print(f"guest: the guest run itself failed (run-in-guest.sh exit code {guest_rc}: "
          + {124: "time limit reached", 125: "harness or guest failure"}.get(guest_rc, "unexpected") + ")")
if passed + failed + skipped == 0:
    print("guest: no controller test ran at all: nothing was proven")
print(f"guest: whole guest run {seconds} s")
print(f"guest: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(0 if ok else 1)
EOF
exit "$summary_rc"
