using System.Diagnostics;
using System.Globalization;
using JobWorker.Core.Cgroups;
using JobWorker.Core.Processes;
using JobWorker.Core.State;
using Microsoft.Extensions.Logging;

namespace JobWorker.Core.Jobs;

/// <summary>
/// A user's next start made ready: after a user's start, the runner picks the id of that user's next job and makes its
/// groups ahead (<c>&lt;root&gt;/users/&lt;user&gt;/&lt;id&gt;</c> with <c>job</c> and <c>shim</c>) with an idle
/// supervisor already inside <c>shim</c>. The user's next start takes that id and launches that supervisor in place:
/// no cgroup is made and no process is forked into a new cgroup on the start path. (cgroup v2 cannot rename a group,
/// so the job takes the group's name, not the other way round.) Each is kept for
/// <see cref="JobRunnerOptions.UserStartAheadTime"/> after the user's last start, for at most <see cref="MaxUsers"/>
/// users; users whose group has a process limit get none (the idle supervisor would take one of their processes).
/// Each group is recorded in the state directory before it is made (<see cref="IJobStore.RecordGroupAhead"/>), so a
/// server that finds one after a crash knows it is its own (<see cref="RemoveLeftovers"/>). See
/// docs/design-durability.md, "A user's next start made ready".
/// </summary>
internal sealed class UserStartsAhead : IDisposable
{
    /// <summary>The most users with a start made ready at once.</summary>
    internal const int MaxUsers = 16;

    private readonly CgroupTree _tree;
    private readonly IJobStore _store;
    private readonly ProcessSpawner _spawner;
    private readonly string _shimPath;
    private readonly UserPlans _userPlans;
    private readonly TimeSpan _keep;
    private readonly Lock _lock = new();

    // Held by Prepare while it works and by Clear, so that Clear never misses a start being made ready.
    private readonly Lock _preparing = new();

