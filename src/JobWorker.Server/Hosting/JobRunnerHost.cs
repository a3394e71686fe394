using JobWorker.Core.Jobs;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Errors;
using JobWorker.Server.Quotas;
using JobWorker.Server.Services;
using Microsoft.Extensions.Options;

namespace JobWorker.Server.Hosting;

/// <summary>
/// Owns the server's <see cref="JobRunner"/>: creates it before Kestrel starts listening (so a server that cannot
/// create its cgroup subtree never accepts a connection), enforces the per-user quotas and the disk watermark on
/// starts, removes expired ended jobs, and at shutdown refuses new jobs and stops every job within its grace before
/// Kestrel drains the last streams.
/// </summary>
public sealed class JobRunnerHost : IHostedLifecycleService, IAsyncDisposable
{
    private readonly ServerOptions _options;
    private readonly LimitsOptions _limits;
    private readonly JobLimitPolicy _limitPolicy;
    private readonly ServerMetrics _metrics;
    private readonly StartRequestRegistry _requests;
    private readonly ILogger<JobRunnerHost> _logger;
    private readonly QuotaLedger _quotas;
    private readonly DiskWatermark _disk;
    private readonly RetentionOptions _retention;
    private readonly Lock _lock = new();
    private JobRunner? _runner;
    private RetentionSweeper? _sweeper;
    private volatile bool _stopping;
    private int _disposed;
    private int _streams;
    private TaskCompletionSource? _streamsDrained;

