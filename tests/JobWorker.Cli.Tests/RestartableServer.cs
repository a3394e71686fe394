using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using JobWorker.Pki;
using JobWorker.Tests.Shared;

namespace JobWorker.Cli.Tests;

/// <summary>
/// The real server binary (<c>JobWorker.Server</c>, built next to the tests) on a fixed loopback port, so that it
/// can be killed and started again on the same port, state directory and cgroup root, as an operator restarts or
/// upgrades it. Jobs outlive it; on dispose the server is killed and the test's own cgroup subtree (with any job
/// still in it), state and PKI are removed.
/// </summary>
internal sealed partial class RestartableServer : IAsyncDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly Lock _lock = new();
    private readonly List<string> _lines = [];
    private Process? _process;
    private TaskCompletionSource<Uri>? _listening;

    public RestartableServer()
    {
        // World-traversable: jobs run as an unprivileged user and read files the tests put here; the PKI stays 0700.
        File.SetUnixFileMode(_directory.Path, (UnixFileMode)0b111_101_101);
        Pki = DevPki.Create(Path.Combine(_directory.Path, "pki"), [new(ServerFixture.Alice, Roles.User)]);
        CgroupRoot = Path.Combine(ServerFixture.CgroupMount, "jobworker-clitest-" + Guid.NewGuid().ToString("N")[..12]);
        StateDirectory = Path.Combine(_directory.Path, "state");

        // A port nobody uses now, kept for every run of the server.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        Address = new Uri($"https://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}");
        probe.Stop();

        Config = Path.Combine(_directory.Path, "alice.json");
        ServerFixture.WriteConfig(Config, Address, Pki.ClientCertificate(ServerFixture.Alice), Pki.ClientKey(ServerFixture.Alice), Pki.CaCertificate);
    }

    public static string ServerBinary { get; } = Path.Combine(AppContext.BaseDirectory, "JobWorker.Server");

    public string Directory => _directory.Path;

    public DevPkiLayout Pki { get; }

    public string CgroupRoot { get; }

    public string StateDirectory { get; }

    /// <summary>Where the server creates each user's private directory (outside /tmp, which isolated jobs do not see).</summary>
    public string UserDirectoryRoot { get; } = Path.Combine("/var/tmp", "jobworker-clitest-users-" + Guid.NewGuid().ToString("N")[..12]);

    public Uri Address { get; }

    /// <summary>Flags for the server's next start, after the test's own (a later flag wins).</summary>
    public List<string> Arguments { get; } = [];

    /// <summary>Environment variables for the server's next start (e.g. a log level).</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>The client config of the user alice.</summary>
    public string Config { get; }

    /// <summary>What the current run of the server printed, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_lock)
            {
                return string.Join('\n', _lines);
            }
        }
    }

    /// <summary>Starts the server and waits until it listens.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_process is { HasExited: false })
        {
            throw new InvalidOperationException("the server runs already");
        }

        _process?.Dispose();
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            _lines.Clear();
            _listening = listening;
        }

        var start = new ProcessStartInfo(ServerBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "--listen", $"127.0.0.1:{Address.Port}",
            "--ca", Pki.CaCertificate,
            "--cert", Pki.ServerCertificate,
            "--key", Pki.ServerKey,
            "--cgroup-root", CgroupRoot,
            "--state-dir", StateDirectory,
            "--user-dir-root", UserDirectoryRoot,
            "--grace", "00:00:01",
        }.Concat(TestServerSettings.Arguments).Concat(Arguments))
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (name, value) in Environment)
        {
            start.Environment[name] = value;
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var exited = process.WaitForExitAsync(cancellationToken);
        if (await Task.WhenAny(exited, listening.Task.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken)) == exited)
        {
            throw new InvalidOperationException($"the server exited with {process.ExitCode}:\n{Output}");
        }

        var address = await listening.Task;
        Assert.Equal(Address, address);
    }

    /// <summary>Waits until the current run of the server has printed a line containing <paramref name="text"/>.</summary>
    public async Task WaitForOutputAsync(string text, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the server did not print '{text}' within 15 s:\n{Output}");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    /// <summary>Sends the server a signal (9: a crash, 15: a shutdown that leaves jobs running) and waits until it is gone.</summary>
    public async Task StopAsync(int signal, CancellationToken cancellationToken)
    {
        var process = _process ?? throw new InvalidOperationException("the server was not started");
        Assert.Equal(0, Kill(process.Id, signal));
        await process.WaitForExitAsync(cancellationToken);
    }

    /// <summary>The job's output as the supervisor wrote it to the state directory.</summary>
    public byte[] LogFile(string jobId) => File.ReadAllBytes(LogPath(jobId));

    public string LogPath(string jobId) => Path.Combine(StateDirectory, "jobs", Guid.Parse(jobId).ToString("N"), "output.log");

    /// <summary>Runs the real <c>worker</c> binary as alice against this server.</summary>
    public Task<WorkerResult> WorkerAsync(params string[] args)
        => WorkerProcess.RunAsync(["--config", Config, .. args], null, TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_process is not null)
            {
                if (!_process.HasExited)
                {
                    _process.Kill();
                    await _process.WaitForExitAsync(CancellationToken.None);
                }

                _process.Dispose();
            }
        }
        finally
        {
            // Jobs outlive a killed server: this test's own subtree, with whatever still runs in it, goes too.
            if (System.IO.Directory.Exists(CgroupRoot))
            {
                ServerFixture.KillAndRemove(CgroupRoot);
            }

            _directory.Dispose();
            if (System.IO.Directory.Exists(UserDirectoryRoot))
            {
                System.IO.Directory.Delete(UserDirectoryRoot, recursive: true);
            }
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            _lines.Add(line);
            if (ListeningLine().Match(line) is { Success: true } match)
            {
                _listening?.TrySetResult(new Uri(match.Groups[1].Value));
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    [GeneratedRegex(@"Listening for gRPC on (https://\S+/)")]
    private static partial Regex ListeningLine();
}
