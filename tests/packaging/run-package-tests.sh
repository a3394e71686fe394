#!/usr/bin/env bash
# The packages, tested as an operator and a developer meet them (run by `./run.sh test`; needs root):
#   deb.Build                 packaging/deb/build-deb.sh builds the .deb
#   deb.Lintian               lintian finds no error or warning (overrides: packaging/deb/lintian-overrides)
#   deb.SystemdUnitVerifies   systemd-analyze verify accepts the unit inside the extracted package
#   deb.ExtractedServerAndCli the extracted server and worker: certs init, start, logs, stop, server SIGTERM
#   deb.InstallRunPurgeInGuest dpkg -i in the throw-away UML guest: the postinst's directories, the documented
#                             first start (certs init, server, worker run), then dpkg -r and --purge
#   nuget.SampleRunsAJob      dotnet pack of JobWorker.Core; examples/nuget-sample restores it from the local
#                             folder feed and runs a real job
# Each case is one <test> in an xunit-style report (--results DIR/packages.xml) that run.sh counts with the
# others. Everything it creates (temporary root, state directory, cgroup, PKI, processes) is its own and
# is removed at exit, also on failure.
# Options: --results DIR (default artifacts/test-results/packages), --no-build (reuse artifacts/deb).
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

results="$repo/artifacts/test-results/packages"
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --results) results=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        *) echo "usage: $0 [--results DIR] [--no-build]" >&2; exit 2 ;;
    esac
done
mkdir -p "$results"

is_ci() { case "${CI:-}" in [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss]) return 0 ;; *) return 1 ;; esac; }

work=$(mktemp -d /tmp/jobworker-package-test.XXXXXX)
# Job users' directories cannot be under /tmp (a job with mount isolation gets a private one).
users=$(mktemp -d /var/tmp/jobworker-package-test-users.XXXXXX)
chmod 0755 "$users"
server_pid="" cgroup=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null
        wait "$server_pid" 2>/dev/null
    fi
    if [ -n "$cgroup" ] && [ -d "$cgroup" ]; then
        # Whatever is left in our own group (a failed test's job or supervisor) goes with it.
        [ -e "$cgroup/cgroup.kill" ] && echo 1 > "$cgroup/cgroup.kill" 2>/dev/null
        local i
        for i in $(seq 1 50); do
            find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null
            [ -d "$cgroup" ] || break
            sleep 0.1
        done
        [ -d "$cgroup" ] && echo "package tests: could not remove $cgroup" >&2
    fi
    rm -rf "$work" "$users"
}
trap cleanup EXIT

# The report: one entry per case, written at the end.
cases=() passed=0 failed=0 skipped=0
xml_escape() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' | tr -d '\000-\010\013\014\016-\037'; }
record() { # record NAME Pass|Fail|Skip SECONDS [MESSAGE]
    local name=$1 result=$2 seconds=$3 message=${4:-} entry
    entry="<test name=\"$name\" type=\"${name%%.*}\" method=\"${name#*.}\" time=\"$seconds\" result=\"$result\">"
    case "$result" in
        Pass) passed=$((passed + 1)) ;;
        Fail) failed=$((failed + 1))
              entry+="<failure><message>$(printf '%s' "$message" | xml_escape)</message></failure>"
              echo "   FAIL $name: $message" ;;
        Skip) skipped=$((skipped + 1))
              entry+="<reason>$(printf '%s' "$message" | xml_escape)</reason>"
              echo "   SKIP $name: $message" ;;
    esac
    [ "$result" = Pass ] && echo "   PASS $name (${seconds}s)"
    cases+=("$entry</test>")
}
run_case() { # run_case NAME FUNCTION: the function prints its failure (or "SKIP: reason") on its last line
    # Not in a subshell: the server's pid and the cgroup it sets must reach cleanup.
    local name=$1 fn=$2 start rc=0 log="$work/$1.log"
    start=$(date +%s)
    "$fn" >"$log" 2>&1 || rc=$?
    local seconds=$(($(date +%s) - start)) last out
    out=$(cat "$log")
    last=$(tail -n 1 <<<"$out")
    if [ $rc -eq 0 ]; then
        record "$name" Pass "$seconds"
    elif [ $rc -eq 77 ]; then
        record "$name" Skip "$seconds" "${last#SKIP: }"
    else
        printf '%s\n' "$out" | tail -n 40 | sed 's/^/     | /'
        record "$name" Fail "$seconds" "$last"
    fi
}
write_report() {
    local total=$((passed + failed + skipped))
    {
        echo '<?xml version="1.0" encoding="utf-8"?>'
        echo "<assemblies><assembly name=\"packages\" test-framework=\"run-package-tests.sh\" total=\"$total\" passed=\"$passed\" failed=\"$failed\" skipped=\"$skipped\" errors=\"0\">"
        echo "<collection name=\"packages\" total=\"$total\" passed=\"$passed\" failed=\"$failed\" skipped=\"$skipped\">"
        printf '%s\n' "${cases[@]}"
        echo '</collection></assembly></assemblies>'
    } > "$results/packages.xml"
}

