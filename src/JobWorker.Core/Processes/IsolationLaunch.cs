using System.Globalization;
using JobWorker.Core.Jobs;

namespace JobWorker.Core.Processes;

/// <summary>
/// Turns a job's <see cref="JobIsolation"/> into the spawn of <c>jobworker-init</c> (native/jobworker_init.c):
/// the namespaces go into the clone3 flags (a .NET process cannot create threads after
/// <c>unshare(CLONE_NEWPID)</c>), and the init — root inside the new namespaces — sets them up, drops to the
/// job's user and starts the target. See docs/isolation.md.
/// </summary>
internal static class IsolationLaunch
{
    private const ulong CLONE_NEWNS = 0x00020000;
    private const ulong CLONE_NEWPID = 0x20000000;
    private const ulong CLONE_NEWNET = 0x40000000;
    private const ulong CLONE_NEWIPC = 0x08000000;
    private const ulong CLONE_NEWUTS = 0x04000000;

    private const string InitName = "jobworker-init";

    private static readonly Lazy<string?> InitPathLazy = new(() => ShimLaunch.FindNextToApp(InitName));

    /// <summary>The init executable, shipped next to the spawn library; null when missing.</summary>
    public static string? InitPath => InitPathLazy.Value;

    public static ulong NamespaceFlags(JobIsolation isolation)
        => (isolation.HasFlag(JobIsolation.Pid) ? CLONE_NEWPID : 0)
            | (isolation.HasFlag(JobIsolation.Mount) ? CLONE_NEWNS : 0)
            | (isolation.HasFlag(JobIsolation.Network) ? CLONE_NEWNET : 0)
            | (isolation.HasFlag(JobIsolation.Ipc) ? CLONE_NEWIPC : 0)
            | (isolation.HasFlag(JobIsolation.Uts) ? CLONE_NEWUTS : 0);

    /// <summary>
    /// The init's command line: <c>jobworker-init FLAGS UID GID CWD HIDE N CANDIDATE... ARGV...</c>. FLAGS always has
    /// <c>k</c>: the init joins a fresh session keyring after its uid change (the job's environment reaches it on
    /// fd 5, from jw_spawn).
    /// </summary>
    public static List<string> InitArgv(JobIsolation isolation, UserAccount account, string workingDirectory, string hiddenDirectory, IReadOnlyList<string> candidates, IReadOnlyList<string> argv)
    {
        var flags = (isolation.HasFlag(JobIsolation.Pid) ? "p" : string.Empty)
            + (isolation.HasFlag(JobIsolation.Mount) ? "m" : string.Empty)
            + (isolation.HasFlag(JobIsolation.Network) ? "n" : string.Empty)
            + (isolation.HasFlag(JobIsolation.Ipc) ? "i" : string.Empty)
            + (isolation.HasFlag(JobIsolation.Uts) ? "u" : string.Empty)
            + "k";
        var result = new List<string>(7 + candidates.Count + argv.Count)
        {
            InitName,
            flags,
            account.Uid.ToString(CultureInfo.InvariantCulture),
            account.Gid.ToString(CultureInfo.InvariantCulture),
            workingDirectory,
            hiddenDirectory,
            candidates.Count.ToString(CultureInfo.InvariantCulture),
        };
        result.AddRange(candidates);
        result.AddRange(argv);
        return result;
    }
}
