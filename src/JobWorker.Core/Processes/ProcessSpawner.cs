using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>
/// Starts processes from one long-lived thread. The parent-death signal (<c>PR_SET_PDEATHSIG</c>) follows the
/// thread that spawned the child, not the process: a child spawned from a thread-pool thread would be killed
/// when the pool retires that thread. So every spawn is handed to this thread and the caller waits.
/// </summary>
internal sealed class ProcessSpawner : IDisposable
{
    private readonly BlockingCollection<WorkItem> _queue = new();
    private readonly Thread _thread;

    public ProcessSpawner()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "JobWorker spawner" };
        _thread.Start();
    }

    /// <summary>Spawns on the spawner thread; returns after the child exec'd or failed.</summary>
    public SpawnResult Spawn(SpawnRequest request)
    {
        using var argv = new NativeStringArray(request.Argv);
        using var envp = new NativeStringArray(request.Environment);
        using var execPaths = new NativeStringArray(request.ExecPaths);
        using var cwd = new NativeStringArray(request.WorkingDirectory is null ? [] : [request.WorkingDirectory]);
        var item = new WorkItem(request, argv, envp, execPaths, cwd);
        _queue.Add(item);
        item.Done.Wait();
        return item.Result;
    }

    private void Run()
    {
        foreach (var item in _queue.GetConsumingEnumerable())
        {
            try
            {
                item.Result = SpawnHere(item);
            }
            catch (Exception ex)
            {
                item.Result = new SpawnResult(-1, null, Interop.Spawn.Step.Clone, ex.HResult, false);
            }

            item.Done.Set();
        }
    }

    private static unsafe SpawnResult SpawnHere(WorkItem item)
    {
        var request = item.Request;
        var addedRefs = new List<SafeHandle>(3);
        try
        {
            // Keep the fds alive (and their numbers valid) while the C code uses them.
            var stdin = AddRef(request.Stdin, addedRefs);
            var output = AddRef(request.Output, addedRefs);
            var cgroup = request.Cgroup is null ? -1 : AddRef(request.Cgroup, addedRefs);
            var status = request.StatusPipe is null ? -1 : AddRef(request.StatusPipe, addedRefs);

            var flags = request.NewSession ? Interop.Spawn.FlagSetsid : 0;
            if (request.Credentials is not null)
            {
                flags |= Interop.Spawn.FlagSetCredentials;
            }

            if (request.UseInit)
            {
                flags |= Interop.Spawn.FlagInit;
            }

            if (request.ForceFallback)
            {
                flags |= Interop.Spawn.FlagNoClone3;
            }

            if (request.StartState is not null)
            {
                flags |= Interop.Spawn.FlagStartState;
            }

            var args = new Interop.Spawn.SpawnArgs
            {
                Size = (uint)sizeof(Interop.Spawn.SpawnArgs),
                Flags = flags,
                NamespaceFlags = request.NamespaceFlags,
                ExecPaths = item.ExecPaths.Pointer,
                Argv = item.Argv.Pointer,
                Envp = item.Envp.Pointer,
                Cwd = request.WorkingDirectory is null ? null : item.Cwd.Pointer[0],
                StdinFd = stdin,
                StdoutFd = output,
                StderrFd = output,
                CgroupFd = cgroup,
                Uid = request.Credentials?.Uid ?? 0,
                Gid = request.Credentials?.Gid ?? 0,
                PdeathSignal = request.ParentDeathSignal,
                StatusFd = status,
                NofileSoft = request.StartState?.OpenFilesSoft ?? 0,
                NofileHard = request.StartState?.OpenFilesHard ?? 0,
                Umask = request.StartState?.Umask ?? 0,
                OomScoreAdj = request.StartState?.OomScoreAdjust ?? 0,
                Nice = request.StartState?.Nice ?? 0,
            };

            if (Interop.Spawn.SpawnProcess(&args) < 0)
            {
                return new SpawnResult(-1, null, (Interop.Spawn.Step)args.FailedStep, args.Error, args.UsedClone3 != 0);
            }

            return new SpawnResult(args.Pid, new SafeFileHandle(args.Pidfd, ownsHandle: true), Interop.Spawn.Step.None, 0, args.UsedClone3 != 0);
        }
        finally
        {
            foreach (var handle in addedRefs)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static int AddRef(SafeHandle handle, List<SafeHandle> added)
    {
        var ok = false;
        handle.DangerousAddRef(ref ok);
        added.Add(handle);
        return (int)handle.DangerousGetHandle();
    }

    public void Dispose()
    {
        _queue.CompleteAdding();
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }

        _queue.Dispose();
    }

    private sealed class WorkItem(SpawnRequest request, NativeStringArray argv, NativeStringArray envp, NativeStringArray execPaths, NativeStringArray cwd)
    {
        public SpawnRequest Request { get; } = request;

        public NativeStringArray Argv { get; } = argv;

        public NativeStringArray Envp { get; } = envp;

        public NativeStringArray ExecPaths { get; } = execPaths;

        public NativeStringArray Cwd { get; } = cwd;

        public ManualResetEventSlim Done { get; } = new(false);

        public SpawnResult Result { get; set; }
    }
}
