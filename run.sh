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
