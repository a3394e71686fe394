namespace JobWorker.Core.Cgroups;

/// <summary>
/// The cgroups of one job: <c>&lt;root&gt;/users/&lt;user&gt;/&lt;id&gt;/job</c> holds the job's processes and its
/// limits, <c>…/&lt;id&gt;/shim</c> holds only its supervisor (jobs started before user groups existed have
/// <c>&lt;root&gt;/&lt;id&gt;</c>). The supervisor is the only process ever placed in
/// its group, so a restarted server finds it there and knows it is this job's (docs/design-durability.md).
/// </summary>
internal sealed class JobGroup
{
    public JobGroup(string path)
    {
        Path = path;
        Job = new JobCgroup(System.IO.Path.Combine(path, "job"));
        Shim = new JobCgroup(System.IO.Path.Combine(path, "shim"));
    }

    /// <summary><c>&lt;root&gt;/users/&lt;user&gt;/&lt;id&gt;</c>.</summary>
    public string Path { get; }

    /// <summary>The job's processes, with its limits.</summary>
    public JobCgroup Job { get; }

    /// <summary>The job's supervisor.</summary>
    public JobCgroup Shim { get; }

    public bool Exists => Directory.Exists(Path);

    /// <summary>
    /// Creates the job's and the supervisor's groups in <paramref name="path"/> (which exists, see
    /// <see cref="CgroupTree.CreateJobDirectory"/>) and applies <paramref name="plan"/> to the job's. The controllers
    /// in <paramref name="controllers"/> are enabled for the children (one write), so limits and usage figures work.
    /// </summary>
    public static JobGroup Create(string path, IReadOnlySet<string> controllers, CgroupLimitPlan plan)
    {
        var group = new JobGroup(path);
        try
        {
            if (controllers.Count > 0)
            {
                var enable = string.Join(' ', controllers.Order(StringComparer.Ordinal).Select(c => "+" + c));
                var errno = CgroupFiles.TryWrite(System.IO.Path.Combine(path, "cgroup.subtree_control"), enable);
                if (errno != 0)
                {
                    throw Interop.CreateIOException(errno, $"enabling controllers '{enable}' in", path);
                }
            }

            JobCgroup.Create(group.Job.Path);
            group.Job.Apply(plan);
            JobCgroup.Create(group.Shim.Path);
            return group;
        }
        catch
        {
            group.TryRemove();
            throw;
        }
    }

    /// <summary>The supervisor's pid: the one process in its group, or null when it is gone.</summary>
    public int? FindShim()
    {
        var pids = Shim.ReadProcesses();
        return pids.Count == 1 ? pids[0] : null;
    }

    /// <summary>Removes the three groups (killing what is left in them): true when all are gone.</summary>
    public bool TryRemove()
    {
        var job = Job.TryRemove();
        var shim = Shim.TryRemove();
        return job && shim && new JobCgroup(Path).TryRemove();
    }

    /// <inheritdoc cref="TryRemove"/>
    public async Task<bool> TryRemoveAsync()
    {
        var job = await Job.TryRemoveAsync().ConfigureAwait(false);
        var shim = await Shim.TryRemoveAsync().ConfigureAwait(false);
        return job && shim && await new JobCgroup(Path).TryRemoveAsync().ConfigureAwait(false);
    }
}