    // By user directory name: what is ready, and when each user last started a job.
    private readonly Dictionary<string, Ready> _ready = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string? Owner, long At)> _lastStart = new(StringComparer.Ordinal);
    private readonly List<Guid> _taken = [];
    private bool _disposed;

    public UserStartsAhead(CgroupTree tree, IJobStore store, ProcessSpawner spawner, string shimPath, UserPlans userPlans, TimeSpan keep)
    {
        _tree = tree;
        _store = store;
        _spawner = spawner;
        _shimPath = shimPath;
        _userPlans = userPlans;
        _keep = keep;
    }

    /// <summary>How many users have a start made ready now (for tests).</summary>
    internal int ReadyCount
    {
        get
        {
            lock (_lock)
            {
                return _ready.Count;
            }
        }
    }

    /// <summary>The id of <paramref name="owner"/>'s start made ready, or null when there is none (for tests).</summary>
    internal Guid? ReadyId(string? owner)
    {
        lock (_lock)
        {
            return _ready.TryGetValue(CgroupTree.UserDirectoryName(owner), out var ready) ? ready.Id : null;
        }
    }

    /// <summary>
    /// Takes <paramref name="owner"/>'s start made ready, if any: the id its groups are named for (the job gets that
    /// id: a job's group is named by its id, and cgroup v2 cannot rename a group), the groups (the caller applies the
    /// job's limits) and the supervisor waiting in the <c>shim</c> group, to be launched with an empty cgroup (in
    /// place). Null when there is none. The caller records the job before using them; <see cref="Discard"/> gives
    /// them up when that fails.
    /// </summary>
    public Ready? TryTake(string? owner)
    {
        var user = CgroupTree.UserDirectoryName(owner);
        lock (_lock)
        {
            if (!_ready.Remove(user, out var ready))
            {
                return null;
            }

            // The record of the group made ahead is forgotten off the start path: the job's record names the same
            // group from now on, and a server that finds both after a crash knows the group is the job's.
            _taken.Add(ready.Id);
            return ready;
        }
    }

    /// <summary>
    /// Gives up a start made ready: its supervisor ends, its groups go (and the user's group, when that leaves it
    /// empty), and so does its record. For one taken but not used (its job could not be recorded), and for those
    /// discarded here.
    /// </summary>
    public void Discard(Ready ready)
    {
        ArgumentNullException.ThrowIfNull(ready);
        ready.Supervisor.End(kill: false);
        ready.Group.TryRemove();
        _tree.RemoveUserGroupIfEmpty(ready.Owner);
        _store.ForgetGroupAhead(ready.Id.ToString("N", CultureInfo.InvariantCulture));
    }

    /// <summary>Notes a start by <paramref name="owner"/>: <see cref="Prepare"/> makes the user's next one ready.</summary>
    public void NoteStart(string? owner)
    {
        lock (_lock)
        {
            _lastStart[CgroupTree.UserDirectoryName(owner)] = (owner, Stopwatch.GetTimestamp());
        }
    }

    /// <summary>
    /// Off the start path (the runner's prepare thread): forgets the records of groups taken, makes a start ready for
    /// each user who started a job within the keep time and has none, and discards those kept longer. Returns how
    /// long until the next one is due to be discarded, or null when none is kept.
    /// </summary>
    public TimeSpan? Prepare()
    {
        lock (_preparing)
        {
            return PrepareNow();
        }
    }

    /// <summary>Discards every start made ready and forgets who started jobs lately (for tests).</summary>
    public void Clear()
    {
        lock (_preparing)
        {
            Ready[] all;
            lock (_lock)
            {
                all = [.. _ready.Values];
                _ready.Clear();
                _lastStart.Clear();
            }

            foreach (var ready in all)
            {
                Discard(ready);
            }
        }
    }

    private TimeSpan? PrepareNow()
    {
        Guid[] taken;
        var wanted = new List<(string User, string? Owner)>();
        var expired = new List<Ready>();
        TimeSpan? next = null;
        lock (_lock)
        {
            taken = [.. _taken];
            _taken.Clear();
            foreach (var (user, (owner, at)) in _lastStart.ToArray())
            {
                var left = _keep - Stopwatch.GetElapsedTime(at);
                if (left <= TimeSpan.Zero || _disposed)
                {
                    _lastStart.Remove(user);
                    if (_ready.Remove(user, out var old))
                    {
                        expired.Add(old);
                    }

                    continue;
                }

                next = next is { } n && n < left ? n : left;
                if (!_ready.ContainsKey(user) && _ready.Count + wanted.Count < MaxUsers)
                {
                    wanted.Add((user, owner));
                }
            }
        }

        Forget(taken);
        foreach (var ready in expired)
        {
            Discard(ready);
        }

        foreach (var (user, owner) in wanted)
        {
            if (Make(owner) is not { } ready)
            {
                continue;
            }

            lock (_lock)
            {
                if (!_disposed && _lastStart.ContainsKey(user) && _ready.TryAdd(user, ready))
                {
                    continue;
                }
            }

            Discard(ready);
        }

        return next;
    }

    /// <summary>
    /// Start-up: the groups made ahead by an earlier server of this state directory and cgroup root that ended without
    /// removing them (killed, say). One named for a recorded job (in <paramref name="recordedJobs"/>) became that job's
    /// group: only its record of being made ahead is forgotten. Every other one holds no job, at most an idle
    /// supervisor of that server: it is killed and removed.
    /// </summary>
    public static void RemoveLeftovers(CgroupTree tree, IJobStore store, IReadOnlySet<Guid> recordedJobs, ILogger logger)
    {
        foreach (var (name, user) in store.GroupsAhead())
        {
            if (Guid.TryParseExact(name, "N", out var id) && !recordedJobs.Contains(id) && IsDirectoryName(user))
            {
                var group = new JobGroup(Path.Combine(tree.UsersRoot, user, name));
                if (group.Exists)
                {
                    group.Shim.Kill();
                    group.Job.Kill();
                    if (group.TryRemove())
                    {
                        RunnerLog.RemovedGroupAhead(logger, group.Path);
                    }
                }
            }

            store.ForgetGroupAhead(name);
        }
    }

    /// <summary>Discards every start made ready: the supervisors end, the groups and their records go.</summary>
    public void Dispose()
    {
        Ready[] all;
        Guid[] taken;
        lock (_lock)
        {
            _disposed = true;
            all = [.. _ready.Values];
            _ready.Clear();
            _lastStart.Clear();
            taken = [.. _taken];
            _taken.Clear();
        }

        foreach (var ready in all)
        {
            Discard(ready);
        }

        Forget(taken);
    }

    private static bool IsDirectoryName(string name) => name.Length > 0 && name is not ("." or "..") && !name.Contains('/', StringComparison.Ordinal) && !name.Contains('\0', StringComparison.Ordinal);

    /// <summary>Records, makes and fills one user's group ahead; null (leaving nothing) when any step fails.</summary>
    private Ready? Make(string? owner)
    {
        var userPlan = _userPlans.For(owner);
        if (userPlan.Controllers.Contains("pids"))
        {
            return null;
        }

        var id = Guid.NewGuid();
        var name = id.ToString("N", CultureInfo.InvariantCulture);
        JobGroup? group = null;
        try
        {
            _store.RecordGroupAhead(name, CgroupTree.UserDirectoryName(owner));
            group = JobGroup.Create(_tree.CreateJobDirectory(owner, name, userPlan), _tree.Controllers, CgroupLimitPlan.Empty);
            using var shim = group.Shim.OpenDirectory();
            if (IdleSupervisor.Start(_spawner, _shimPath, shim) is { } supervisor)
            {
                return new Ready(owner, id, group, supervisor);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException or ObjectDisposedException)
        {
            // Out of processes, descriptors or disk for now: the user's next start makes its groups itself.
        }

        group?.TryRemove();
        _tree.RemoveUserGroupIfEmpty(owner);
        _store.ForgetGroupAhead(name);
        return null;
    }

    private void Forget(Guid[] taken)
    {
        foreach (var id in taken)
        {
            _store.ForgetGroupAhead(id.ToString("N", CultureInfo.InvariantCulture));
        }
    }

    /// <summary>A user's start made ready: the id its groups are named for, the groups, and the supervisor in them.</summary>
    public sealed record Ready(string? Owner, Guid Id, JobGroup Group, IdleSupervisor Supervisor);
}
