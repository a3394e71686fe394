using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;

namespace JobWorker.Core.Cgroups;

/// <summary>
/// The cgroup subtree a runner owns: where job groups are created and which controllers they get. Jobs are grouped
/// by user: <c>&lt;root&gt;/users/&lt;user&gt;/&lt;id&gt;</c>, so a user's aggregate limits bound all of that user's
/// jobs together (docs/design-engine.md, "cgroup layout").
/// </summary>
internal sealed class CgroupTree : IDisposable
{
    internal static readonly string[] LimitControllers = ["cpu", "memory", "io", "pids"];

    /// <summary>The directory under the root that holds one group per user.</summary>
    internal const string UsersDirectory = "users";

    /// <summary>The server's own leaf with <see cref="JobRunnerOptions.UseDelegatedCgroup"/>.</summary>
    internal const string ServerDirectory = "server";

    // An escaped name never exceeds this; longer ones end in a digest (NAME_MAX is 255 bytes).
    private const int MaxUserDirectoryLength = 200;

    private readonly bool _createdRoot;

    // Creating a job's directory in its user's group and removing an empty user group exclude each other, so a user
    // group is never removed between being found and receiving a new job.
    private readonly Lock _userGroups = new();

    private readonly DirectoryLock _lock;

    private CgroupTree(string mountPoint, string root, bool delegated, bool createdRoot, IReadOnlySet<string> controllers, DirectoryLock rootLock)
    {
        _lock = rootLock;
        MountPoint = mountPoint;
        Root = root;
        Delegated = delegated;
        _createdRoot = createdRoot;
        Controllers = controllers;
    }

    /// <summary>The cgroup2 mount point (<c>/sys/fs/cgroup</c>, or <c>/sys/fs/cgroup/unified</c> in hybrid mode).</summary>
    public string MountPoint { get; }

    /// <summary>The directory job groups are created in.</summary>
    public string Root { get; }

    public bool Delegated { get; }

    /// <summary><c>&lt;root&gt;/users</c>: one group per user.</summary>
    public string UsersRoot => Path.Combine(Root, UsersDirectory);

    /// <summary>Controllers enabled for job groups (the root's <c>cgroup.subtree_control</c>).</summary>
    public IReadOnlySet<string> Controllers { get; }

