namespace JobWorker.Core.Jobs;

/// <summary>What to run as a job.</summary>
/// <param name="Command">The executable: an absolute path, or a name looked up in the job's <c>PATH</c>.</param>
/// <param name="Arguments">Arguments after the command (argv[1..]).</param>
public sealed record JobSpec(string Command, IReadOnlyList<string> Arguments)
{
    /// <summary>Creates a spec with no arguments.</summary>
    public JobSpec(string command)
        : this(command, [])
    {
    }

    /// <summary>
    /// Environment variables added to the job's minimal default environment (<c>PATH</c>, <c>HOME</c>, <c>LANG</c>).
    /// The server's own environment is never passed on.
    /// </summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// The working directory, or <see langword="null"/> for the owner's private directory
    /// (<see cref="JobIdentityMode.PerOwner"/>) or <c>/</c> (<see cref="JobIdentityMode.SharedAccount"/>).
    /// </summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Resource limits for the job's cgroup.</summary>
    public ResourceLimits Limits { get; init; } = ResourceLimits.None;

    /// <summary>
    /// Namespaces to isolate the job in, or <see langword="null"/> for the runner's default. In
    /// <see cref="Job.Spec"/> it is always set: the isolation the job actually got.
    /// </summary>
    public JobIsolation? Isolation { get; init; }

    /// <summary>
    /// The owner recorded with the job (the server stores the caller's identity here). With
    /// <see cref="JobIdentityMode.PerOwner"/> it is required and chooses the job's uid and directory: 1-64 characters
    /// from <c>[A-Za-z0-9._-]</c>, not starting with '.' or '-'.
    /// </summary>
    public string? Owner { get; init; }
}
