#!/usr/bin/env bash
# JobWorker's two entry points:
#   ./run.sh demo   build, create a development PKI, start the server, run a first job through the CLI
#   ./run.sh test   build and run the whole test suite: host tests, then the cgroup-controller tests
#                   inside a User-mode Linux guest (real cpu/memory/io/pids controllers)
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

cmd_test() {
    ensure_build_tools
    local results="$repo/artifacts/test-results"
    rm -rf "$results" && mkdir -p "$results/host" "$results/guest"
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

    if [ -x tests/vm/run-controller-tests.sh ] && [ "${JOBWORKER_SKIP_GUEST:-0}" != 1 ]; then
        echo "== guest tests (User-mode Linux, pure cgroup v2)"
        tests/vm/run-controller-tests.sh --results "$results/guest" "${exes[@]}" || rc=1
    fi

    read -r hp hf hs < <(sum_results "$results"/host/*.xml)
    read -r gp gf gs < <(sum_results "$results"/guest/*.xml)
    echo "host: $hp passed, $hf failed, $hs skipped; guest: $gp passed, $gf failed, $gs skipped"
    if [ "$rc" -ne 0 ] && [ $((hf + gf)) -eq 0 ]; then
        echo "a test run failed without a failed test (crash or harness error): see the log above"
        gf=$((gf + 1))
    fi
    echo "$((hp + gp)) passed, $((hf + gf)) failed, $((hs + gs)) skipped"
    [ $((hf + gf)) -eq 0 ]
}

cmd_demo() {
    die "demo: not yet available"
}

case "${1:-}" in
    test) shift; cmd_test "$@" ;;
    demo) shift; cmd_demo "$@" ;;
    *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