    /// <summary>
    /// Finds cgroup2, prepares the subtree and locks it (a second runner on the same root is refused). Nothing in it
    /// is killed or removed here: the runner decides from its records what is its own.
    /// </summary>
    public static CgroupTree Open(JobRunnerOptions options)
    {
        var mount = CgroupMount.FindMountPoint()
            ?? throw new JobWorkerException("No cgroup2 filesystem is mounted (none in /proc/self/mountinfo). JobWorker needs cgroup v2: mount it (mount -t cgroup2 none /sys/fs/cgroup) or boot with systemd.unified_cgroup_hierarchy=1.");

        string root;
        var created = false;
        if (options.UseDelegatedCgroup)
        {
            var own = CgroupMount.FindOwnCgroup()
                ?? throw new JobWorkerException("UseDelegatedCgroup is set but this process has no cgroup v2 path in /proc/self/cgroup.");
            if (own == "/")
            {
                // Jobs would become siblings of every other group on the host: only a real delegated subtree
                // (systemd Delegate=yes) may be used this way.
                throw new JobWorkerException("UseDelegatedCgroup is set but this process is in the root cgroup, which is not a delegated subtree. Run the server as a systemd service with Delegate=yes, or set CgroupRoot instead.");
            }

            root = Path.Join(mount, own).TrimEnd('/');
            if (own.EndsWith("/" + ServerDirectory, StringComparison.Ordinal) && own.LastIndexOf('/') > 0)
            {
                // Already in the leaf: a runner created again in the same process, or systemd's DelegateSubgroup=server.
                root = Path.GetDirectoryName(root)!;
            }

            MoveSelfIntoLeaf(root);
        }
        else
        {
            root = options.CgroupRoot ?? Path.Combine(mount, "jobworker");
            if (!Path.IsPathFullyQualified(root))
            {
                throw new ArgumentException($"CgroupRoot '{root}' must be an absolute path inside the cgroup2 mount {mount}.", nameof(options));
            }

            root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
            if (root != mount && !root.StartsWith(mount + "/", StringComparison.Ordinal))
            {
                throw new ArgumentException($"CgroupRoot '{root}' is not inside the cgroup2 mount {mount}.", nameof(options));
            }

            if (root == mount)
            {
                throw new ArgumentException($"CgroupRoot must be a subtree of the cgroup2 mount {mount}, not the mount itself.", nameof(options));
            }

            if (!Directory.Exists(root))
            {
                if (Interop.Sys.MakeDirectory(root, 0b111_101_101) < 0)
                {
                    var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
                    throw new JobWorkerException(
                        $"Cannot create the runner's cgroup {root}: {Interop.Describe(errno)}. The server needs write access to the cgroup2 hierarchy (run as root or in a delegated cgroup).");
                }

                created = true;
            }
        }

        var rootLock = DirectoryLock.Acquire(root, "cgroup root", options.UseDelegatedCgroup ? null : "CgroupRoot");
        try
        {
            var tree = new CgroupTree(mount, root, options.UseDelegatedCgroup, created, EnableControllers(root), rootLock);
            tree.ProtectServer(options);
            return tree;
        }
        catch
        {
            rootLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Delegation (systemd Delegate=yes): the "no internal processes" rule forbids enabling controllers for
    /// children while this cgroup holds processes, so the server moves itself into a leaf first.
    /// </summary>
    private static void MoveSelfIntoLeaf(string root)
    {
        var leaf = Path.Combine(root, ServerDirectory);
        if (!Directory.Exists(leaf) && Interop.Sys.MakeDirectory(leaf, 0b111_101_101) < 0)
        {
            throw Interop.CreateIOException(System.Runtime.InteropServices.Marshal.GetLastPInvokeError(), "creating the server's leaf cgroup", leaf);
        }

        CgroupFiles.Write(Path.Combine(leaf, "cgroup.procs"), Interop.Sys.GetPid().ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>memory.min and memory.low of the server's leaf: reclaim for the jobs never takes the server's memory.</summary>
    private void ProtectServer(JobRunnerOptions options)
    {
        foreach (var (setting, file, value) in new[] { (nameof(options.ServerMemoryMinBytes), "memory.min", options.ServerMemoryMinBytes), (nameof(options.ServerMemoryLowBytes), "memory.low", options.ServerMemoryLowBytes) })
        {
            if (value is not { } bytes)
            {
                continue;
            }

            if (!Controllers.Contains("memory"))
            {
                throw new CgroupControllerUnavailableException("memory", $"{setting} needs the memory controller. {ExplainMissing("memory", $"remove {setting}")}");
            }

            CgroupFiles.Write(Path.Combine(Root, ServerDirectory, file), bytes.ToString(CultureInfo.InvariantCulture));
        }
    }

    /// <summary>
    /// The directory name of <paramref name="owner"/>'s group. Bytes other than ASCII letters, digits, '_' and '-'
    /// become <c>%XX</c> (so no name is <c>..</c>, holds a '/', or, having no '.', collides with an interface file
    /// such as <c>cpu.max</c>); no owner is <c>%</c>, which no escaped name can be; a name longer than 200 characters
    /// once escaped is cut and ends in <c>%%</c> and its SHA-256.
    /// </summary>
    public static string UserDirectoryName(string? owner)
    {
        if (string.IsNullOrEmpty(owner))
        {
            return "%";
        }

        var bytes = Encoding.UTF8.GetBytes(owner);
        var name = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (char.IsAsciiLetterOrDigit((char)b) || b is (byte)'_' or (byte)'-')
            {
                name.Append((char)b);
            }
            else
            {
                name.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        if (name.Length <= MaxUserDirectoryLength)
        {
            return name.ToString();
        }

        var cut = MaxUserDirectoryLength - 66;
        if (name[cut - 1] == '%')
        {
            cut--;
        }
        else if (name[cut - 2] == '%')
        {
            cut -= 2;
        }

        return string.Concat(name.ToString(0, cut), "%%", Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    /// <summary><c>&lt;root&gt;/users/&lt;user&gt;</c>.</summary>
    public string UserGroupPath(string? owner) => Path.Combine(UsersRoot, UserDirectoryName(owner));

    /// <summary>
    /// Creates <c>&lt;root&gt;/users/&lt;user&gt;/&lt;name&gt;</c>, first the user's group (controllers enabled,
    /// <paramref name="userPlan"/> applied) and <c>users</c> when missing.
    /// </summary>
    /// <exception cref="IOException">A group cannot be created or a limit cannot be written.</exception>
    public string CreateJobDirectory(string? owner, string name, CgroupLimitPlan userPlan)
    {
        var user = UserGroupPath(owner);
        var path = Path.Combine(user, name);
        lock (_userGroups)
        {
            if (Interop.Sys.MakeDirectory(path, 0b111_101_101) == 0)
            {
                return path;
            }

            var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno != Interop.ENOENT)
            {
                throw Interop.CreateIOException(errno, "creating cgroup", path);
            }

            CreateParent(UsersRoot, CgroupLimitPlan.Empty);
            CreateParent(user, userPlan);
            _ = JobCgroup.Create(path);
            return path;
        }
    }

    /// <summary>Writes <paramref name="userPlan"/> to an existing user group (the settings may have changed since it was made).</summary>
    public void ApplyUserLimits(string userGroup, CgroupLimitPlan userPlan)
    {
        lock (_userGroups)
        {
            new JobCgroup(userGroup).Apply(userPlan);
        }
    }

    private void CreateParent(string path, CgroupLimitPlan plan)
    {
        var created = false;
        if (Interop.Sys.MakeDirectory(path, 0b111_101_101) == 0)
        {
            created = true;
        }
        else if (System.Runtime.InteropServices.Marshal.GetLastPInvokeError() is var errno && errno != Interop.EEXIST)
        {
            throw Interop.CreateIOException(errno, "creating cgroup", path);
        }

        try
        {
            new JobCgroup(path).Apply(plan);
            if (Controllers.Count > 0)
            {
                var enable = string.Join(' ', Controllers.Order(StringComparer.Ordinal).Select(c => "+" + c));
                var errno = CgroupFiles.TryWrite(Path.Combine(path, "cgroup.subtree_control"), enable);
                if (errno != 0)
                {
                    throw Interop.CreateIOException(errno, $"enabling controllers '{enable}' in", path);
                }
            }
        }
        catch when (created)
        {
            _ = Interop.Sys.RemoveDirectory(path);
            throw;
        }
    }

    /// <summary>
    /// Removes <paramref name="owner"/>'s group if no job is left in it, and <c>users</c> if no user is left. A group
    /// still in use stays (rmdir of a cgroup with children fails).
    /// </summary>
    public void RemoveUserGroupIfEmpty(string? owner)
    {
        lock (_userGroups)
        {
            if (Interop.Sys.RemoveDirectory(UserGroupPath(owner)) == 0)
            {
                _ = Interop.Sys.RemoveDirectory(UsersRoot);
            }
        }
    }

    /// <summary>Removes a user group found without jobs at start-up (created by an earlier server of this root).</summary>
    public bool TryRemoveEmptyGroup(string path)
    {
        lock (_userGroups)
        {
            return Interop.Sys.RemoveDirectory(path) == 0;
        }
    }

    private static HashSet<string> EnableControllers(string root)
    {
        var available = CgroupFiles.ReadControllers(Path.Combine(root, "cgroup.controllers"));
        var subtree = Path.Combine(root, "cgroup.subtree_control");
        foreach (var controller in LimitControllers)
        {
            if (available.Contains(controller))
            {
                // Best effort per controller: one refused controller must not hide the others.
                _ = CgroupFiles.TryWrite(subtree, "+" + controller);
            }
        }

        return CgroupFiles.ReadControllers(subtree);
    }

    /// <summary>Why <paramref name="controller"/> is missing, with what would fix it.</summary>
    public string ExplainMissing(string controller, string limit) => ExplainMissing(controller, limit, $"start the job without {limit}");

    /// <summary>Why <paramref name="controller"/> is missing, ending with <paramref name="alternative"/>.</summary>
    public string ExplainMissing(string controller, string limit, string alternative)
    {
        var atMount = CgroupFiles.ReadControllers(Path.Combine(MountPoint, "cgroup.controllers"));
        if (!atMount.Contains(controller))
        {
            var v1 = IsBoundToV1(controller);
            return v1
                ? $"The {controller} controller is not enabled in {MountPoint}: this host runs cgroups in v1/hybrid mode and the controller is bound to a cgroup v1 hierarchy, so cgroup v2 cannot use it. Boot with cgroup_no_v1=all (or systemd.unified_cgroup_hierarchy=1), or {alternative}."
                : $"The {controller} controller is not available in the cgroup2 hierarchy at {MountPoint} (not listed in cgroup.controllers; is it compiled into the kernel?). {char.ToUpperInvariant(alternative[0])}{alternative[1..]}.";
        }

        return $"The {controller} controller is not enabled for {Root}: enable it in cgroup.subtree_control of every ancestor down to {Root} (with systemd: Delegate=yes and JobRunnerOptions.UseDelegatedCgroup), or {alternative}.";
    }

    private static bool IsBoundToV1(string controller)
    {
        var cgroups = CgroupFiles.TryRead("/proc/cgroups");
        if (cgroups is null)
        {
            return false;
        }

        // cgroup v1 calls the io controller "blkio".
        var v1Name = controller == "io" ? "blkio" : controller;
        foreach (var line in cgroups.Split('\n'))
        {
            // "#subsys_name hierarchy num_cgroups enabled": hierarchy 0 means cgroup v2 (or unused).
            var fields = line.Split('\t', ' ');
            if (fields.Length >= 2 && fields[0] == v1Name)
            {
                return fields[1] != "0";
            }
        }

        return false;
    }

    /// <summary>
    /// Releases the root's lock, and removes the root if the runner created it and nothing is left in it (running
    /// jobs keep it busy and are left alone).
    /// </summary>
    public void Dispose()
    {
        if (_createdRoot && !Directory.EnumerateDirectories(Root).Any())
        {
            _ = Interop.Sys.RemoveDirectory(Root);
        }

        _lock.Dispose();
    }
}
