using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using JobWorker.Bench.Server;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

// Compares JobWorker.Server with a bare gRPC service (BareService) hosted the same way (Kestrel, HTTP/2,
// TLS 1.3, client certificate required and checked against the same CA), in one process and one run, with
// rounds interleaved so both see the same machine state. Reports ratios.
if (!Environment.IsPrivilegedProcess)
{
    Console.Error.WriteLine("run as root (the server creates cgroups)");
    return 1;
}

// "quota [iterations]": the quota checks of one start, alone (QuotaCheckCost.cs).
if (args.Length > 0 && args[0] == "quota")
{
    QuotaCheckCost.Run(Path.GetTempPath(), args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 100_000);
    return 0;
}

// "start [iterations]": StartJob → the target's main(), against a bare unary call plus a C posix_spawn (see
// StartLatency.cs). "list [jobs] [calls]": ListJobs pages vs GetJob with that many ended jobs (ListLatency.cs).
// Otherwise: [unary calls] [stream MiB].
var startMode = args.Length > 0 && args[0] == "start";
var startIterations = startMode && args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 500;
var startPauseMs = startMode && args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 0;
var listMode = args.Length > 0 && args[0] == "list";
var listJobs = listMode && args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 10_000;
var listCalls = listMode && args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 10_000;
args = startMode || listMode ? [] : args;
var unaryCalls = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20_000;
var streamMiB = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 256;
const int Rounds = 5;

var suffix = Guid.NewGuid().ToString("N")[..12];
var dir = Path.Combine(Path.GetTempPath(), "jobworker-bench-server-" + suffix);
Directory.CreateDirectory(dir, PemFiles.DirectoryMode);
var cgroupMount = File.ReadLines("/proc/self/mountinfo")
    .Where(l => l[(l.IndexOf(" - ", StringComparison.Ordinal) + 3)..].StartsWith("cgroup2 ", StringComparison.Ordinal))
    .Select(l => l.Split(' ')[4]).First();
var pki = DevPki.Create(Path.Combine(dir, "pki"), [new("alice", Roles.User)]);
using var ca = PemFiles.LoadCertificate(pki.CaCertificate);
using var clientCert = PemFiles.LoadCertificateWithKey(pki.ClientCertificate("alice"), pki.ClientKey("alice"));

