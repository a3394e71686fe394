using JobWorker.Core.Cgroups;
using JobWorker.Core.Output;
using JobWorker.Core.State;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Jobs;

/// <summary>A program started by a <see cref="JobRunner"/>, in its own cgroup, under its own supervisor.</summary>
/// <remarks>
/// The job's parent is its supervisor (<c>jobworker-shim</c>), not the server, so the job outlives the server and
/// a restarted server re-attaches to it (docs/design-durability.md). The server watches the supervisor's pidfd
/// on the runner's event loop, never with a thread per job: when the supervisor exits it has recorded how the
/// job ended → usage is read → the cgroups are removed → the final status is recorded and published → the output
/// log is completed → <see cref="Completion"/> completes.
/// </remarks>
public sealed class Job
{
    private readonly JobRunner _runner;
    private readonly JobGroup _group;
    private readonly OutputLog _log;
    private readonly TaskCompletionSource<JobStatus> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _recordLock = new();
    private readonly DateTimeOffset _startedAt;
    private JobRecord _record;
    private SafeFileHandle? _shimPidfd;
    private readonly bool _shimIsChild;
    private volatile JobStatus? _final;
    private int _stopRequested;
    private int _finishing;

    internal Job(JobRunner runner, JobRecord record, JobGroup group, OutputLog log, int pid, DateTimeOffset startedAt, SafeFileHandle? shimPidfd, bool shimIsChild)
    {
        _runner = runner;
        _record = record;
        _group = group;
        _log = log;
        Pid = pid;
        _startedAt = startedAt;
        _shimPidfd = shimPidfd;
        _shimIsChild = shimIsChild;
        _stopRequested = record.StopRequestedAt is null ? 0 : 1;
        if (record.Final is { } final)
        {
            _final = final;
            _log.Complete(final.LogBytes);
            _completion.TrySetResult(final);
        }
    }

    /// <summary>
    /// With a PID namespace the main process is jobworker-init, which forwards a SIGTERM to its target: a stop must
    /// not send the target a second one.
    /// </summary>
    internal bool HasInit => Spec.Isolation is { } isolation && isolation.HasFlag(JobIsolation.Pid);

    /// <summary>The job's id.</summary>
    public Guid Id => _record.Id;

    /// <summary>What the job runs.</summary>
    public JobSpec Spec => _record.Spec;

    /// <summary>The client-chosen request id the job was started with, if any.</summary>
    public string? RequestId => _record.RequestId;

    /// <summary>The digest of the request that carried <see cref="RequestId"/>, as given to <see cref="JobRunner.Start"/>.</summary>
    public string? RequestFingerprint => _record.RequestFingerprint;

    /// <summary>When the job was recorded (just before it started).</summary>
    public DateTimeOffset CreatedAt => _record.CreatedAt;

    /// <summary>When the job's program started (<see cref="JobStatus.StartedAt"/>), without reading its usage.</summary>
    public DateTimeOffset StartedAt => _startedAt;

    /// <summary>The job's state now, without reading its usage (cheap, unlike <see cref="Status"/>).</summary>
    public JobState CurrentState => _final?.State ?? JobState.Running;

    /// <summary>The main process's id (in the server's PID namespace); 0 if it was never known.</summary>
    public int Pid { get; }

    /// <summary>The cgroup directory of the job's processes (removed once the job has ended).</summary>
    public string CgroupPath => _group.Job.Path;

    /// <summary>A snapshot of the job's current status, with fresh usage figures while it runs.</summary>
    /// <remarks>
    /// While the job runs, <see cref="JobStatus.LogBytes"/> is what the log holds now and
    /// <see cref="JobStatus.LogTruncated"/> is set once it reached its cap; the count of dropped bytes is known
    /// once the job has ended.
    /// </remarks>
    public JobStatus Status => _final ?? RunningStatus();

    /// <summary>Bytes in the job's output log now: cheaper than <see cref="Status"/> (no usage figures).</summary>
    public long LogLength => _final?.LogBytes ?? _log.Length;

    /// <summary>Whether the job has ended: its final status is known (and recorded).</summary>
    public bool HasEnded => _final is not null;

    /// <summary>Completes with the final status once the job has ended and its output is complete.</summary>
    public Task<JobStatus> Completion => _completion.Task;