version=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)
deb="$repo/artifacts/deb/jobworker_${version}_amd64.deb"
root="$work/root"

case_build() {
    if [ $build -eq 1 ]; then
        packaging/deb/build-deb.sh || { echo "build-deb.sh failed (see above)"; return 1; }
    fi
    [ -f "$deb" ] || { echo "no package at $deb"; return 1; }
    dpkg-deb -x "$deb" "$root" || { echo "dpkg-deb -x $deb failed"; return 1; }
    local f
    for f in usr/sbin/jobworker-server usr/lib/jobworker/JobWorker.Server usr/lib/jobworker/jobworker-shim \
        usr/lib/jobworker/jobworker-init usr/lib/jobworker/libjobworker_spawn.so usr/bin/worker \
        lib/systemd/system/jobworker.service etc/jobworker/jobworker.json; do
        [ -e "$root/$f" ] || { echo "the package has no /$f"; return 1; }
    done
}

case_lintian() {
    [ -f "$deb" ] || { echo "no package to check"; return 1; }
    if ! command -v lintian >/dev/null; then
        echo "lintian is not installed; installing it (apt-get install lintian)"
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends lintian; } >/dev/null 2>&1
    fi
    if ! command -v lintian >/dev/null; then
        # Without lintian nothing here proves the package clean: a CI run fails, a local run says so.
        is_ci && { echo "lintian is not installed and apt-get install lintian failed"; return 1; }
        echo "SKIP: lintian is not installed (apt-get install lintian)"
        return 77
    fi
    # Errors and warnings fail; the overrides ship in the package with their reasons.
    local out lrc=0
    out=$(lintian --fail-on error,warning "$deb" 2>&1) || lrc=$?
    grep -v 'running with root privileges' <<<"$out"
    [ $lrc -eq 0 ] || { echo "lintian reported errors or warnings (above), exit code $lrc"; return 1; }
}

case_unit() {
    [ -f "$root/lib/systemd/system/jobworker.service" ] || { echo "no extracted package"; return 1; }
    command -v systemd-analyze >/dev/null || { echo "SKIP: systemd-analyze is not installed"; return 77; }
    # The unit is checked inside the extracted root (its ExecStart must exist there); the host's own units
    # are copied in beside it for its dependencies (network.target, multi-user.target).
    local host_units
    for host_units in /usr/lib/systemd/system /lib/systemd/system; do
        [ -d "$host_units" ] && break
    done
    [ -d "$host_units" ] || { echo "SKIP: this host has no systemd unit directory to resolve the unit's dependencies"; return 77; }
    local vroot="$work/verify-root"
    mkdir -p "$vroot/usr/lib/systemd/system" "$vroot/usr/sbin" "$vroot/usr/lib"
    cp -a "$host_units/." "$vroot/usr/lib/systemd/system/"
    cp -a "$root/usr/lib/jobworker" "$vroot/usr/lib/"
    cp -a "$root/usr/sbin/jobworker-server" "$vroot/usr/sbin/"
    ln -s usr/lib "$vroot/lib"
    cp "$root/lib/systemd/system/jobworker.service" "$vroot/usr/lib/systemd/system/jobworker.service"
    systemd-analyze verify --root="$vroot" /usr/lib/systemd/system/jobworker.service \
        || { echo "systemd-analyze verify rejected lib/systemd/system/jobworker.service"; return 1; }
}

