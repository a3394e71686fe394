using JobWorker.Core.Cgroups;
using JobWorker.Core.Output;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Jobs;

/// <summary>A program started by a <see cref="JobRunner"/>, in its own cgroup.</summary>
/// <remarks>
/// The end of a job is driven by the runner's event loop, never by a thread per job: the pidfd becomes readable
/// when the main process exits → its status is reaped → <c>cgroup.kill</c> ends any leftovers → the group's
/// <c>populated 0</c> arrives through inotify → the output pipe reaches EOF → final usage is read → the group is
/// removed → the final status is published → the output log is completed → <see cref="Completion"/> completes.
/// One rule says whether a job has ended: its final status is published. By then no process of it remains, its
/// output is complete and its cgroup is gone, so an ended job can always be removed.
/// </remarks>
public sealed class Job
{
    private readonly JobRunner _runner;
    private readonly JobCgroup _cgroup;
    private readonly OutputLog _log;
    private readonly SafeFileHandle _pidfd;
    private readonly SafeFileHandle _outputPipe;
    private readonly TaskCompletionSource<JobStatus> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _outputEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly DateTimeOffset _startedAt;

    // The drain and the end of the job may both close the output pipe: whichever comes first, under this lock;
    // nothing reads the pipe afterwards.
    private readonly Lock _outputLock = new();
    private bool _outputClosed;
    private ulong _outputToken;

    private volatile JobStatus? _final;
    private volatile JobUsage? _endUsage;
    private int _stopRequested;
    private volatile bool _mainExited;

    internal Job(JobRunner runner, Guid id, JobSpec spec, JobCgroup cgroup, OutputLog log, int pid, SafeFileHandle pidfd, SafeFileHandle outputPipe, DateTimeOffset startedAt)
    {
        _runner = runner;
        Id = id;
        Spec = spec;
        _cgroup = cgroup;
        _log = log;
        Pid = pid;
        _pidfd = pidfd;
        _outputPipe = outputPipe;
        _startedAt = startedAt;
    }

    /// <summary>
    /// With a PID namespace the main process is jobworker-init, which writes its target's wait status here
    /// before exiting (a PID 1 cannot die of a signal it sends itself); null without one.
    /// </summary>
    internal SafeFileHandle? InitStatusPipe { get; init; }

    /// <summary>The job's id.</summary>
    public Guid Id { get; }

    /// <summary>What the job runs.</summary>
    public JobSpec Spec { get; }

    /// <summary>The main process's id (in the server's PID namespace).</summary>
    public int Pid { get; }

    /// <summary>The job's cgroup directory (removed once the job has ended).</summary>
    public string CgroupPath => _cgroup.Path;

    /// <summary>A snapshot of the job's current status, with fresh usage figures while it runs.</summary>
    public JobStatus Status => _final ?? new JobStatus
    {
        State = JobState.Running,
        Pid = Pid,
        StartedAt = _startedAt,
        Usage = _endUsage ?? _cgroup.ReadUsage(),
        LogBytes = _log.Length,
        LogDroppedBytes = _log.DroppedBytes,
        LogTruncated = _log.Truncated,
    };

    /// <summary>Completes with the final status once the job has ended and its output is complete.</summary>
    public Task<JobStatus> Completion => _completion.Task;

    internal bool StopRequested => Volatile.Read(ref _stopRequested) != 0;

    /// <summary>Whether the final status is published: the job has ended (see the remarks of <see cref="Job"/>).</summary>
    internal bool HasEnded => _final is not null;

    internal OutputLog Log => _log;

    /// <summary>
    /// Stops the job: SIGTERM to every process in its cgroup, then SIGKILL to all once <paramref name="grace"/>
    /// has passed. Completes when no process of the job remains. Stopping an ended job returns its final status.
    /// </summary>
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

        if (_mainExited)
        {
            // Already ending by itself (leftovers are being killed): a stop changes nothing, so it must not
            // turn an Exited job into a Stopped one.
            return _completion.Task.WaitAsync(cancellationToken);
        }

        Interlocked.Exchange(ref _stopRequested, 1);
        if (effectiveGrace == TimeSpan.Zero)
        {
            _cgroup.Kill();
        }
        else
        {
            // Every process, not only the main one: a child that ignores its parent's death, or a grandchild
            // that called setsid and double-forked, is still in the job's cgroup.
            // With a PID namespace the main process is jobworker-init: it would forward the SIGTERM to the target,
            // which gets one of its own here, and a second SIGTERM can mean "force quit" to a program.
            _cgroup.Signal(Interop.Sys.SIGTERM, exceptPid: InitStatusPipe is null ? 0 : Pid);
            _ = EscalateAfterGraceAsync(effectiveGrace);
        }

