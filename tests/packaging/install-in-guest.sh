#!/usr/bin/env bash
# Runs INSIDE the User-mode Linux guest (tests/vm/run-in-guest.sh), whose writes are thrown away: installs the
# .deb with dpkg, checks what the postinst created, follows docs/operations.md ("Installing the package") with
# the installed files (certs init into /etc/jobworker/pki, the server with its defaults, a job through worker),
# then removes and purges the package. The guest has no systemd: the scripts' systemd steps are skipped there.
# Usage: install-in-guest.sh DEB
set -euo pipefail
deb=${1:?usage: install-in-guest.sh DEB}

fail() { echo "install-in-guest: $*"; exit 1; }
mode_of() { stat -c '%a %U:%G' "$1" 2>/dev/null || echo missing; }

# The guest sees the host's files through a throw-away overlay; on the host itself this script would install the
# package and delete /var/lib/jobworker.
grep -q 'User Mode Linux' /proc/cpuinfo || fail "runs only inside the guest: tests/vm/run-in-guest.sh -- $0 DEB"
# Whatever the host has there (another installation, a demo) is hidden, so the package starts from nothing.
rm -rf /var/lib/jobworker /var/lib/jobworker-users /etc/jobworker

dpkg -i "$deb" || fail "dpkg -i failed"
[ "$(mode_of /var/lib/jobworker)" = "700 root:root" ] || fail "/var/lib/jobworker is $(mode_of /var/lib/jobworker), not 700 root:root"
[ "$(mode_of /var/lib/jobworker-users)" = "755 root:root" ] || fail "/var/lib/jobworker-users is $(mode_of /var/lib/jobworker-users)"
[ "$(mode_of /etc/jobworker/pki)" = "700 root:root" ] || fail "/etc/jobworker/pki is $(mode_of /etc/jobworker/pki)"
dpkg-query -W -f='${Conffiles}\n' jobworker | grep -q /etc/jobworker/jobworker.json || fail "/etc/jobworker/jobworker.json is not a conffile"

# The operator's steps, as documented.
jobworker-server certs init --dir /etc/jobworker/pki --client admin:admin --client alice:user \
    || fail "jobworker-server certs init failed"
log=$(mktemp)
jobworker-server >"$log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
    grep -q 'Listening for gRPC on https://127.0.0.1:50051/' "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log"; fail "the installed server exited before it listened"; }
    sleep 0.1
done
grep -q 'Listening for gRPC' "$log" || { cat "$log"; fail "the installed server did not listen on 127.0.0.1:50051"; }
out=$(HOME=$(mktemp -d) worker --server https://127.0.0.1:50051 --ca /etc/jobworker/pki/ca.crt \
    --cert /etc/jobworker/pki/clients/alice.crt --key /etc/jobworker/pki/clients/alice.key \
    run -- sh -c 'echo "hello from $(id -un)"') || { cat "$log"; fail "worker run failed: $out"; }
grep -q '^hello from ' <<<"$out" || fail "worker run printed '$out'"
kill -TERM "$server"
wait "$server" || { cat "$log"; fail "the installed server exited $? after SIGTERM"; }
[ -n "$(ls -A /var/lib/jobworker)" ] || fail "the server wrote nothing to /var/lib/jobworker"

dpkg -r jobworker || fail "dpkg -r failed"
[ ! -e /usr/bin/worker ] && [ ! -e /usr/lib/jobworker/JobWorker.Server ] || fail "dpkg -r left the binaries"
[ -d /var/lib/jobworker ] && [ -f /etc/jobworker/pki/ca.crt ] && [ -f /etc/jobworker/jobworker.json ] \
    || fail "dpkg -r removed the state directory or the configuration"
dpkg --purge jobworker || fail "dpkg --purge failed"
for path in /var/lib/jobworker /var/lib/jobworker-users /etc/jobworker /lib/systemd/system/jobworker.service; do
    [ ! -e "$path" ] || fail "dpkg --purge left $path"
done
echo "install-in-guest: installed, ran a job, removed and purged"
