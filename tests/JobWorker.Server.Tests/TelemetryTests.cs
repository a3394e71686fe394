using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using JobWorker.Core.Diagnostics;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Hosting;
using JobWorker.Server.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using OpenTelemetry.Trace;

namespace JobWorker.Server.Tests;

/// <summary>
/// The telemetry tests run alone: OpenTelemetry picks meters by name from the whole process, so another server
/// running in parallel in this process would report into the same <c>jobworker_*</c> series.
/// </summary>
[CollectionDefinition(nameof(TelemetryGroup), DisableParallelization = true)]
public sealed class TelemetryGroup;

/// <summary>
/// OpenTelemetry on a real server: the Prometheus scrape endpoint (the server's own series with their values, the
/// runtime and Kestrel series, loopback only and never on the TLS port) and the StartJob/StopJob spans.
/// </summary>
[Collection(nameof(TelemetryGroup))]
public sealed class TelemetryTests
{
    // Tracing is on only with an OTLP endpoint; nothing listens on port 1, so the export fails quietly while the
    // in-memory exporter sees the same spans.
    private static Task<TestServer> StartTracedAsync(List<Activity> spans)
        => TestServer.StartWithServicesAsync(
            new Dictionary<string, string?> { ["JobWorker:Telemetry:OtlpEndpoint"] = "http://127.0.0.1:1" },
            services => services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(spans)),
            Token);

    private static readonly Dictionary<string, string?> MetricsOn = new() { ["JobWorker:MetricsListen"] = "127.0.0.1:0" };

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 60_000)]
    public async Task Scrape_AfterJobsAndErrors_OwnSeriesWithTheirValues()
    {
        await using var server = await TestServer.StartAsync(MetricsOn, Token);
        var client = server.Client(TestServer.Alice);
        var job = await server.StartTestProcessAsync(TestServer.Alice, "print", "4096");
        await JobRpcTests.WaitForEndAsync(client, job.JobId);
        await Assert.ThrowsAsync<RpcException>(async () =>
            await client.GetJobAsync(new GetJobRequest { JobId = Guid.NewGuid().ToString() }, cancellationToken: Token));
        var sleeper = await server.StartTestProcessAsync(TestServer.Alice, "sleep", "30");

        var metrics = await ScrapeAsync(server);

        Assert.Equal("counter", metrics.Type("jobworker_jobs_started_total"));
        Assert.Equal(2, metrics.Value("jobworker_jobs_started_total"));
        Assert.Equal(1, metrics.Value("jobworker_jobs_ended_total"));
        Assert.Equal(0, metrics.Value("jobworker_jobs_start_failed_total"));
        Assert.Equal("gauge", metrics.Type("jobworker_jobs_running"));
        Assert.Equal(1, metrics.Value("jobworker_jobs_running"));
        Assert.Equal(1, metrics.Value("jobworker_streams_opened_total"));
        Assert.Equal(0, metrics.Value("jobworker_streams_active"));
        Assert.Equal(4096, metrics.Value("jobworker_streams_bytes_total"));
        Assert.Equal(0, metrics.Value("jobworker_tls_refused_total"));
        Assert.Equal(1, metrics.Value("jobworker_rpc_errors_total", "code=\"NotFound\""));
        await client.StopJobAsync(new StopJobRequest { JobId = sleeper.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Scrape_AfterACall_RuntimeAndKestrelSeriesPresent()
    {
        await using var server = await TestServer.StartAsync(MetricsOn, Token);
        await server.Client(TestServer.Alice).ListJobsAsync(new ListJobsRequest(), cancellationToken: Token);

        var metrics = await ScrapeAsync(server);

        // System.Runtime (runtime instrumentation).
        Assert.Equal("counter", metrics.Type("dotnet_gc_collections_total"));
        Assert.True(metrics.Value("dotnet_process_memory_working_set_bytes") > 0);
        Assert.True(metrics.Value("dotnet_assembly_count") > 0);
        // Microsoft.AspNetCore.Server.Kestrel: the TLS handshake of the call, and the scrape's own connection.
        Assert.Equal("histogram", metrics.Type("kestrel_tls_handshake_duration_seconds"));
        Assert.True(metrics.Value("kestrel_tls_handshake_duration_seconds_count", $"server_port=\"{server.Address.Port}\"") >= 1);
        Assert.True(metrics.Value("kestrel_active_connections", $"server_port=\"{server.Address.Port}\"") >= 1);
        // Microsoft.AspNetCore.Hosting: the gRPC call.
        Assert.True(metrics.Value("http_server_request_duration_seconds_count", "http_route=\"/jobworker.v1.JobWorker/ListJobs\"") >= 1);
    }

    [Fact(Timeout = 60_000)]
    public async Task MetricsListener_Configured_LoopbackOnlyAndNotOnTheTlsPort()
    {
        await using var server = await TestServer.StartAsync(MetricsOn, Token);
        var metricsAddress = ServerApp.GetMetricsAddress(server.App)!;
        using var http = new HttpClient();

        Assert.True(IPAddress.IsLoopback(IPAddress.Parse(metricsAddress.Host)), metricsAddress.ToString());
        using var onTls = await GetOverTlsAsync(server, ServerTelemetry.MetricsPath);
        Assert.Equal(HttpStatusCode.NotFound, onTls.StatusCode);
        using var elsewhere = await http.GetAsync(new Uri(metricsAddress, "/other"), Token);
        Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);
        using var scrape = await http.GetAsync(new Uri(metricsAddress, ServerTelemetry.MetricsPath), Token);
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
    }

    [Fact(Timeout = 60_000)]
    public async Task MetricsListener_Default_OffAndNoTracing()
    {
        await using var server = await TestServer.StartAsync(cancellationToken: Token);

        Assert.Null(ServerApp.GetMetricsAddress(server.App));
        Assert.Null(server.App.Services.GetService<TracerProvider>());
        Assert.Null(server.App.Services.GetService<OpenTelemetry.Metrics.MeterProvider>());
    }

    [Fact(Timeout = 30_000)]
    public async Task Build_NonLoopbackMetricsListener_RefusedNamingTheSetting()
    {
        var e = await Assert.ThrowsAsync<StartupException>(async () =>
            await TestServer.StartAsync(new Dictionary<string, string?> { ["JobWorker:MetricsListen"] = "0.0.0.0:0" }, Token));

        Assert.Contains("JobWorker:MetricsListen", e.Message, StringComparison.Ordinal);
        Assert.Contains("loopback", e.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Build_BadOtlpEndpoint_RefusedNamingTheSetting()
    {
        var e = await Assert.ThrowsAsync<StartupException>(async () =>
            await TestServer.StartAsync(new Dictionary<string, string?> { ["JobWorker:Telemetry:OtlpEndpoint"] = "collector:4317" }, Token));

        Assert.Contains("JobWorker:Telemetry:OtlpEndpoint", e.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJobAndStopJob_OtlpConfigured_SpansForEachPhaseUnderTheCall()
    {
        var spans = new List<Activity>();
        await using var server = await StartTracedAsync(spans);
        var client = server.Client(TestServer.Alice);
        // Other servers in this process publish on the same sources: this test's spans are told apart by trace id.
        var startTrace = ActivityTraceId.CreateRandom();
        var stopTrace = ActivityTraceId.CreateRandom();

        var job = (await client.StartJobAsync(new StartJobRequest { Command = TestServer.TestProcess, Args = { "sleep", "30" } }, TraceParent(startTrace), cancellationToken: Token)).Job;
        await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, TraceParent(stopTrace), cancellationToken: Token);

        var start = await WaitForSpanAsync(spans, startTrace, ServerTelemetry.SourceName, ServerTelemetry.StartJobActivityName);
        Assert.Equal("Microsoft.AspNetCore", Parent(spans, start)?.Source.Name);
        Assert.Equal(job.JobId, start.GetTagItem(JobTracing.JobIdTag));
        Assert.Equal(TestServer.Alice, start.GetTagItem(ServerTelemetry.UserTag));
        Assert.Equal(ActivityStatusCode.Unset, start.Status);
        var children = Children(spans, start);
        Assert.Equal([(ServerTelemetry.SourceName, ServerTelemetry.ValidateActivityName), (JobTracing.SourceName, JobTracing.StartActivityName)], children.Select(s => (s.Source.Name, s.OperationName)));
        var runnerStart = children[1];
        Assert.Equal(job.JobId, runnerStart.GetTagItem(JobTracing.JobIdTag));
        var phases = Children(spans, runnerStart);
        Assert.Equal(["prepare", "record", "cgroup", "spawn"], phases.Select(s => s.OperationName));
        Assert.All(phases, phase => Assert.Equal(JobTracing.SourceName, phase.Source.Name));
        Assert.IsType<bool>(phases[3].GetTagItem(JobTracing.PooledSupervisorTag));
        for (var i = 1; i < phases.Count; i++)
        {
            Assert.True(phases[i].StartTimeUtc >= phases[i - 1].StartTimeUtc + phases[i - 1].Duration, $"{phases[i].OperationName} began before {phases[i - 1].OperationName} ended");
        }

        var stop = await WaitForSpanAsync(spans, stopTrace, ServerTelemetry.SourceName, ServerTelemetry.StopJobActivityName);
        Assert.Equal(job.JobId, stop.GetTagItem(JobTracing.JobIdTag));
        Assert.Equal(nameof(Core.Jobs.JobState.Stopped), stop.GetTagItem(ServerTelemetry.StateTag));
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_InvalidAndMissingExecutable_FailingSpanMarked()
    {
        var spans = new List<Activity>();
        await using var server = await StartTracedAsync(spans);
        var client = server.Client(TestServer.Alice);
        var invalidTrace = ActivityTraceId.CreateRandom();
        var missingTrace = ActivityTraceId.CreateRandom();

        await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(new StartJobRequest { Command = "" }, TraceParent(invalidTrace), cancellationToken: Token));
        await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(new StartJobRequest { Command = "/nonexistent/program" }, TraceParent(missingTrace), cancellationToken: Token));

        var invalid = await WaitForSpanAsync(spans, invalidTrace, ServerTelemetry.SourceName, ServerTelemetry.StartJobActivityName);
        Assert.Equal(ActivityStatusCode.Error, invalid.Status);
        var validate = Assert.Single(Children(spans, invalid));
        Assert.Equal((ServerTelemetry.ValidateActivityName, ActivityStatusCode.Error), (validate.OperationName, validate.Status));
        var missing = await WaitForSpanAsync(spans, missingTrace, ServerTelemetry.SourceName, ServerTelemetry.StartJobActivityName);
        Assert.Equal(ActivityStatusCode.Error, missing.Status);
        Assert.Contains("/nonexistent/program", missing.StatusDescription, StringComparison.Ordinal);
        var failedPhase = Children(spans, Children(spans, missing)[1])[^1];
        Assert.Equal(ActivityStatusCode.Error, failedPhase.Status);
    }

    [Theory(Timeout = 60_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Otlp_HttpProtobufEndpoint_ReceivesTracesAndMetrics(bool standardVariable)
    {
        await using var collector = await OtlpReceiver.StartAsync();
        var settings = new Dictionary<string, string?>
        {
            // The exporters read these from the configuration, as they would from the environment.
            ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "200",
        };
        if (standardVariable)
        {
            settings["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Address.ToString();
            settings["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
        }
        else
        {
            settings["JobWorker:Telemetry:OtlpEndpoint"] = collector.Address.ToString();
            settings["JobWorker:Telemetry:OtlpProtocol"] = "http/protobuf";
        }

        await using var server = await TestServer.StartAsync(settings, Token);
        var job = await server.StartTestProcessAsync(TestServer.Alice, "exit", "0");

        // OTLP payloads are protobuf; names and ids are plain UTF-8 strings inside them.
        var traces = await collector.WaitForAsync("/v1/traces", job.JobId);
        Assert.Equal("application/x-protobuf", traces.ContentType);
        Assert.Contains(ServerTelemetry.StartJobActivityName, traces.Text, StringComparison.Ordinal);
        Assert.Contains(JobTracing.StartActivityName, traces.Text, StringComparison.Ordinal);
        var metrics = await collector.WaitForAsync("/v1/metrics", "jobworker.jobs.started");
        Assert.Contains(ServerTelemetry.ServiceName, metrics.Text, StringComparison.Ordinal);
    }

    private static Metadata TraceParent(ActivityTraceId traceId)
        => new() { { "traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01" } };

    private static Activity? Parent(List<Activity> spans, Activity span)
    {
        lock (spans)
        {
            return spans.FirstOrDefault(s => s.TraceId == span.TraceId && s.SpanId == span.ParentSpanId);
        }
    }

    private static List<Activity> Children(List<Activity> spans, Activity parent)
    {
        lock (spans)
        {
            return [.. spans.Where(s => s.TraceId == parent.TraceId && s.ParentSpanId == parent.SpanId).OrderBy(s => s.StartTimeUtc)];
        }
    }

    private static async Task<Activity> WaitForSpanAsync(List<Activity> spans, ActivityTraceId traceId, string source, string name)
    {
        // A span is exported when it ends, which can be just after the client has its answer.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            lock (spans)
            {
                var span = spans.FirstOrDefault(s => s.TraceId == traceId && s.Source.Name == source && s.OperationName == name);
                if (span is not null)
                {
                    return span;
                }
            }

            Assert.True(DateTime.UtcNow < deadline, $"no {source} {name} span in trace {traceId}");
            await Task.Delay(20, Token);
        }
    }

    /// <summary>A plain HTTP/2 GET on the gRPC port, with Alice's certificate.</summary>
    private static async Task<HttpResponseMessage> GetOverTlsAsync(TestServer server, string path)
    {
        using var handler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls13,
                ClientCertificates = new X509CertificateCollection { server.ClientCertificate(TestServer.Alice) },
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is X509Certificate2 cert && CertificateTrust.Verify(cert, server.Ca, Oids.ServerAuthentication) is null,
            },
        };
        using var http = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(server.Address, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        return await http.SendAsync(request, Token);
    }

    private static async Task<Scrape> ScrapeAsync(TestServer server)
    {
        using var http = new HttpClient();
        using var response = await http.GetAsync(new Uri(ServerApp.GetMetricsAddress(server.App)!, ServerTelemetry.MetricsPath), Token);
        response.EnsureSuccessStatusCode();
        var text = await response.Content.ReadAsStringAsync(Token);
        return new Scrape(text);
    }

    /// <summary>An OTLP/HTTP receiver on loopback: keeps every export request's path, content type and body.</summary>
    private sealed class OtlpReceiver : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly List<(string Path, string? ContentType, string Text)> _requests = [];

        private OtlpReceiver(WebApplication app) => _app = app;

        public Uri Address { get; private set; } = null!;

        public static async Task<OtlpReceiver> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
            builder.Logging.ClearProviders();
            var receiver = new OtlpReceiver(builder.Build());
            receiver._app.MapPost("/v1/{signal}", async context =>
            {
                using var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body, context.RequestAborted);
                lock (receiver._requests)
                {
                    receiver._requests.Add((context.Request.Path, context.Request.ContentType, System.Text.Encoding.UTF8.GetString(body.ToArray())));
                }

                // An empty Export*ServiceResponse: everything accepted.
                context.Response.ContentType = "application/x-protobuf";
            });
            await receiver._app.StartAsync(Token);
            receiver.Address = new Uri(receiver._app.Urls.First());
            return receiver;
        }

        public async Task<(string? ContentType, string Text)> WaitForAsync(string path, string content)
        {
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                lock (_requests)
                {
                    foreach (var request in _requests)
                    {
                        if (request.Path == path && request.Text.Contains(content, StringComparison.Ordinal))
                        {
                            return (request.ContentType, request.Text);
                        }
                    }

                    Assert.True(DateTime.UtcNow < deadline, $"no {path} export with '{content}'; received: {string.Join(", ", _requests.Select(r => r.Path))}");
                }

                await Task.Delay(50, Token);
            }
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }

    /// <summary>The Prometheus text exposition format, read line by line: <c># TYPE name type</c> and <c>name{labels} value [timestamp]</c>.</summary>
    private sealed class Scrape(string text)
    {
        private readonly string[] _lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        public string? Type(string name)
            => _lines.FirstOrDefault(l => l.StartsWith($"# TYPE {name} ", StringComparison.Ordinal))?.Split(' ')[3];

        /// <summary>The value of the one series <paramref name="name"/> whose labels contain <paramref name="label"/>.</summary>
        public double Value(string name, string? label = null)
        {
            var samples = _lines
                .Where(l => !l.StartsWith('#') && (l.StartsWith(name + "{", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal)))
                .Where(l => label is null || l.Contains(label, StringComparison.Ordinal))
                .ToList();
            Assert.True(samples.Count == 1, $"{samples.Count} samples of {name} {label} in:\n{text}");
            var afterLabels = samples[0].LastIndexOf('}') is var close and >= 0 ? samples[0][(close + 1)..] : samples[0][name.Length..];
            return double.Parse(afterLabels.Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        }
    }
}
