namespace JobWorker.Core.Jobs;

/// <summary>Starts and tracks jobs. Disposing it stops every job and removes its cgroup subtree.</summary>
public sealed class JobRunner : IAsyncDisposable
{
    private JobRunner()
    {
        throw new NotImplementedException();
    }

    /// <summary>Creates a runner: finds cgroup v2, prepares its subtree and log directory, removes stale groups.</summary>
    public static JobRunner Create(JobRunnerOptions options) => throw new NotImplementedException();

    /// <summary>The cgroup v2 controllers available to jobs (for example <c>cpu</c>, <c>memory</c>).</summary>
    public IReadOnlySet<string> AvailableControllers => throw new NotImplementedException();

    /// <summary>All jobs not yet removed.</summary>
    public IReadOnlyCollection<Job> Jobs => throw new NotImplementedException();

    /// <summary>Starts a job. Returns once the program has been exec'd.</summary>
    /// <exception cref="ArgumentException">The spec is invalid; the message names the field.</exception>
    /// <exception cref="CgroupControllerUnavailableException">A requested limit's controller is missing.</exception>
    /// <exception cref="JobStartException">The program could not be started.</exception>
    public Job Start(JobSpec spec) => throw new NotImplementedException();

    /// <summary>Finds a job by id.</summary>
    public bool TryGetJob(Guid id, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Job? job)
        => throw new NotImplementedException();

    /// <summary>Forgets an ended job and deletes its log.</summary>
    /// <exception cref="InvalidOperationException">The job is still running.</exception>
    public void Remove(Job job) => throw new NotImplementedException();

    /// <summary>Stops all jobs within their grace and removes the runner's cgroup subtree.</summary>
    public ValueTask DisposeAsync() => throw new NotImplementedException();
}