        return _completion.Task.WaitAsync(cancellationToken);
    }

    private async Task EscalateAfterGraceAsync(TimeSpan grace)
    {
        // Not tied to the caller's token: a cancelled wait must not cancel the stop. WaitAsync drops its timer as
        // soon as the job ends, so a long grace leaves nothing behind for a job that stopped politely.
        try
        {
            await _completion.Task.WaitAsync(grace).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _cgroup.Kill();
        }
    }

    /// <summary>Reads the job's output (stdout and stderr, interleaved in the order written).</summary>
    public IAsyncEnumerable<OutputChunk> ReadOutputAsync(OutputReadOptions? options = null, CancellationToken cancellationToken = default)
        => _log.ReadAsync(options ?? OutputReadOptions.Default, cancellationToken);

    /// <summary>Registers the pidfd and output pipe with the runner's event loop.</summary>
    internal void Watch()
    {
        // The handlers get their token as an argument: they may run before Add returns.
        _outputToken = _runner.Loop.Add(_outputPipe, OnOutputReadable);
        _runner.Loop.Add(_pidfd, OnMainExited);
    }

    private void OnOutputReadable(ulong token)
    {
        lock (_outputLock)
        {
            if (_outputClosed)
            {
                return; // a dispatch queued before the job's end stopped the drain
            }

            bool eof;
            try
            {
                eof = _log.DrainFrom(_outputPipe);
            }
            catch (Exception ex)
            {
                // A broken log must not keep the job (and its pipe) alive forever: stop reading, the job goes on.
                _runner.ReportBackgroundError(this, "draining output", ex);
                eof = true;
            }

            if (eof)
            {
                CloseOutput(token);
            }
            else
            {
                _runner.Loop.Rearm(token);
            }
        }
    }

    /// <summary>
    /// Stops reading the output for good before the log is completed, so nothing is appended to a log already
    /// reported final. A drain in progress stops after its current read.
    /// </summary>
    private void StopDrain()
    {
        _log.StopDraining();
        lock (_outputLock)
        {
            if (!_outputClosed)
            {
                CloseOutput(_outputToken);
            }
        }
    }

    private void CloseOutput(ulong token)
    {
        _outputClosed = true;
        _runner.Loop.Remove(token);

        // Bytes still in the pipe when reading stops are lost with it: count them. Anything written later fails
        // with EPIPE in the writer. At EOF there is nothing left.
        var unread = Interop.Io.BytesAvailable(_outputPipe);
        if (unread > 0)
        {
            _log.CountDropped(unread);
        }

        _outputPipe.Dispose();
        _outputEnded.TrySetResult();
    }

    private void OnMainExited(ulong token) => _ = EndAsync(token);

    private async Task EndAsync(ulong pidfdToken)
    {
        int? exitCode = null;
        int? signal = null;
        DateTimeOffset? endedAt = null;
        try
        {
            var r = Interop.Spawn.PidfdWait(_pidfd, nohang: 1, out var kind, out var code);
            if (r == 0 && kind == 0)
            {
                // Spurious readiness (should not happen for a pidfd): wait again.
                _runner.Loop.Rearm(pidfdToken);
                return;
            }

            endedAt = DateTimeOffset.UtcNow;
            _mainExited = true;
            if (InitStatusPipe is { } statusPipe)
            {
                // The target's own status, so isolation reports exactly what a job without it would. Nothing there
                // means the init itself was killed (cgroup.kill): its SIGKILL is the job's status then too.
                if (r == 0 && Interop.Spawn.InitStatus(statusPipe, out var targetKind, out var targetCode) == 1)
                {
                    (kind, code) = (targetKind, targetCode);
                }

                statusPipe.Dispose();
            }

            if (r == 0 && kind == 1)
            {
                exitCode = code;
            }
            else if (r == 0)
            {
                signal = code;
            }

            _runner.Loop.Remove(pidfdToken);
            _pidfd.Dispose();

            // The job ends with its main process: nothing it left behind may keep running.
            _cgroup.Kill();
            await _runner.CgroupWatcher.WaitUntilEmptyAsync(_cgroup).ConfigureAwait(false);

            // All writers are gone with the processes, so EOF follows promptly (unless a process outside the
            // cgroup got the pipe's write end through a unix socket: not a case we wait for forever).
            var timeout = _runner.Options.OutputEofTimeout;
            try
            {
                await _outputEnded.Task.WaitAsync(timeout).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                _runner.ReportBackgroundError(this, "reading the output", new IOException(
                    $"The output pipe was still open {timeout.TotalSeconds:0.###} s after the job's last process ended: a process outside the job holds its write end. Reading stopped; what it writes from now on is not captured."));
            }
        }
        catch (Exception ex)
        {
            _runner.ReportBackgroundError(this, "ending the job", ex);
            endedAt ??= DateTimeOffset.UtcNow;
        }

        // Normally the pipe reached EOF already and this does nothing.
        StopDrain();

        // The last figures before the group goes; a status asked for while it is being removed shows them too.
        var usage = _cgroup.ReadUsage();
        _endUsage = usage;
        if (!await _cgroup.TryRemoveAsync().ConfigureAwait(false))
        {
            _runner.ReportBackgroundError(this, "removing the cgroup", new IOException($"cgroup {_cgroup.Path} could not be removed"));
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
            LogBytes = _log.Length,
            LogDroppedBytes = _log.DroppedBytes,
            LogTruncated = _log.Truncated,
        };

        // Published before the log completes, so a follower that ends sees the final status; nothing of the job
        // is left to clean up but its log, which Remove deletes.
        _final = final;

        try
        {
            _log.Complete();
        }
        catch (Exception ex)
        {
            _runner.ReportBackgroundError(this, "completing the output log", ex);
        }

        _completion.TrySetResult(final);
    }
}
