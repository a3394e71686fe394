#!/usr/bin/env bash
# JobWorker's two entry points:
#   ./run.sh demo   build, create a development PKI, start the server, run a first job through the CLI
#   ./run.sh test   build and run the whole test suite: host tests, the packages (.deb and NuGet, see
#                   tests/packaging), then the cgroup-controller tests inside a User-mode Linux guest
#                   (real cpu/memory/io/pids controllers)
# Both need root (jobs run in cgroups as an unprivileged user) and the .NET 10 SDK.
set -euo pipefail
cd "$(dirname "$0")"
repo=$PWD

die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (jobs are placed in cgroups and run as another user); try: sudo $0 $*"
command -v dotnet >/dev/null || die "the .NET 10 SDK is required (https://learn.microsoft.com/dotnet/core/install/linux-debian)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

ensure_build_tools() {
    command -v cc >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev; }
}

# Sums passed/failed/skipped over xunit v2+ XML result files ("<assembly ... passed= failed= skipped=").
sum_results() {
    local passed=0 failed=0 skipped=0 f line
    for f in "$@"; do
        [ -f "$f" ] || continue
        while read -r line; do
            passed=$((passed + $(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$line")))
            failed=$((failed + $(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$line") + $(sed -n 's/.* errors="\([0-9]*\)".*/\1/p' <<<"$line")))
            skipped=$((skipped + $(sed -n 's/.* skipped="\([0-9]*\)".*/\1/p' <<<"$line")))
        done < <(grep -o '<assembly [^>]*>' "$f")
    done
    echo "$passed $failed $skipped"
}

# CI is CI=true, 1 or yes (what CI services set; .ci/run sets it too).
is_ci() { case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) return 0 ;; *) return 1 ;; esac; }

# Compares the skips in the host's xunit reports with the expected list (a test's name, then the reason).
# Prints what it found; the last line is the number of unexpected skips, each of which fails the run.
check_host_skips() {
    python3 - "$@" <<'PY'
import os, sys
import xml.etree.ElementTree as ET

listing, reports = sys.argv[1], sys.argv[2:]
expected = {}
for number, line in enumerate(open(listing), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    name, _, reason = line.partition(" ")
    if not reason.strip():
        sys.exit(f"{listing}:{number}: '{name}' has no reason; write the test's name, a space, then why it skips on this host")
    if name in expected:
        sys.exit(f"{listing}:{number}: '{name}' is listed twice")
    expected[name] = reason.strip()

unexpected, skipped, ran = [], set(), set()
for report in reports:
    for test in ET.parse(report).getroot().iter("test"):
        name = test.get("name") or ""
        # A theory's cases are named "Type.Method(args)"; listing "Type.Method" covers them all.
        key = name if name in expected else f"{test.get('type')}.{test.get('method')}"
        in_guest = any(t.get("name") == "Category" and t.get("value") == "CgroupControllers" for t in test.iter("trait"))
        if test.get("result") == "Skip":
            if key in expected:
                skipped.add(key)
            else:
                reason = (test.findtext("reason") or "").strip()
                unexpected.append(f"  UNEXPECTED SKIP {name}: {reason}" + ("" if in_guest else " (it does not run in the guest either)"))
        elif key in expected and test.get("result") in ("Pass", "Fail"):
            ran.add(key)

print(f"host skips: {len(skipped)} expected (listed in {os.path.relpath(listing)}), {len(unexpected)} unexpected")
for line in unexpected:
    print(line)
for name in sorted(ran - skipped):
    print(f"  note: {name} is listed as an expected host skip but ran on this host")
for name in sorted(set(expected) - skipped - ran):
    print(f"  note: {name} is listed as an expected host skip but is in no host report (renamed or removed?)")
print(len(unexpected))
PY
}

cmd_test() {
    # The guest suite is what proves the limits on real controllers: CI may not run without it. Checked
    # before anything is built, so a CI that switches it off fails at once.
    local guest_off=""
    if [ "${JOBWORKER_SKIP_GUEST:-0}" = 1 ]; then
        guest_off="JOBWORKER_SKIP_GUEST=1 is set"
    elif [ ! -x tests/vm/run-controller-tests.sh ]; then
        guest_off="tests/vm/run-controller-tests.sh is not executable (chmod +x it)"
    fi
    if [ -n "$guest_off" ] && is_ci; then
        die "refusing to skip the guest suite under CI=$CI: $guest_off. The cgroup-controller tests (memory, cpu, io and pids limits) run only in the guest; without it a green run proves none of them."
    fi
    command -v python3 >/dev/null || die "python3 is needed to read the xunit XML reports (apt-get install python3)"

    ensure_build_tools
    local results="$repo/artifacts/test-results"
    rm -rf "$results" && mkdir -p "$results/host" "$results/guest" "$results/packages"
    echo "== build (Release)"
    dotnet build JobWorker.slnx -c Release -nologo -clp:ErrorsOnly

    local exes=() proj name exe rc=0
    for proj in tests/*.Tests/*.Tests.csproj; do
        name=$(basename "$proj" .csproj)
        exe="$(dirname "$proj")/bin/Release/net10.0/linux-x64/$name"
        [ -x "$exe" ] || die "test executable missing after build: $exe"
        exes+=("$exe")
    done

    echo "== host tests"
    for exe in "${exes[@]}"; do
        name=$(basename "$exe")
        echo "-- $name"
        # Controller tests skip themselves here (hybrid cgroups); they run for real in the guest below.
        "$exe" -xml "$results/host/$name.xml" -noLogo -noColor || rc=1
    done

    echo "== host skips against tests/expected-host-skips.txt"
    local report reports=() skips unexpected
    for report in "$results"/host/*.xml; do
        [ -f "$report" ] && reports+=("$report")
    done
    skips=$(check_host_skips "$repo/tests/expected-host-skips.txt" "${reports[@]}") || die "cannot check the host skips (see the message above)"
    unexpected=$(tail -n 1 <<<"$skips")
    sed '$d' <<<"$skips"

    # The .deb (built, lintian, its server and worker run extracted) and the NuGet package (a sample outside the
    # solution runs a job from it): one report, counted below with the others.
    tests/packaging/run-package-tests.sh --results "$results/packages" || rc=1

    if [ -z "$guest_off" ]; then
        echo "== guest tests (User-mode Linux, pure cgroup v2)"
        tests/vm/run-controller-tests.sh --results "$results/guest" "${exes[@]}" || rc=1
    fi

    read -r hp hf hs < <(sum_results "$results"/host/*.xml)
    read -r gp gf gs < <(sum_results "$results"/guest/*.xml)
    read -r pp pf ps < <(sum_results "$results"/packages/*.xml)
    # An unexpected skip on the host counts as a failure, not as a skip.
    hs=$((hs - unexpected))
    hf=$((hf + unexpected))
    echo "host: $hp passed, $hf failed, $hs skipped"
    if [ -n "$guest_off" ]; then
        # The last line keeps its plain format; this one says what it does not cover.
        echo "guest: NOT RUN ($guest_off): no cgroup-controller limit was proven"
    else
        echo "guest: $gp passed, $gf failed, $gs skipped"
    fi
    echo "packages: $pp passed, $pf failed, $ps skipped"
    if [ "$rc" -ne 0 ] && [ $((hf + gf + pf)) -eq 0 ]; then
        echo "a test run failed without a failed test (crash or harness error): see the log above"
        gf=$((gf + 1))
    fi
    echo "$((hp + gp + pp)) passed, $((hf + gf + pf)) failed, $((hs + gs + ps)) skipped"
    [ $((hf + gf + pf)) -eq 0 ]
}

# The demo leaves the server running in the background (pid and log in $state), like a service would be.
cmd_demo() {
    ensure_build_tools
    local state="$repo/artifacts/demo" conf="${XDG_CONFIG_HOME:-$HOME/.config}/jobworker"
    local server="$repo/src/JobWorker.Server/bin/Release/net10.0/linux-x64/JobWorker.Server" worker="$repo/artifacts/worker/worker"
    mkdir -p "$state"
    if [ -f "$state/server.pid" ] && kill -0 "$(cat "$state/server.pid")" 2>/dev/null; then
        echo "== stopping the previous demo server (pid $(cat "$state/server.pid"))"
        kill -TERM "$(cat "$state/server.pid")"
        while kill -0 "$(cat "$state/server.pid")" 2>/dev/null; do sleep 0.2; done
    fi

    echo "== build the server (Release)"
    dotnet build src/JobWorker.Server -c Release -nologo -v q -clp:ErrorsOnly
    # The NativeAOT worker (a few ms per command; the JIT build takes ~350 ms), where make worker and the CLI
    # benchmark put it. Its own obj/bin under artifacts/aot-build: an AOT publish in place would replace the
    # framework-dependent build in src/JobWorker.Cli/bin that the tests run.
    echo "== publish the worker CLI with NativeAOT: $worker (about a minute the first time)"
    dotnet publish src/JobWorker.Cli -c Release --artifacts-path "$repo/artifacts/aot-build" -o "$repo/artifacts/worker" \
        -nologo -v q -clp:ErrorsOnly

    if [ ! -f "$conf/client.json" ]; then
        echo "== create a development PKI in $conf/pki (client configs: $conf/client.json, $conf/admin.json)"
        "$worker" certs init
    fi

    echo "== start the server on 127.0.0.1:50051 (log: $state/server.log)"
    setsid "$server" --ca "$conf/pki/ca.crt" --cert "$conf/pki/server.crt" --key "$conf/pki/server.key" \
        </dev/null >"$state/server.log" 2>&1 &
    echo $! > "$state/server.pid"
    local i
    for i in $(seq 1 100); do
        "$worker" list >/dev/null 2>&1 && break
        kill -0 "$(cat "$state/server.pid")" 2>/dev/null || { cat "$state/server.log" >&2; die "the server exited"; }
        sleep 0.1
    done

    echo "== worker run -- bash -c 'echo hello from job \$\$ as \$(id -un); ...'"
    "$worker" run -- bash -c 'echo "hello from job $$ as $(id -un)"; for i in 1 2 3; do echo "tick $i"; sleep 0.3; done' || true
    echo "== worker list"
    "$worker" list
    cat <<MSG

The server keeps running (pid $(cat "$state/server.pid")). Try:
  alias worker=$worker
  id=\$(worker start -- bash -c 'while true; do date; sleep 1; done')
  worker logs -f \$id        # Ctrl+C to detach
  worker status \$id; worker stop \$id; worker rm \$id
Stop the server with: kill \$(cat $state/server.pid)
MSG
}

case "${1:-}" in
    test) shift; cmd_test "$@" ;;
    demo) shift; cmd_demo "$@" ;;
    *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
