using JobWorker.Server.Configuration;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Hosting;

namespace JobWorker.Server.Quotas;

/// <summary>
/// Removes ended jobs, with their logs, once <see cref="RetentionOptions.EndedJobs"/> has passed since they ended:
/// once at start-up (before the server listens, so nobody sees an expired job) and then every
/// <see cref="RetentionOptions.CheckInterval"/>. Running jobs are never removed; a job whose output is being read
/// when it expires is removed all the same (the reader is told so), so no reader can keep a log on disk for ever.
/// </summary>
internal sealed class RetentionSweeper : IAsyncDisposable
{
    private readonly RetentionOptions _options;
    private readonly JobRunnerHost _host;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;
    private int _disposed;

    public RetentionSweeper(RetentionOptions options, JobRunnerHost host, ILogger logger)
    {
        _options = options;
        _host = host;
        _logger = logger;
    }

    /// <summary>Sweeps once now, then every check interval until disposed. Nothing happens without a retention time.</summary>
    public void Start()
    {
        if (_options.EndedJobs is null)
        {
            return;
        }

        Sweep();
        _loop = RunAsync(_stop.Token);
    }

    /// <summary>Removes every ended job that expired; returns how many.</summary>
    public int Sweep()
    {
        if (_options.EndedJobs is not { } retention)
        {
            return 0;
        }

        var now = DateTimeOffset.UtcNow;
        var removed = 0;
        foreach (var job in _host.Runner.Jobs)
        {
            if (!job.HasEnded || job.Status.EndedAt is not { } endedAt || now - endedAt < retention)
            {
                continue;
            }

            try
            {
                _host.Remove(job);
                removed++;
                Log.JobExpired(_logger, job.Id, job.Spec.Owner ?? string.Empty, endedAt, retention);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.JobExpiryFailed(_logger, e, job.Id);
            }
        }

        return removed;
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.CheckInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    Sweep();
                }
                catch (ObjectDisposedException)
                {
                    return; // the runner is gone: shutting down
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Stops the periodic check and waits for a sweep in progress; later calls do nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }

        _stop.Dispose();
    }
}