case_run() {
    local server="$root/usr/sbin/jobworker-server" worker="$root/usr/bin/worker"
    [ -x "$server" ] && [ -x "$worker" ] || { echo "no extracted package"; return 1; }
    local mount
    mount=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -n 1)
    [ -n "$mount" ] || { echo "no cgroup2 file system is mounted"; return 1; }
    cgroup="$mount/jobworker-package-test-$$"

    # The client config and PKI of this run only: certs init as an operator would, into a temporary home.
    mkdir -p "$work/home"
    local url=""
    w() { env HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" WORKER_CONFIG="$work/config/client.json" \
        ${url:+WORKER_SERVER="$url"} "$worker" "$@"; }
    w certs init --dir "$work/pki" --config-dir "$work/config" || { echo "worker certs init failed"; return 1; }

    # Port 0: the server picks a free port and logs it.
    "$server" --listen 127.0.0.1:0 --ca "$work/pki/ca.crt" --cert "$work/pki/server.crt" --key "$work/pki/server.key" \
        --state-dir "$work/state" --cgroup-root "$cgroup" --user-dir-root "$users" \
        </dev/null >"$work/server.log" 2>&1 &
    server_pid=$!
    local i
    for i in $(seq 1 600); do
        url=$(sed -n 's/.*Listening for gRPC on \(https:[^ ]*\) .*/\1/p' "$work/server.log" | head -n 1)
        [ -n "$url" ] && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "the extracted server exited before it listened"; return 1; }
        sleep 0.1
    done
    [ -n "$url" ] || { cat "$work/server.log"; echo "the extracted server did not listen within 60 s"; return 1; }

    local id marker="hello from the packaged jobworker"
    id=$(w start -- sh -c "echo '$marker'; exec sleep 300") || { cat "$work/server.log"; echo "worker start failed"; return 1; }
    local out=""
    for i in $(seq 1 300); do
        out=$(w logs "$id") || { echo "worker logs $id failed"; return 1; }
        grep -qF "$marker" <<<"$out" && break
        sleep 0.1
    done
    grep -qF "$marker" <<<"$out" || { echo "worker logs $id: expected '$marker', got '$out'"; return 1; }
    w stop --grace 1s "$id" || { echo "worker stop $id failed"; return 1; }
    local status
    status=$(w status --json "$id") || { echo "worker status $id failed"; return 1; }
    grep -q '"state": *"[A-Za-z]*' <<<"$status" || { echo "worker status --json $id: no state in '$status'"; return 1; }
    grep -qi '"state": *"running"' <<<"$status" && { echo "the job still runs after worker stop: $status"; return 1; }
    w rm "$id" || { echo "worker rm $id failed"; return 1; }

    kill -TERM "$server_pid"
    local rc=0
    wait "$server_pid" || rc=$?
    server_pid=""
    [ $rc -eq 0 ] || { cat "$work/server.log"; echo "the extracted server exited $rc after SIGTERM"; return 1; }
}

case_install() {
    [ -f "$deb" ] || { echo "no package to install"; return 1; }
    # Installing on this host would touch its /usr, /etc and /var/lib/jobworker: the throw-away guest installs it.
    if [ "${JOBWORKER_SKIP_GUEST:-0}" = 1 ] || [ ! -x tests/vm/run-in-guest.sh ]; then
        is_ci && { echo "the guest is needed to install the package (JOBWORKER_SKIP_GUEST=1 or tests/vm/run-in-guest.sh not executable)"; return 1; }
        echo "SKIP: the guest is off (JOBWORKER_SKIP_GUEST=1 or tests/vm/run-in-guest.sh not executable)"
        return 77
    fi
    tests/vm/run-in-guest.sh --timeout 300 -- tests/packaging/install-in-guest.sh "$deb" \
        || { echo "installing, running and purging the package in the guest failed (above)"; return 1; }
}

case_nuget() {
    tests/packaging/run-nuget-sample.sh || { echo "the NuGet sample failed (see above)"; return 1; }
}

echo "== packages (.deb and NuGet; report: $results/packages.xml)"
run_case deb.Build case_build
run_case deb.Lintian case_lintian
run_case deb.SystemdUnitVerifies case_unit
run_case deb.ExtractedServerAndCli case_run
run_case deb.InstallRunPurgeInGuest case_install
run_case nuget.SampleRunsAJob case_nuget
write_report
echo "packages: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
