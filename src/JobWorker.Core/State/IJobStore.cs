namespace JobWorker.Core.State;

/// <summary>
/// The durable state of every job: one directory per job holding the server's record, the job's output log and the
/// supervisor's status file. See docs/design-durability.md.
/// </summary>
/// <remarks>
/// <see cref="Create"/>, <see cref="Update"/> and <see cref="Delete"/> may be called concurrently; calls for one job
/// are serialized (the last one wins). A failed call leaves the job's previous record as it was.
/// </remarks>
internal interface IJobStore : IDisposable
{
    /// <summary>The state directory.</summary>
    string Root { get; }

    /// <summary><c>&lt;Root&gt;/jobs/&lt;id:N&gt;</c>.</summary>
    string JobDirectory(Guid id);

    /// <summary>The job's output log (written by its supervisor).</summary>
    string LogPath(Guid id);

    /// <summary>The supervisor's status file.</summary>
    string ShimStatusPath(Guid id);

    /// <summary>Creates the job's directory (0700) and writes its record; the directory may hold empty files a
    /// start would create (<c>output.log</c>, temporary files), when it was made ahead (<see cref="PrepareAhead"/>).</summary>
    /// <exception cref="IOException">The directory exists already, or the record cannot be written (disk full); nothing is left behind.</exception>
    void Create(JobRecord record);

    /// <summary>
    /// Makes a few job directories ahead of <see cref="Create"/>, off the start path, so that a start allocates no
    /// inode (after a quiet spell an allocation can wait for the disk). Best effort: when they cannot be made, each
    /// <see cref="Create"/> makes its own directory. They hold no job; opening the store removes any left behind.
    /// </summary>
    void PrepareAhead();

    /// <summary>
    /// Records, before the group exists, that the runner makes the cgroup <paramref name="name"/> in the user group
    /// <paramref name="userDirectory"/> ahead of a start (a user's start made ready): a server that finds it after a
    /// crash knows the group is its own. Not flushed: cgroups do not outlive a reboot.
    /// </summary>
    /// <exception cref="IOException">The record cannot be written; the group must not be made.</exception>
    void RecordGroupAhead(string name, string userDirectory);

    /// <summary>Removes the record of <see cref="RecordGroupAhead"/> (the group is gone, or became a job's).</summary>
    void ForgetGroupAhead(string name);

    /// <summary>Every recorded group made ahead: its name and its user group's directory name.</summary>
    IReadOnlyList<(string Name, string UserDirectory)> GroupsAhead();

    /// <summary>Atomically replaces the job's record.</summary>
    /// <exception cref="IOException">The record cannot be written (disk full, the job's directory is gone); the previous record stays.</exception>
    void Update(JobRecord record);

    /// <summary>Removes the job's directory: record, log and status file. A job that does not exist is fine.</summary>
    void Delete(Guid id);

    /// <summary>
    /// Reads every job record, for start-up (a job created or removed while it runs may be missed or reported).
    /// Unreadable, corrupt or too new records are reported, never changed.
    /// </summary>
    StoreContents Load();

    /// <summary>The supervisor's status, or null when it has not written one (yet).</summary>
    /// <exception cref="StateFormatException">The file is corrupt or newer than this server reads.</exception>
    ShimStatus? ReadShimStatus(Guid id);
}