    internal bool StopRequested => Volatile.Read(ref _stopRequested) != 0;

    internal OutputLog Log => _log;

    internal JobGroup Group => _group;

    private JobStatus RunningStatus()
    {
        var length = _log.Length;
        return new JobStatus
        {
            State = JobState.Running,
            Pid = Pid,
            StartedAt = _startedAt,
            Usage = _group.Job.ReadUsage(),
            LogBytes = length,
            LogTruncated = length >= _log.CapBytes,
        };
    }

    /// <summary>
    /// Stops the job: SIGTERM to every process in its cgroup, then SIGKILL to all once <paramref name="grace"/>
    /// has passed. Completes when no process of the job remains. Stopping an ended job returns its final status.
    /// </summary>
    /// <remarks>
    /// The stop is recorded first, so a server that restarts during the grace still reports the job as stopped
    /// and kills it when the grace is over.
    /// </remarks>
    /// <param name="grace">Time between SIGTERM and SIGKILL; <see langword="null"/> for the runner's default.</param>
    /// <param name="cancellationToken">Stops waiting (the stop itself goes on).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="grace"/> is negative.</exception>
    public Task<JobStatus> StopAsync(TimeSpan? grace = null, CancellationToken cancellationToken = default)
    {
        var effectiveGrace = grace ?? _runner.Options.DefaultStopGrace;
        ArgumentOutOfRangeException.ThrowIfLessThan(effectiveGrace, TimeSpan.Zero, nameof(grace));
        if (_final is { } final)
        {
            return Task.FromResult(final);
        }

        if (Pid > 0 && !_group.Job.ReadProcesses().Contains(Pid))
        {
            // Already ending by itself (its supervisor is killing what is left): a stop changes nothing, so it
            // must not turn an Exited job into a Stopped one.
            return _completion.Task.WaitAsync(cancellationToken);
        }

        var deadline = DateTimeOffset.UtcNow + effectiveGrace;
        if (Interlocked.Exchange(ref _stopRequested, 1) == 0)
        {
            UpdateRecord(r => r with { StopRequestedAt = DateTimeOffset.UtcNow, StopDeadline = deadline });
        }

        if (effectiveGrace == TimeSpan.Zero)
        {
            _group.Job.Kill();
        }
        else
        {
            // Every process, not only the main one: a child that ignores its parent's death, or a grandchild
            // that called setsid and double-forked, is still in the job's cgroup.
            _group.Job.Signal(Interop.Sys.SIGTERM, exceptPid: HasInit ? Pid : 0);
            _ = EscalateAfterAsync(effectiveGrace);
        }

        return _completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>A re-attached job whose stop was recorded: SIGKILL at the recorded deadline.</summary>
    internal void ResumeStop()
    {
        if (_record.StopDeadline is { } deadline && _final is null)
        {
            var left = deadline - DateTimeOffset.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                _group.Job.Kill();
            }
            else
            {
                _ = EscalateAfterAsync(left);
            }
        }
    }

    private async Task EscalateAfterAsync(TimeSpan grace)
    {
        // Not tied to the caller's token: a cancelled wait must not cancel the stop. WaitAsync drops its timer as
        // soon as the job ends, so a long grace leaves nothing behind for a job that stopped politely.
        try
        {
            await _completion.Task.WaitAsync(grace).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _group.Job.Kill();
        }
    }

    /// <summary>Reads the job's output (stdout and stderr, interleaved in the order written).</summary>
    public IAsyncEnumerable<OutputChunk> ReadOutputAsync(OutputReadOptions? options = null, CancellationToken cancellationToken = default)
        => _log.ReadAsync(options ?? OutputReadOptions.Default, cancellationToken);

    /// <summary>Watches the supervisor's pidfd on the runner's event loop.</summary>
    internal void Watch()
    {
        // The handler gets its token as an argument: it may run before Add returns.
        _runner.Loop.Add(_shimPidfd!, token => _ = OnShimExitedAsync(token));
    }

    /// <summary>Stops watching without touching the job (the runner is being disposed; the job runs on).</summary>
    internal void Detach()
    {
        _shimPidfd?.Dispose();
        _log.Dispose();
    }

