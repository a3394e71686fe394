using System.Text;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Processes;

/// <summary>
/// A supervisor started ahead of its job (<c>jobworker-shim pool</c>): the server's child, waiting on its stdin for a
/// launch. It holds no job and no record; closing its stdin without a launch ends it. Started in the server's cgroup
/// (<see cref="SupervisorPool"/>), it forks a copy of itself into the job's shim cgroup when launched; started in a
/// job's shim cgroup already (a user's start made ready, <c>UserStartsAhead</c>), it supervises the job itself.
/// </summary>
/// <param name="pid">Its pid.</param>
/// <param name="pidfd">Its pidfd (it is our child: reaped through it).</param>
/// <param name="launch">The write end of its stdin, where the launch goes.</param>
/// <param name="report">The read end of its report pipe.</param>
internal sealed class IdleSupervisor(int pid, SafeFileHandle pidfd, SafeFileHandle launch, SafeFileHandle report)
{
    public int Pid => pid;

    /// <summary>
    /// Starts one: root, in a session of its own, no death signal, an empty environment, as a directly started one; in
    /// <paramref name="cgroup"/> (a directory fd), or the server's own cgroup when null. Null when the spawn failed.
    /// </summary>
    public static IdleSupervisor? Start(ProcessSpawner spawner, string shimPath, SafeFileHandle? cgroup)
    {
        var (launchRead, launchWrite) = Interop.Io.CreatePipe();
        var (reportRead, reportWrite) = Interop.Io.CreatePipe();
        using (launchRead)
        using (reportWrite)
        {
            var result = spawner.Spawn(new SpawnRequest
            {
                ExecPaths = [shimPath],
                Argv = [ShimLaunch.ShimName, "pool"],
                Environment = [],
                Stdin = launchRead,
                Output = reportWrite,
                Cgroup = cgroup,
                ParentDeathSignal = 0,
            });
            if (result.Succeeded)
            {
                return new IdleSupervisor(result.Pid, result.Pidfd!, launchWrite, reportRead);
            }
        }

        launchWrite.Dispose();
        reportRead.Dispose();
        return null;
    }

    /// <summary>
    /// Writes the launch: <paramref name="shimCgroup"/> (the cgroup to fork the job's supervisor into, or "" to
    /// supervise the job from where it is), <paramref name="argv"/> and <paramref name="environment"/>, then EOF.
    /// Null when it is gone (killed while idle: reaped here, and the caller starts a supervisor directly).
    /// </summary>
    public SupervisorPool.Launched? TryLaunch(string shimCgroup, IReadOnlyList<string> argv, IReadOnlyList<string> environment)
    {
        try
        {
            using (var stream = new FileStream(launch, FileAccess.Write, bufferSize: 0))
            {
                stream.Write(Message([shimCgroup, .. argv], environment));
            }

            return new SupervisorPool.Launched(pid, pidfd, report);
        }
        catch (IOException)
        {
            // EPIPE on the write: it must not stay a zombie.
            End(kill: true);
            return null;
        }
    }

    /// <summary>Ends it while idle: closing its stdin makes it exit; then it is reaped (it is our child).</summary>
    public void End(bool kill)
    {
        launch.Dispose();
        if (kill)
        {
            _ = Interop.Spawn.PidfdSendSignal(pidfd, Interop.Sys.SIGKILL);
        }

        _ = Interop.Spawn.PidfdWait(pidfd, nohang: 0, out _, out _);
        pidfd.Dispose();
        report.Dispose();
    }

    private static byte[] Message(IReadOnlyList<string> argv, IReadOnlyList<string> environment)
    {
        var size = 0;
        foreach (var s in argv.Concat(environment))
        {
            size += Encoding.UTF8.GetByteCount(s) + 1;
        }

        var message = new byte[size];
        var at = 0;
        foreach (var s in argv.Concat(environment))
        {
            at += Encoding.UTF8.GetBytes(s, message.AsSpan(at));
            message[at++] = 0;
        }

        return message;
    }
}
