using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// The server as a systemd <c>Type=notify</c> service: the real binary tells the service manager it is ready (on a
/// datagram socket the test binds, as systemd does) only once it serves; the shipped unit file passes
/// <c>systemd-analyze verify</c>.
/// </summary>
public sealed partial class SystemdServiceTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 90_000)]
    public async Task Binary_NotifySocket_ReadyOnlyWhenListeningAndRecoveredJobsServed()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var first = env.Start();
        var address = await env.WaitForListeningAsync(first);
        var firstClient = env.Client(address, TestServer.Alice);
        var job = (await firstClient.StartJobAsync(
            new StartJobRequest { Command = TestServer.TestProcess, Args = { "exit", "7" } }, cancellationToken: Token)).Job;
        // Ended before the SIGKILL, so nothing of it runs when the test removes its state at the end.
        while ((await firstClient.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job.State == JobState.Running)
        {
            await Task.Delay(50, Token);
        }

        first.Kill(); // SIGKILL: the next server finds the job only in the state directory
        await first.WaitForExitAsync(Token);
        first.Dispose();

        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(Path.Combine(env.Directory, "notify.sock")));
        env.Environment["NOTIFY_SOCKET"] = Path.Combine(env.Directory, "notify.sock");
        // The same port again: the test must be able to connect the moment READY=1 arrives, without learning the
        // port from a log line that could come later.
        using var server = env.Start(listen: address.Authority);
        var ready = await ReceiveAsync(notify, server, env);

        Assert.Equal("READY=1", ready);
        using (var tcp = new TcpClient())
        {
            // Accepting now, not eventually: no retry.
            await tcp.ConnectAsync(IPAddress.Loopback, address.Port, Token);
        }

        var client = env.Client(address, TestServer.Alice);
        var recovered = (await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;
        Assert.Equal((JobState.Exited, 7), (recovered.State, recovered.ExitCode));
        Assert.Contains(job.JobId, (await client.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs.Select(j => j.JobId));

        // Journal format: the syslog priority first (6 = information), no timestamp of our own.
        Assert.Matches(JournalListeningLine(), await env.WaitForLineAsync(JournalListeningLine()));

        using (var kill = Process.Start("kill", ["-TERM", server.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync(Token);
        }

        Assert.Equal("STOPPING=1", await ReceiveAsync(notify, server, env));
        await server.WaitForExitAsync(Token);
        Assert.True(server.ExitCode == 0, $"exit code {server.ExitCode}; output:\n{env.Output}");
    }

    [Fact(Timeout = 60_000)]
    public async Task UnitFile_SystemdAnalyzeVerify_NoWarnings()
    {
        var unit = Path.Combine(RepositoryRoot(), "packaging", "systemd", "jobworker.service");
        var text = await File.ReadAllTextAsync(unit, Token);
        Assert.Matches(@"(?m)^Type=notify$", text);
        var directory = Directory.CreateTempSubdirectory("jobworker-srvtest-unit-");
        try
        {
            // ExecStart names where a package installs the server; systemd-analyze insists that it exists and is
            // executable, so a copy points it at the server built next to these tests (its arguments unchanged).
            var copy = Path.Combine(directory.FullName, "jobworker.service");
            var rewritten = ExecStartCommand().Replace(text, m => m.Groups["prefix"].Value + BinaryEnvironment.ServerBinary, 1);
            Assert.NotEqual(text, rewritten);
            await File.WriteAllTextAsync(copy, rewritten, Token);

            var start = new ProcessStartInfo("systemd-analyze", ["verify", copy])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            Process process;
            try
            {
                process = Process.Start(start)!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // No systemd on this host: at least every line is a section, a comment or Key=Value.
                Assert.All(rewritten.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] is not ('#' or ';')), line => Assert.Matches(UnitLine(), line));
                return;
            }

            using var owned = process;
            var stdout = process.StandardOutput.ReadToEndAsync(Token);
            var stderr = process.StandardError.ReadToEndAsync(Token);
            await process.WaitForExitAsync(Token);

            // Unknown keys and unparsable values are warnings with exit status 0: any output is a failure.
            var output = (await stdout + await stderr).Trim();
            Assert.True(process.ExitCode == 0 && output.Length == 0, $"systemd-analyze verify exited {process.ExitCode}:\n{output}");
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static async Task<string> ReceiveAsync(Socket socket, Process server, BinaryEnvironment env)
    {
        var buffer = new byte[4096];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var received = socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).AsTask();
        var exited = server.WaitForExitAsync(timeout.Token);
        if (await Task.WhenAny(received, exited) == exited && !received.IsCompleted)
        {
            throw new InvalidOperationException($"the server exited with {server.ExitCode} before notifying:\n{env.Output}");
        }

        return Encoding.UTF8.GetString(buffer, 0, await received).Trim();
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "JobWorker.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"no JobWorker.slnx above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"(?m)^(?<prefix>ExecStart=[-@:+!]*)\S+")]
    private static partial Regex ExecStartCommand();

    [GeneratedRegex(@"^(\[[A-Za-z]+\]|[A-Za-z]+=.*)$")]
    private static partial Regex UnitLine();

    [GeneratedRegex(@"^<6>JobWorker\.Server\[\d+\] Listening for gRPC on https://")]
    private static partial Regex JournalListeningLine();
}