    public JobRunnerHost(IOptions<ServerOptions> options, LimitsOptions limits, JobLimitPolicy limitPolicy, ServerMetrics metrics, StartRequestRegistry requests, QuotaLedger quotas, DiskWatermark disk, RetentionOptions retention, ILogger<JobRunnerHost> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _limits = limits;
        _limitPolicy = limitPolicy;
        _quotas = quotas;
        _disk = disk;
        _retention = retention;
        _requests = requests;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>The runner; available once the host has started.</summary>
    public JobRunner Runner => _runner ?? throw new ServerShuttingDownException("the job runner is not running");

    /// <summary>Whether shutdown has begun (new jobs are refused).</summary>
    public bool IsStopping => _stopping;

    /// <summary>Starts a job for <paramref name="caller"/>, counting it against the caller's quotas.</summary>
    /// <param name="spec">The job.</param>
    /// <param name="caller">Who starts it.</param>
    /// <param name="cancellationToken">Checked last before the spawn (the caller gave up, or its deadline passed);
    /// the spawn itself is not cancellable once begun.</param>
    /// <exception cref="RunningJobLimitException">The caller is at the running-job quota.</exception>
    /// <exception cref="QuotaExceededException">The caller is at another quota, or the log file system is below its watermark.</exception>
    /// <exception cref="ServerShuttingDownException">The server is stopping.</exception>
    /// <param name="request">The request id and its request's fingerprint, recorded with the job so a restarted
    /// server still recognizes a retry; or null.</param>
    /// <exception cref="OperationCanceledException">Cancelled before the spawn: nothing was started.</exception>
    public Job Start(JobSpec spec, ClientIdentity caller, (string Id, string Fingerprint)? request = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(caller);
        if (_stopping)
        {
            throw new ServerShuttingDownException("the server is shutting down and accepts no new jobs");
        }

        if (_retention.RemoveOldestOverQuota)
        {
            MakeRoom(caller);
        }

        _quotas.Reserve(caller);
        Job job;
        try
        {
            _disk.Check();
            cancellationToken.ThrowIfCancellationRequested();
            job = Runner.Start(spec, request?.Id, request?.Fingerprint);
        }
        catch (QuotaExceededException)
        {
            Release(caller.User);
            throw;
        }
        catch (OperationCanceledException)
        {
            Release(caller.User);
            throw;
        }
        catch (ObjectDisposedException e)
        {
            Release(caller.User);
            throw new ServerShuttingDownException("the server is shutting down and accepts no new jobs", e);
        }
        catch (ArgumentException e)
        {
            // Core's spec checks name the field; only these (not any ArgumentException) reach the client.
            Release(caller.User);
            _metrics.JobStartFailed();
            throw new InvalidRequestException(e.Message, e);
        }
        catch
        {
            Release(caller.User);
            _metrics.JobStartFailed();
            throw;
        }

        _quotas.Started(caller.User, job);
        _metrics.JobStarted();
        _ = WatchAsync(job, caller.User);
        return job;
    }

    /// <summary>
    /// Removes <paramref name="caller"/>'s oldest ended jobs (in creation order) while the caller keeps as many ended
    /// jobs, or log bytes, as their quota allows, so that the quota check that follows lets the start through. Nothing
    /// is removed for the bytes when the running jobs' logs alone hold the quota: no removal could make room then.
    /// </summary>
    private void MakeRoom(ClientIdentity caller)
    {
        var quota = _quotas.QuotaOf(caller);
        if (quota.MaxRetainedJobs <= 0 && quota.MaxLogBytes <= 0)
        {
            return;
        }

        var user = caller.User;
        long? runningBytes = null;
        // Each round removes one job; there are never more rounds than ended jobs to remove.
        for (var round = _quotas.UsageOf(user).Retained; round >= 0; round--)
        {
            var (running, retained, bytes) = _quotas.UsageOf(user);
            var forCount = quota.MaxRetainedJobs > 0 && retained >= quota.MaxRetainedJobs;
            // Running logs are read (their lengths) only when, at their caps, they could take the user over.
            var forBytes = quota.MaxLogBytes > 0 && bytes + (running * _options.LogSizeLimitBytes) >= quota.MaxLogBytes
                && (runningBytes ??= _quotas.RunningLogBytes(user)) < quota.MaxLogBytes && bytes + runningBytes >= quota.MaxLogBytes;
            if (!forCount && !forBytes)
            {
                return;
            }

            var oldest = Runner.ListJobs(after: null, count: 1, job => job.CurrentState != JobState.Running && string.Equals(job.Spec.Owner, user, StringComparison.Ordinal));
            if (oldest.Count == 0 || !oldest[0].HasEnded)
            {
                return; // nothing ended to remove (or its end is still being published): the quota check answers
            }

            var job = oldest[0];
            try
            {
                Remove(job);
                Log.JobRemovedForRoom(_logger, job.Id, user, retained, bytes, quota.MaxRetainedJobs, quota.MaxLogBytes);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.JobRemovalForRoomFailed(_logger, e, job.Id);
                return;
            }
        }
    }

    /// <summary>
    /// Counts an open output stream until the returned object is disposed. Shutdown waits (briefly) for streams to
    /// send their last bytes and final status before the runner closes the logs.
    /// </summary>
    public IDisposable OpenStream()
    {
        Interlocked.Increment(ref _streams);
        return new StreamRegistration(this);
    }

    /// <summary>Running jobs of <paramref name="user"/> as counted for the quota.</summary>
    public int RunningJobs(string user) => _quotas.UsageOf(user).Running;

    /// <summary>Removes an ended job and its log, and stops counting it against its owner's quotas.</summary>
    /// <exception cref="InvalidOperationException">The job is still running.</exception>
    /// <exception cref="IOException">The job's directory could not be removed (it is no longer listed).</exception>
    public void Remove(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (!job.HasEnded)
        {
            throw new InvalidOperationException($"Job {job.Id} is still running; stop it first.");
        }

        try
        {
            Runner.Remove(job);
        }
        finally
        {
            _quotas.Removed(job);
        }
    }

    private void Release(string user) => _quotas.Unreserve(user);

    private async Task WatchAsync(Job job, string user)
    {
        try
        {
            var status = await job.Completion.ConfigureAwait(false);
            Log.JobEnded(_logger, job.Id, user, status.State.ToString(), status.ExitCode, status.Signal);
        }
#pragma warning disable CA1031 // The watcher only keeps counts; a failed job is reported by its status, not here.
        catch (Exception)
#pragma warning restore CA1031
        {
        }
        finally
        {
            _quotas.Ended(job);
            _metrics.JobEnded();
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _runner = JobRunner.Create(new JobRunnerOptions
        {
            CgroupRoot = string.IsNullOrWhiteSpace(_options.CgroupRoot) ? null : _options.CgroupRoot,
            UseDelegatedCgroup = _options.UseDelegatedCgroup,
            StateDirectory = _options.StateDirectory,
            LogSizeLimitBytes = _options.LogSizeLimitBytes,
            Identity = _options.Identity.ToJobIdentityOptions(),
            User = _options.JobUser,
            Group = _options.JobGroup,
            DefaultStopGrace = _options.DefaultStopGrace,
            DefaultIsolation = _options.DefaultIsolation,
            RequiredIsolation = _options.RequiredIsolation,
            StartState = _options.JobStartState(),
            UserLimits = _limits.UserCgroupLimits(),
            UserLimitsByUser = _limits.UserCgroupLimitsByUser(),
            ServerMemoryMinBytes = _limits.Server.MemoryMinBytes,
            ServerMemoryLowBytes = _limits.Server.MemoryLowBytes,
            SupervisorPoolSize = _options.SupervisorPoolSize,
            UserStartAheadTime = _options.UserStartAheadTime,
            Logger = _logger,
        });
        CheckDefaultsEnforceable(_runner);
        _runner.BackgroundError += (_, e) => Log.JobBackgroundError(_logger, e.Exception, e.JobId, e.Operation);

        // Request ids survive a restart: a retry that reaches this server returns the job an earlier one started.
        _requests.Remember(_runner.Jobs);

        // Jobs found in the state directory count against their owners' quotas like new ones: the running ones
        // until they end, the ended ones until they are removed.
        foreach (var job in _runner.Jobs)
        {
            if (!_quotas.Recovered(job))
            {
                _ = WatchAsync(job, job.Spec.Owner ?? string.Empty);
            }
        }

        // Expired jobs go before the server listens: no client ever sees one.
        _sweeper = new RetentionSweeper(_retention, this, _logger);
        _sweeper.Start();
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// A default limit is applied to every start that omits it; without its controller every such start would fail.
    /// Refused at start-up instead, naming the setting (a requested limit without its controller fails that start).
    /// The runner is released when the host is disposed, as after any failed start.
    /// </summary>
    private void CheckDefaultsEnforceable(JobRunner runner)
    {
        var missing = _limitPolicy.Defaults().Where(d => !runner.AvailableControllers.Contains(d.Controller)).ToList();
        if (missing.Count == 0)
        {
            return;
        }

        var available = runner.AvailableControllers.Count == 0 ? "none" : string.Join(' ', runner.AvailableControllers.Order(StringComparer.Ordinal));
        var (setting, controller) = missing[0];
        throw new JobWorkerException(
            $"{setting} sets a default limit, but the cgroup v2 {controller} controller is not available to jobs under {runner.CgroupRoot} (available: {available}). Remove the default, or run the server where the controller is enabled (systemd: Delegate=yes and --delegated-cgroup, see docs/operations.md).");
    }

    /// <summary>
    /// Runs before Kestrel stops: refuse new jobs. By default jobs keep running under their supervisors and a
    /// restarted server re-attaches to them; with <see cref="ServerOptions.StopJobsOnShutdown"/> every job is
    /// stopped within its grace first, and followers see their jobs end and finish normally.
    /// </summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        if (_sweeper is { } sweeper)
        {
            await sweeper.DisposeAsync().ConfigureAwait(false);
        }

        if (_runner is { } runner && Volatile.Read(ref _disposed) == 0)
        {
            var running = runner.Jobs.Count(j => !j.HasEnded);
            Log.ShuttingDown(_logger, running, _options.StopJobsOnShutdown);
            if (_options.StopJobsOnShutdown)
            {
                // Stop first, then let followers read to the end and send the final status, then close the logs:
                // disposing the runner at once would cut followers off in the middle of the output's tail.
                await runner.StopAllAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                await WaitForStreamsAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
            }

            await DisposeRunnerAsync().ConfigureAwait(false);
            Log.ShutdownComplete(_logger);
        }
    }

    private async Task WaitForStreamsAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        Task drained;
        lock (_lock)
        {
            if (Volatile.Read(ref _streams) == 0)
            {
                return;
            }

            _streamsDrained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            drained = _streamsDrained.Task;
        }

        try
        {
            await drained.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A client that does not read keeps its stream open; Kestrel's shutdown aborts it later.
        }
    }

    private void CloseStream()
    {
        if (Interlocked.Decrement(ref _streams) == 0)
        {
            lock (_lock)
            {
                if (Volatile.Read(ref _streams) == 0)
                {
                    _streamsDrained?.TrySetResult();
                }
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Disposes the runner if shutdown did not (for example when startup failed half way).</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        if (_sweeper is { } sweeper)
        {
            await sweeper.DisposeAsync().ConfigureAwait(false);
        }

        await DisposeRunnerAsync().ConfigureAwait(false);
    }

    // The runner stays readable while it stops its jobs (status and output of stopping jobs are still served);
    // it is disposed exactly once, whichever of shutdown and container disposal comes first.
    private async Task DisposeRunnerAsync()
    {
        if (_runner is { } runner && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await runner.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class StreamRegistration(JobRunnerHost host) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                host.CloseStream();
            }
        }
    }
}