var server = ServerApp.Build([], builder =>
{
    builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["JobWorker:Listen"] = "127.0.0.1:0",
        ["JobWorker:CaCertificate"] = pki.CaCertificate,
        ["JobWorker:ServerCertificate"] = pki.ServerCertificate,
        ["JobWorker:ServerKey"] = pki.ServerKey,
        ["JobWorker:CgroupRoot"] = Path.Combine(cgroupMount, "jobworker-bench-" + suffix),
        ["JobWorker:StateDirectory"] = Path.Combine(dir, "logs"),
        ["JobWorker:StopJobsOnShutdown"] = "true",
        // The API's cost over a bare call, not the namespaces' (docs/benchmarks-isolation.md measures those).
        ["JobWorker:DefaultIsolation"] = "None",
        ["JobWorker:RequiredIsolation"] = "None",
        ["Logging:LogLevel:Default"] = "Warning",
        // The limiter stays on (its cost is part of StartJob's) but never refuses the bench's back-to-back starts.
        ["RateLimits:User:StartJobBurst"] = "1000000",
        ["RateLimits:User:StartJobsPerSecond"] = "1000000",
    });
});
var bare = BuildBare(pki, ca);
try
{
    if (listMode)
    {
        ListLatency.Seed(Path.Combine(dir, "logs"), listJobs, "alice");
    }

    await server.StartAsync();
    await bare.StartAsync();
    var real = Client(ServerApp.GetGrpcAddress(server));
    var baseline = Client(new Uri(bare.Urls.First()));
    if (startMode)
    {
        await StartLatency.RunAsync(real, baseline, startIterations, startPauseMs);
        return 0;
    }

    if (listMode)
    {
        await ListLatency.RunAsync(real, baseline, listJobs, listCalls);
        return 0;
    }

    // A finished job with streamMiB of output in its log.
    var testProcess = Path.Combine(AppContext.BaseDirectory, "jobworker-testprocess");
    var job = (await real.StartJobAsync(new StartJobRequest { Command = testProcess, Args = { "print", ((long)streamMiB << 20).ToString(CultureInfo.InvariantCulture) } })).Job;
    var (_, chunks, final) = await ReadStreamAsync(real.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }));
    var chunkSize = (int)(((long)streamMiB << 20) / chunks);
    BareService.Status = final!;
    Console.WriteLine($"job output: {streamMiB} MiB in {chunks} chunks (average {chunkSize} bytes); status message {final!.CalculateSize()} bytes");

    // Unary GetJob latency.
    var getJob = new GetJobRequest { JobId = job.JobId };
    for (var i = 0; i < 2000; i++)
    {
        await real.GetJobAsync(getJob);
        await baseline.GetJobAsync(getJob);
    }

    // A running job's status also reads its usage from its cgroup (cpu.stat, memory.*, io.stat, pids.current).
    var running = (await real.StartJobAsync(new StartJobRequest { Command = testProcess, Args = { "sleep", "3600" } })).Job;
    var getRunning = new GetJobRequest { JobId = running.JobId };
    for (var i = 0; i < 2000; i++)
    {
        await real.GetJobAsync(getRunning);
    }

    var realLatency = new List<double>();
    var runningLatency = new List<double>();
    var bareLatency = new List<double>();
    for (var round = 0; round < Rounds; round++)
    {
        realLatency.AddRange(await MeasureUnaryAsync(() => real.GetJobAsync(getJob).ResponseAsync, unaryCalls / Rounds));
        runningLatency.AddRange(await MeasureUnaryAsync(() => real.GetJobAsync(getRunning).ResponseAsync, unaryCalls / Rounds));
        bareLatency.AddRange(await MeasureUnaryAsync(() => baseline.GetJobAsync(getJob).ResponseAsync, unaryCalls / Rounds));
    }

    await real.StopJobAsync(new StopJobRequest { JobId = running.JobId });

    // One follower's throughput over the whole log, vs the bare stream of the same bytes in the same chunk size.
    var realRates = new List<double>();
    var bareRates = new List<double>();
    var bareHeaders = new Metadata { { "x-bytes", ((long)streamMiB << 20).ToString(CultureInfo.InvariantCulture) }, { "x-chunk", chunkSize.ToString(CultureInfo.InvariantCulture) } };
    for (var round = 0; round < Rounds; round++)
    {
        realRates.Add(await MeasureStreamAsync(() => real.StreamOutput(new StreamOutputRequest { JobId = job.JobId })));
        bareRates.Add(await MeasureStreamAsync(() => baseline.StreamOutput(new StreamOutputRequest { JobId = job.JobId }, bareHeaders)));
    }

    var (rp50, rp99) = (Percentile(realLatency, 0.50), Percentile(realLatency, 0.99));
    var (bp50, bp99) = (Percentile(bareLatency, 0.50), Percentile(bareLatency, 0.99));
    var (rRate, bRate) = (Median(realRates), Median(bareRates));
    Console.WriteLine();
    Console.WriteLine("| measurement | JobWorker.Server | bare gRPC (same mTLS) | ratio |");
    Console.WriteLine("|---|---:|---:|---:|");
    Console.WriteLine(FormattableString.Invariant($"| GetJob p50 latency | {rp50:0.000} ms | {bp50:0.000} ms | {rp50 / bp50:0.00}x |"));
    Console.WriteLine(FormattableString.Invariant($"| GetJob p99 latency | {rp99:0.000} ms | {bp99:0.000} ms | {rp99 / bp99:0.00}x |"));
    var (np50, np99) = (Percentile(runningLatency, 0.50), Percentile(runningLatency, 0.99));
    Console.WriteLine(FormattableString.Invariant($"| GetJob of a running job (usage read from its cgroup) p50 | {np50:0.000} ms | {bp50:0.000} ms | {np50 / bp50:0.00}x |"));
    Console.WriteLine(FormattableString.Invariant($"| GetJob of a running job p99 | {np99:0.000} ms | {bp99:0.000} ms | {np99 / bp99:0.00}x |"));
    Console.WriteLine(FormattableString.Invariant($"| one follower, {streamMiB} MiB (median of {Rounds}) | {rRate:0.00} GiB/s | {bRate:0.00} GiB/s | {rRate / bRate:0.00}x |"));
    Console.WriteLine(FormattableString.Invariant($"\n{unaryCalls} unary calls per side, {Environment.ProcessorCount} cores, .NET {Environment.Version}"));
    return 0;
}
finally
{
    await bare.StopAsync();
    await server.StopAsync();
    await bare.DisposeAsync();
    await server.DisposeAsync();
    Directory.Delete(dir, recursive: true);
}

