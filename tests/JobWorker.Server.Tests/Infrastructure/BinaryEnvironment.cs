using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using JobWorker.Pki;
using JobWorker.Tests.Shared;

namespace JobWorker.Server.Tests.Infrastructure;

/// <summary>
/// A PKI, a cgroup root name and a state directory for runs of the real server binary (one at a time; a new
/// <see cref="Start"/> is a restart on the same state).
/// </summary>
internal sealed partial class BinaryEnvironment : IAsyncDisposable
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<string> Found)> _waiters = [];
    private Process? _process;

    private BinaryEnvironment(string directory, DevPkiLayout pki, string cgroupRoot)
    {
        Directory = directory;
        Pki = pki;
        CgroupRoot = cgroupRoot;
    }

    public string Directory { get; }

    public DevPkiLayout Pki { get; }

    public string CgroupRoot { get; }

    /// <summary>The server's root of users' private directories (see <see cref="TestServer.UserDirectoryRoot"/>).</summary>
    public string UserDirectoryRoot => TestServer.UserDirectoryRoot(Path.GetFileName(Directory)["jobworker-srvtest-".Length..]);

    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    public string Output => string.Join('\n', _lines);

    public static Task<BinaryEnvironment> CreateAsync()
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var directory = Path.Combine(Path.GetTempPath(), "jobworker-srvtest-" + suffix);
        System.IO.Directory.CreateDirectory(directory, PemFiles.DirectoryMode);
        // The binary must be reachable for "nobody" in the not-root test; the PKI stays private.
        File.SetUnixFileMode(directory, PemFiles.DirectoryMode | UnixFileMode.OtherExecute);
        var pki = DevPki.Create(Path.Combine(directory, "pki"), [new(TestServer.Alice, Roles.User), new(TestServer.Bob, Roles.User)]);
        return Task.FromResult(new BinaryEnvironment(directory, pki, Path.Combine(TestServer.CgroupMount, "jobworker-srvtest-" + suffix)));
    }

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public static string ServerBinary { get; } = Path.Combine(AppContext.BaseDirectory, "JobWorker.Server");

    /// <summary>Starts the server binary (as <paramref name="asUser"/> through setpriv, under
    /// <c>prlimit --nofile=N</c> with <paramref name="openFileLimit"/>, through a <paramref name="launcher"/> command
    /// that execs the server, given as its arguments).</summary>
    public Process Start(string? asUser = null, string[]? extraArgs = null, string listen = "127.0.0.1:0", int? openFileLimit = null, string[]? launcher = null)
    {
        // A new run: what earlier runs printed no longer answers WaitForLineAsync.
        lock (_waiters)
        {
            _lines.Clear();
        }

        string[] serverArgs =
        [
            "--listen", listen,
            "--ca", Pki.CaCertificate,
            "--cert", Pki.ServerCertificate,
            "--key", Pki.ServerKey,
            "--cgroup-root", CgroupRoot,
            "--state-dir", Path.Combine(Directory, "state"),
            "--user-dir-root", UserDirectoryRoot,
            "--grace", "00:00:01",
            // A later flag in extraArgs wins.
            .. TestServerSettings.Arguments,
            .. extraArgs ?? [],
        ];
        // Each wrapper execs the next: prlimit, setpriv, the launcher, then the server.
        List<string> command = [];
        if (openFileLimit is { } limit)
        {
            command.AddRange(["prlimit", $"--nofile={limit}:{limit}"]);
        }

        if (asUser is not null)
        {
            command.AddRange(["setpriv", "--reuid=" + asUser, "--regid=nogroup", "--clear-groups"]);
        }

        command.AddRange(launcher ?? []);
        command.Add(ServerBinary);
        var start = new ProcessStartInfo
        {
            FileName = command[0],
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in command.Skip(1).Concat(serverArgs))
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (key, value) in Environment)
        {
            start.Environment[key] = value;
        }

        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        return process;
    }

    public async Task<Uri> WaitForListeningAsync(Process process)
    {
        var exited = process.WaitForExitAsync(Token);
        var listening = WaitForLineAsync(ListeningLine());
        if (await Task.WhenAny(exited, listening) == exited)
        {
            throw new InvalidOperationException($"the server exited with {process.ExitCode}:\n{Output}");
        }

        return new Uri(ListeningLine().Match(await listening).Groups[1].Value);
    }

    public Task<string> WaitForLineAsync(Regex pattern)
    {
        var found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            var line = _lines.FirstOrDefault(pattern.IsMatch);
            if (line is not null)
            {
                return Task.FromResult(line);
            }

            _waiters.Add((pattern, found));
        }

        return found.Task.WaitAsync(TimeSpan.FromSeconds(30), Token);
    }

    public global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient Client(Uri address, string user)
    {
        var ca = PemFiles.LoadCertificate(Pki.CaCertificate);
        var handler = new SocketsHttpHandler
        {
            SslOptions = new System.Net.Security.SslClientAuthenticationOptions
            {
                ClientCertificates = [PemFiles.LoadCertificateWithKey(Pki.ClientCertificate(user), Pki.ClientKey(user))],
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is System.Security.Cryptography.X509Certificates.X509Certificate2 server
                    && CertificateTrust.Verify(server, ca, Oids.ServerAuthentication) is null,
            },
        };
        return new(Grpc.Net.Client.GrpcChannel.ForAddress(address, new Grpc.Net.Client.GrpcChannelOptions { HttpHandler = handler }));
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            try
            {
                if (!_process.HasExited)
                {
                    _process.Kill();
                    await _process.WaitForExitAsync(CancellationToken.None);
                }
            }
            catch (InvalidOperationException)
            {
                // The test disposed the process after it exited.
            }
        }

        // A killed server, or one that leaves its jobs running, leaves its subtree: this test's own to remove.
        CgroupCleanup.KillAndRemove(CgroupRoot);

        // A removal right after a server was killed mid-start once met "Directory not empty" (an entry created while
        // the recursive delete ran), and that error hid the test's own failure: tried again for up to half a second.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
                break;
            }
            catch (IOException) when (attempt < 10 && System.IO.Directory.Exists(Directory))
            {
                await Task.Delay(50);
            }
        }

        TestServer.DeleteUserDirectories(Path.GetFileName(Directory)["jobworker-srvtest-".Length..]);
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_waiters)
        {
            _lines.Enqueue(line);
            foreach (var waiter in _waiters.Where(w => w.Pattern.IsMatch(line)).ToList())
            {
                waiter.Found.TrySetResult(line);
                _waiters.Remove(waiter);
            }
        }
    }

    [GeneratedRegex(@"Listening for gRPC on (https://\S+/)")]
    private static partial Regex ListeningLine();
}
