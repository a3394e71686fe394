using JobWorker.Core.Output;

namespace JobWorker.Core.Jobs;

/// <summary>A program started by a <see cref="JobRunner"/>, in its own cgroup.</summary>
public sealed class Job
{
    private Job()
    {
        throw new NotImplementedException();
    }

    /// <summary>The job's id.</summary>
    public Guid Id => throw new NotImplementedException();

    /// <summary>What the job runs.</summary>
    public JobSpec Spec => throw new NotImplementedException();

    /// <summary>A snapshot of the job's current status, with fresh usage figures while it runs.</summary>
    public JobStatus Status => throw new NotImplementedException();

    /// <summary>Completes with the final status once the job has ended and its output is complete.</summary>
    public Task<JobStatus> Completion => throw new NotImplementedException();

    /// <summary>
    /// Stops the job: SIGTERM to every process in its cgroup, then SIGKILL to all once <paramref name="grace"/>
    /// has passed. Completes when no process of the job remains. Stopping an ended job returns its final status.
    /// </summary>
    /// <param name="grace">Time between SIGTERM and SIGKILL; <see langword="null"/> for the runner's default.</param>
    /// <param name="cancellationToken">Stops waiting (the stop itself goes on).</param>
    public Task<JobStatus> StopAsync(TimeSpan? grace = null, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();

    /// <summary>Reads the job's output (stdout and stderr, interleaved in the order written).</summary>
    public IAsyncEnumerable<OutputChunk> ReadOutputAsync(OutputReadOptions? options = null, CancellationToken cancellationToken = default)
        => throw new NotImplementedException();
}
