using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Hosting;
using JobWorker.Tests.Shared;

namespace JobWorker.Server.Tests.Infrastructure;

/// <summary>
/// A real server on 127.0.0.1 with a random free port, real certificates generated into a private temporary
/// directory, a JobRunner in its own cgroup subtree (<c>&lt;cgroup2&gt;/jobworker-srvtest-&lt;random&gt;</c>) and a
/// temporary log directory. Everything is removed on dispose, and dispose fails if a cgroup was left behind.
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    public const string Alice = "alice";
    public const string Bob = "bob";
    public const string Admin = "admin";

    private readonly List<GrpcChannel> _channels = [];

    private TestServer(string directory, DevPkiLayout pki, string cgroupRoot, WebApplication app, LogCollector logs)
    {
        Directory = directory;
        Pki = pki;
        CgroupRoot = cgroupRoot;
        App = app;
        Logs = logs;
        Address = ServerApp.GetGrpcAddress(app);
        using var caCert = PemFiles.LoadCertificate(pki.CaCertificate);
        Ca = X509CertificateLoader.LoadCertificate(caCert.RawData);
    }

    public string Directory { get; }

    public DevPkiLayout Pki { get; }

    public string CgroupRoot { get; }

    public WebApplication App { get; }

    public LogCollector Logs { get; }

    public Uri Address { get; }

    public X509Certificate2 Ca { get; }

    public ServerMetrics Metrics => App.Services.GetRequiredService<ServerMetrics>();

    public JobRunnerHost Host => App.Services.GetRequiredService<JobRunnerHost>();

    /// <summary>The tests' dummy job (tests/JobWorker.TestProcess), built next to the tests.</summary>
    public static string TestProcess { get; } = Path.Combine(AppContext.BaseDirectory, "jobworker-testprocess");

    /// <summary>The cgroup2 mount point (field 5 of the line whose filesystem type, after " - ", is cgroup2).</summary>
    public static string CgroupMount { get; } = File.ReadLines("/proc/self/mountinfo")
        .Select(line => (Fields: line.Split(' '), Type: line[(line.IndexOf(" - ", StringComparison.Ordinal) + 3)..].Split(' ')[0]))
        .Where(m => m.Type == "cgroup2")
        .Select(m => m.Fields[4])
        .FirstOrDefault() ?? throw new InvalidOperationException("no cgroup2 mount in /proc/self/mountinfo");

    public static Task<TestServer> StartAsync(IDictionary<string, string?>? settings = null, CancellationToken cancellationToken = default)
        => StartAsync(settings, prepareState: null, cancellationToken);

    /// <param name="settings">Configuration over the test defaults.</param>
    /// <param name="prepareState">Called with the state directory before the server starts (to leave records in it).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static Task<TestServer> StartAsync(IDictionary<string, string?>? settings, Action<string>? prepareState, CancellationToken cancellationToken = default)
        => StartAsync(settings, prepareState, configureServices: null, cancellationToken);

    /// <param name="settings">Configuration over the test defaults.</param>
    /// <param name="configureServices">Adds services before the server's own (an in-memory trace exporter).</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static Task<TestServer> StartWithServicesAsync(IDictionary<string, string?>? settings, Action<IServiceCollection> configureServices, CancellationToken cancellationToken = default)
        => StartAsync(settings, prepareState: null, configureServices, cancellationToken);

    private static async Task<TestServer> StartAsync(IDictionary<string, string?>? settings, Action<string>? prepareState, Action<IServiceCollection>? configureServices, CancellationToken cancellationToken)
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var directory = Path.Combine(Path.GetTempPath(), "jobworker-srvtest-" + suffix);
        System.IO.Directory.CreateDirectory(directory, PemFiles.DirectoryMode);
        var cgroupRoot = Path.Combine(CgroupMount, "jobworker-srvtest-" + suffix);
        WebApplication? app = null;
        try
        {
            var pki = DevPki.Create(Path.Combine(directory, "pki"), [new(Alice, Roles.User), new(Bob, Roles.User), new(Admin, Roles.Admin)]);
            var config = new Dictionary<string, string?>
            {
                ["JobWorker:Listen"] = "127.0.0.1:0",
                ["JobWorker:CaCertificate"] = pki.CaCertificate,
                ["JobWorker:ServerCertificate"] = pki.ServerCertificate,
                ["JobWorker:ServerKey"] = pki.ServerKey,
                ["JobWorker:CgroupRoot"] = cgroupRoot,
                ["JobWorker:StateDirectory"] = Path.Combine(directory, "logs"),
                ["JobWorker:Identity:UserDirectoryRoot"] = UserDirectoryRoot(suffix),
                ["JobWorker:DefaultStopGrace"] = "00:00:02",
                // Most tests check what a stopping server does to its jobs; the tests of the default (jobs outlive
                // the server) say so with "false".
                ["JobWorker:StopJobsOnShutdown"] = "true",
                ["Logging:LogLevel:Default"] = "Warning",
                ["Logging:LogLevel:JobWorker"] = "Debug",
            };
            foreach (var (key, value) in TestServerSettings.Defaults)
            {
                config[key] = value;
            }

            foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            {
                config[key] = value;
            }

            prepareState?.Invoke(config["JobWorker:StateDirectory"]!);
            var logs = new LogCollector();
            app = ServerApp.Build([], builder =>
            {
                builder.Configuration.AddInMemoryCollection(config);
                builder.Logging.ClearProviders();
                builder.Logging.AddProvider(logs);
                configureServices?.Invoke(builder.Services);
            });
            await app.StartAsync(cancellationToken);
            return new TestServer(directory, pki, cgroupRoot, app, logs);
        }
        catch
        {
            if (app is not null)
            {
                await app.DisposeAsync();
            }

            System.IO.Directory.Delete(directory, recursive: true);
            DeleteUserDirectories(suffix);
            throw;
        }
    }

    /// <summary>
    /// Where a server of this test creates each user's private directory: outside /tmp (jobs isolated in a mount
    /// namespace get a private one) and outside the 0700 test directory (the jobs' users must reach it).
    /// </summary>
    public static string UserDirectoryRoot(string suffix) => Path.Combine("/var/tmp", "jobworker-srvtest-users-" + suffix);

    public static void DeleteUserDirectories(string suffix)
    {
        if (System.IO.Directory.Exists(UserDirectoryRoot(suffix)))
        {
            System.IO.Directory.Delete(UserDirectoryRoot(suffix), recursive: true);
        }
    }

    /// <summary>A client certificate (with key) of one of the PKI's users.</summary>
    public X509Certificate2 ClientCertificate(string user)
        => PemFiles.LoadCertificateWithKey(Pki.ClientCertificate(user), Pki.ClientKey(user));

    /// <summary>A gRPC client that presents <paramref name="user"/>'s certificate and verifies the server against the CA.</summary>
    public global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient Client(string user)
        => new(Channel(ClientCertificate(user)));

    /// <summary>A channel with any client certificate (or none) and TLS protocols, trusting <paramref name="trust"/> (default: the service CA).</summary>
    public GrpcChannel Channel(X509Certificate2? clientCertificate, SslProtocols protocols = SslProtocols.Tls13, X509Certificate2? trust = null)
    {
        var ca = trust ?? Ca;
        var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = protocols,
                ClientCertificates = clientCertificate is null ? null : new X509CertificateCollection { clientCertificate },
                // The client trusts only the service CA, with serverAuth: what the CLI does.
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is X509Certificate2 server && CertificateTrust.Verify(server, ca, Oids.ServerAuthentication) is null,
            },
            EnableMultipleHttp2Connections = false,
        };
        var channel = GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
        lock (_channels)
        {
            _channels.Add(channel);
        }

        return channel;
    }

    /// <summary>Starts the test process as <paramref name="user"/> with the given steps; returns the job's status.</summary>
    public async Task<JobStatus> StartTestProcessAsync(string user, params string[] steps)
    {
        var request = new StartJobRequest { Command = TestProcess };
        request.Args.AddRange(steps);
        var response = await Client(user).StartJobAsync(request, cancellationToken: TestContext.Current.CancellationToken);
        return response.Job;
    }

    public async ValueTask DisposeAsync()
    {
        // The server's log goes to the test's output: shown for failing tests.
        foreach (var entry in Logs.Entries)
        {
            TestContext.Current.TestOutputHelper?.WriteLine($"{entry.Level} {entry.Category}[{entry.EventId.Id}] {entry.Message}");
        }

        foreach (var channel in _channels)
        {
            channel.Dispose();
        }

        try
        {
            await App.StopAsync(CancellationToken.None);
        }
        finally
        {
            await App.DisposeAsync();
            Ca.Dispose();
            System.IO.Directory.Delete(Directory, recursive: true);
            DeleteUserDirectories(Path.GetFileName(Directory)["jobworker-srvtest-".Length..]);
        }

        // The runner removes its subtree; a leftover is a leak this test must report (after removing it: the subtree
        // is this test's own).
        if (System.IO.Directory.Exists(CgroupRoot))
        {
            var left = string.Join(", ", System.IO.Directory.GetDirectories(CgroupRoot));
            CgroupCleanup.KillAndRemove(CgroupRoot);
            throw new InvalidOperationException($"the server left its cgroup subtree {CgroupRoot} behind ({left})");
        }
    }
}