global::JobWorker.Protocol.V1.JobWorker.JobWorkerClient Client(Uri address)
{
    var handler = new SocketsHttpHandler
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            ClientCertificates = [clientCert],
            EnabledSslProtocols = SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (_, c, _, _) => c is X509Certificate2 s && CertificateTrust.Verify(s, ca, Oids.ServerAuthentication) is null,
        },
    };
    return new(GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = handler, MaxReceiveMessageSize = 16 << 20 }));
}

static async Task<List<double>> MeasureUnaryAsync(Func<Task> call, int count)
{
    var latencies = new List<double>(count);
    for (var i = 0; i < count; i++)
    {
        var start = Stopwatch.GetTimestamp();
        await call();
        latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }

    return latencies;
}

static async Task<double> MeasureStreamAsync(Func<AsyncServerStreamingCall<StreamOutputResponse>> open)
{
    var start = Stopwatch.GetTimestamp();
    var (bytes, _, _) = await ReadStreamAsync(open());
    return bytes / Stopwatch.GetElapsedTime(start).TotalSeconds / (1 << 30);
}

static async Task<(long Bytes, int Chunks, JobStatus? Final)> ReadStreamAsync(AsyncServerStreamingCall<StreamOutputResponse> call)
{
    using (call)
    {
        long bytes = 0;
        var chunks = 0;
        JobStatus? final = null;
        await foreach (var message in call.ResponseStream.ReadAllAsync())
        {
            if (message.KindCase == StreamOutputResponse.KindOneofCase.Chunk)
            {
                bytes += message.Chunk.Data.Length;
                chunks++;
            }
            else
            {
                final = message.FinalStatus;
            }
        }

        return (bytes, chunks, final);
    }
}

static double Percentile(List<double> values, double p)
{
    var sorted = values.Order().ToList();
    return sorted[(int)Math.Min(sorted.Count - 1, Math.Round(p * (sorted.Count - 1)))];
}

static double Median(List<double> values) => Percentile(values, 0.5);

static WebApplication BuildBare(DevPkiLayout pki, X509Certificate2 ca)
{
    var builder = WebApplication.CreateBuilder();
    builder.Logging.SetMinimumLevel(LogLevel.Warning);
    builder.Services.AddGrpc();
    var certificate = PemFiles.LoadCertificateWithKey(pki.ServerCertificate, pki.ServerKey);
    builder.WebHost.ConfigureKestrel(kestrel =>
    {
        kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
        kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificate = certificate,
                SslProtocols = SslProtocols.Tls13,
                ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                ClientCertificateValidation = (c, _, _) => CertificateTrust.Verify(c, ca, Oids.ClientAuthentication) is null,
            });
        });
    });
    var app = builder.Build();
    app.MapGrpcService<BareService>();
    return app;
}