    private async Task OnShimExitedAsync(ulong token)
    {
        _runner.Loop.Remove(token);
        if (_shimIsChild)
        {
            // Our child: reap it, so no zombie stays behind. A re-attached supervisor is not our child (ECHILD).
            _ = Interop.Spawn.PidfdWait(_shimPidfd!, nohang: 1, out _, out _);
        }

        _shimPidfd!.Dispose();
        _shimPidfd = null;
        await FinishAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Ends the job once its supervisor is gone: takes the exit status the supervisor recorded (or, if it died
    /// without one, kills what is left and reports SIGKILL), reads usage, removes the cgroups, records the final
    /// status, then publishes it. Publishing last means a job whose final status anyone has seen is fully ended
    /// (and can be removed at once).
    /// </summary>
    internal async Task FinishAsync()
    {
        if (Interlocked.Exchange(ref _finishing, 1) != 0)
        {
            return;
        }

        int? exitCode = null;
        int? signal = null;
        DateTimeOffset endedAt;
        long logBytes;
        long dropped = 0;
        int? logErrno = null;
        try
        {
            var shim = _runner.Store.ReadShimStatus(Id);
            if (shim?.HasEnded == true)
            {
                exitCode = shim.ExitCode;
                signal = shim.Signal;
                endedAt = shim.EndedAt ?? DateTimeOffset.UtcNow;
                logBytes = shim.LogBytes ?? _log.Length;
                dropped = shim.LogDroppedBytes ?? 0;
                logErrno = shim.LogErrno is > 0 ? shim.LogErrno : null;
                if (shim.OutputIncomplete == true)
                {
                    _runner.ReportBackgroundError(this, "draining output", new IOException(
                        "A process outside the job's cgroup kept the write end of the job's output pipe open; output written after the job ended was not read."));
                }
            }
            else
            {
                // The supervisor was killed (its job's main process died with it), or never got to start the job.
                _runner.ReportBackgroundError(this, "supervising the job", new IOException(
                    "The job's supervisor (jobworker-shim) ended without recording an exit status; the job's remaining processes are killed and it is reported as killed by SIGKILL."));
                signal = Interop.Sys.SIGKILL;
                endedAt = DateTimeOffset.UtcNow;
                _group.Job.Kill();
                if (_group.Job.IsPopulated())
                {
                    await _runner.CgroupWatcher.WaitUntilEmptyAsync(_group.Job).ConfigureAwait(false);
                }

                logBytes = _log.Length;
            }
        }
        catch (Exception ex)
        {
            _runner.ReportBackgroundError(this, "ending the job", ex);
            signal ??= exitCode is null ? Interop.Sys.SIGKILL : null;
            endedAt = DateTimeOffset.UtcNow;
            logBytes = _log.Length;
        }

        var usage = _group.Job.ReadUsage();
        if (!await _group.TryRemoveAsync().ConfigureAwait(false))
        {
            _runner.ReportBackgroundError(this, "removing the cgroup", new IOException($"cgroup {_group.Path} could not be removed"));
        }
        else
        {
            _runner.OnGroupRemoved(Spec.Owner);
        }

        var state = StopRequested ? JobState.Stopped : exitCode is not null ? JobState.Exited : JobState.Signaled;
        var final = new JobStatus
        {
            State = state,
            Pid = Pid,
            ExitCode = exitCode,
            Signal = signal,
            OomKilled = usage.OomKills > 0,
            StartedAt = _startedAt,
            EndedAt = endedAt,
            Usage = usage,
            LogBytes = logBytes,
            LogDroppedBytes = dropped,
            LogTruncated = dropped > 0 || logErrno is not null,
            LogErrno = logErrno,
        };
        UpdateRecord(r => r with { Final = final });
        _final = final;
        _log.Complete(logBytes);
        _completion.TrySetResult(final);
    }

    private void UpdateRecord(Func<JobRecord, JobRecord> change)
    {
        lock (_recordLock)
        {
            var updated = change(_record);
            try
            {
                _runner.Store.Update(updated);
            }
            catch (IOException ex)
            {
                // The job goes on; what is not recorded is recomputed from the supervisor's files after a restart.
                _runner.ReportBackgroundError(this, "recording the job", ex);
            }

            _record = updated;
        }
    }
}
