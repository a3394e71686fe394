using System.Globalization;
using JobWorker.Core.Jobs;
using JobWorker.Core.State;

namespace JobWorker.Core.Cgroups;

/// <summary>The cgroup subtree a runner owns: where job groups are created and which controllers they get.</summary>
internal sealed class CgroupTree : IDisposable
{
    internal static readonly string[] LimitControllers = ["cpu", "memory", "io", "pids"];

    private readonly bool _createdRoot;

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
            return new CgroupTree(mount, root, options.UseDelegatedCgroup, created, EnableControllers(root), rootLock);
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
        var leaf = Path.Combine(root, "server");
        if (!Directory.Exists(leaf) && Interop.Sys.MakeDirectory(leaf, 0b111_101_101) < 0)
        {
            throw Interop.CreateIOException(System.Runtime.InteropServices.Marshal.GetLastPInvokeError(), "creating the server's leaf cgroup", leaf);
        }

        CgroupFiles.Write(Path.Combine(leaf, "cgroup.procs"), Interop.Sys.GetPid().ToString(CultureInfo.InvariantCulture));
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
    public string ExplainMissing(string controller, string limit)
    {
        var atMount = CgroupFiles.ReadControllers(Path.Combine(MountPoint, "cgroup.controllers"));
        if (!atMount.Contains(controller))
        {
            var v1 = IsBoundToV1(controller);
            return v1
                ? $"The {controller} controller is not enabled in {MountPoint}: this host runs cgroups in v1/hybrid mode and the controller is bound to a cgroup v1 hierarchy, so cgroup v2 cannot use it. Boot with cgroup_no_v1=all (or systemd.unified_cgroup_hierarchy=1), or start the job without {limit}."
                : $"The {controller} controller is not available in the cgroup2 hierarchy at {MountPoint} (not listed in cgroup.controllers; is it compiled into the kernel?). Start the job without {limit}.";
        }

        return $"The {controller} controller is not enabled for {Root}: enable it in cgroup.subtree_control of every ancestor down to {Root} (with systemd: Delegate=yes and JobRunnerOptions.UseDelegatedCgroup), or start the job without {limit}.";
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
