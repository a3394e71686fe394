#!/usr/bin/env bash
# Builds artifacts/deb/jobworker_<version>_amd64.deb with dpkg-deb (`make deb`; run.sh test checks it).
#   /usr/lib/jobworker/          the server, published self-contained for linux-x64 (its own .NET runtime:
#                                nothing else to install), with libjobworker_spawn.so, jobworker-shim and
#                                jobworker-init next to it, where JobWorker.Core looks for them
#   /usr/sbin/jobworker-server   symlink to it; /usr/bin/worker: the NativeAOT client
#   /lib/systemd/system/jobworker.service, /etc/jobworker/jobworker.json (conffile)
# The only network it needs is NuGet's (restore). Builds go to artifacts/package-build (the server) and
# artifacts/aot-build (the worker, shared with `./run.sh demo`), so the framework-dependent builds under src/*/bin
# that the tests run are left alone. Prints the path of the .deb on its last line. --no-publish packs the last
# publish again.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

die() { printf 'build-deb: %s\n' "$*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (apt-get install dpkg)"
command -v cc >/dev/null || die "a C compiler is needed for the native programs (apt-get install gcc libc6-dev)"

version=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)
[ -n "$version" ] || die "no <VersionPrefix> in Directory.Build.props"
out="$repo/artifacts/deb"
build="$repo/artifacts/package-build"
deb="$out/jobworker_${version}_amd64.deb"

if [ "${1:-}" = --no-publish ]; then
    # Packs what the last run published (packaging work only).
    [ -x "$build/server/JobWorker.Server" ] && [ -x artifacts/worker/worker ] || die "--no-publish: nothing published yet"
else
    echo "== publish the server, self-contained for linux-x64 ($build/server)" >&2
    rm -rf "$build/server"
    dotnet publish src/JobWorker.Server -c Release --self-contained --artifacts-path "$build" -o "$build/server" \
        -nologo -v q -clp:ErrorsOnly >&2
    echo "== publish the worker with NativeAOT ($repo/artifacts/worker)" >&2
    dotnet publish src/JobWorker.Cli -c Release --artifacts-path "$repo/artifacts/aot-build" -o "$repo/artifacts/worker" \
        -nologo -v q -clp:ErrorsOnly >&2
fi

root="$build/root"
rm -rf "$root"
install -d -m 0755 "$root/DEBIAN" "$root/usr/lib/jobworker" "$root/usr/sbin" "$root/usr/bin" \
    "$root/lib/systemd/system" "$root/etc/jobworker" "$root/usr/share/doc/jobworker" "$root/usr/share/lintian/overrides"

# The server's directory as published, without what only a developer uses (XML docs, the static web
# assets manifest of an app that serves none).
cp -a "$build/server/." "$root/usr/lib/jobworker/"
rm -f "$root"/usr/lib/jobworker/*.xml "$root"/usr/lib/jobworker/*.staticwebassets.*.json
for f in jobworker-shim jobworker-init libjobworker_spawn.so JobWorker.Server appsettings.json; do
    [ -e "$root/usr/lib/jobworker/$f" ] || die "the server publish has no $f"
done
# Ours are built with symbols (-O2, no -s); the runtime's are stripped already.
strip --strip-unneeded "$root/usr/lib/jobworker/libjobworker_spawn.so" \
    "$root/usr/lib/jobworker/jobworker-shim" "$root/usr/lib/jobworker/jobworker-init"
find "$root/usr/lib/jobworker" -type d -exec chmod 0755 {} +
find "$root/usr/lib/jobworker" -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/lib/jobworker/JobWorker.Server" "$root/usr/lib/jobworker/createdump" \
    "$root/usr/lib/jobworker/jobworker-shim" "$root/usr/lib/jobworker/jobworker-init"
# The apphost resolves the symlink, so AppContext.BaseDirectory (where appsettings.json and the native
# programs are found) is /usr/lib/jobworker.
ln -s ../lib/jobworker/JobWorker.Server "$root/usr/sbin/jobworker-server"

install -m 0755 artifacts/worker/worker "$root/usr/bin/worker"
install -m 0644 packaging/systemd/jobworker.service "$root/lib/systemd/system/jobworker.service"
install -m 0644 packaging/deb/jobworker.json "$root/etc/jobworker/jobworker.json"
install -m 0644 packaging/deb/copyright packaging/deb/README.Debian "$root/usr/share/doc/jobworker/"
gzip -9n -c packaging/deb/changelog > "$root/usr/share/doc/jobworker/changelog.gz"
chmod 0644 "$root/usr/share/doc/jobworker/changelog.gz"
install -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/jobworker"

install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
install -m 0644 packaging/deb/conffiles "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$size/" packaging/deb/control.in > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

mkdir -p "$out"
rm -f "$out"/jobworker_*.deb
# gzip: 12 s and 54 MB where xz -6 took 220 s for 39 MB on a loaded 2-core machine (zstd, faster still, is not
# an official member format: lintian rejects it as malformed-deb-archive).
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >&2
echo "$deb"
