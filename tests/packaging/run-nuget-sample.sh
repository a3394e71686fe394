#!/usr/bin/env bash
# dotnet pack JobWorker.Core into artifacts/nuget, then build examples/nuget-sample against that folder feed and
# run it: a real job whose output must come back. Called by run-package-tests.sh; needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

version=$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' Directory.Build.props)
echo "== dotnet pack src/JobWorker.Core ($version) -> artifacts/nuget"
rm -f artifacts/nuget/JobWorker.Core.*.nupkg
dotnet pack src/JobWorker.Core -c Release -o artifacts/nuget -nologo -v q -clp:ErrorsOnly
nupkg="artifacts/nuget/JobWorker.Core.$version.nupkg"
[ -f "$nupkg" ] || { echo "no $nupkg after dotnet pack"; exit 1; }
listing=$(unzip -Z1 "$nupkg")
for entry in lib/net10.0/JobWorker.Core.dll lib/net10.0/JobWorker.Core.xml README.md COPYRIGHT.txt \
    runtimes/linux-x64/native/libjobworker_spawn.so runtimes/linux-x64/native/jobworker-shim \
    runtimes/linux-x64/native/jobworker-init buildTransitive/JobWorker.Core.targets; do
    grep -qxF "$entry" <<<"$listing" || { echo "$nupkg has no $entry"; exit 1; }
done

# The package is rebuilt with the same version on every run: drop the copy an earlier run left in the global
# packages folder, or restore would take that one. Only this package's own directory is touched.
packages=${NUGET_PACKAGES:-$HOME/.nuget/packages}
rm -rf "$packages/jobworker.core/$version"

echo "== build examples/nuget-sample against the local feed"
sample=examples/nuget-sample
# From scratch: nothing an earlier build or restore of the sample left is reused.
rm -rf "$sample/obj" "$sample/bin"
dotnet build "$sample" -c Release -p:JobWorkerCoreVersion="$version" -nologo -v q -clp:ErrorsOnly
exe="$sample/bin/Release/net10.0/linux-x64/NuGetSample"
[ -x "$exe" ] || { echo "no $exe after the build"; exit 1; }
for helper in jobworker-shim jobworker-init; do
    mode=$(stat -c %a "$(dirname "$exe")/$helper" 2>/dev/null) || { echo "no $helper next to the sample"; exit 1; }
    [ "$mode" = 755 ] || { echo "$helper next to the sample has mode $mode, not 755 (buildTransitive/JobWorker.Core.targets)"; exit 1; }
done

echo "== run it"
marker="hello from the JobWorker.Core package"
out=$("$exe" sh -c "echo '$marker'; exit 7") && rc=0 || rc=$?
printf '%s\n' "$out"
grep -qxF "$marker" <<<"$out" || { echo "the sample's job did not print '$marker'"; exit 1; }
[ "$rc" -eq 7 ] || { echo "the sample exited $rc, not the job's exit code 7"; exit 1; }
echo "nuget sample: the job ran from the package"
