using System.Diagnostics;
using JobWorker.Core.Diagnostics;
using JobWorker.Server.Configuration;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace JobWorker.Server.Diagnostics;

/// <summary>
/// OpenTelemetry for the server: the <see cref="ServerMetrics"/> meter, the runtime and ASP.NET Core/Kestrel meters,
/// the Prometheus scrape endpoint on <see cref="ServerOptions.MetricsListen"/>, and OTLP export of metrics and traces
/// when an OTLP endpoint is configured. With neither, nothing is registered and no span is ever created.
/// OpenTelemetry selects meters by name across the process: one server per process, or their series mix.
/// </summary>
public static class ServerTelemetry
{
    /// <summary>The server's activity source: <c>StartJob</c> (with a <c>validate</c> child) and <c>StopJob</c>.</summary>
    public const string SourceName = "JobWorker.Server";

    public const string StartJobActivityName = "StartJob";

    public const string ValidateActivityName = "validate";

    public const string StopJobActivityName = "StopJob";

    /// <summary>Tag with the calling user (the certificate's common name).</summary>
    public const string UserTag = "jobworker.user";

    /// <summary>Tag on StopJob: the job's state once the call returns.</summary>
    public const string StateTag = "jobworker.job.state";

    /// <summary>Tag on StartJob: true when a request_id retry answered with the job it started before.</summary>
    public const string RepeatedTag = "jobworker.start.repeated";

    public const string MetricsPath = "/metrics";

    public const string ServiceName = "jobworker";

    internal static readonly ActivitySource Source = new(SourceName, typeof(ServerTelemetry).Assembly.GetName().Version?.ToString());

    /// <summary>The meters exported besides the server's own; the runtime and ASP.NET Core instrumentation add theirs.</summary>
    private static readonly string[] FrameworkMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.RateLimiting",
    ];

    /// <summary>True when OTLP export is on: <see cref="TelemetryOptions.OtlpEndpoint"/> or the standard variable is set.</summary>
    public static bool IsOtlpEnabled(TelemetryOptions telemetry, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(telemetry);
        ArgumentNullException.ThrowIfNull(configuration);
        return !string.IsNullOrEmpty(telemetry.OtlpEndpoint) || !string.IsNullOrEmpty(configuration[TelemetryOptions.OtlpEndpointVariable]);
    }

    /// <summary>Registers the OpenTelemetry providers that <paramref name="server"/> and <paramref name="telemetry"/> ask for.</summary>
    public static void AddJobWorkerTelemetry(this IServiceCollection services, ServerOptions server, TelemetryOptions telemetry, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(server);
        var prometheus = !string.IsNullOrEmpty(server.MetricsListen);
        var otlp = IsOtlpEnabled(telemetry, configuration);
        if (!prometheus && !otlp)
        {
            return;
        }

        var version = typeof(ServerTelemetry).Assembly.GetName().Version?.ToString();
        var openTelemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(configuration["OTEL_SERVICE_NAME"] ?? ServiceName, serviceVersion: version))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(ServerMetrics.MeterName)
                    .AddMeter(FrameworkMeters)
                    .AddRuntimeInstrumentation()
                    .AddAspNetCoreInstrumentation();
                if (prometheus)
                {
                    metrics.AddPrometheusExporter(prometheusOptions => prometheusOptions.ScrapeEndpointPath = MetricsPath);
                }

                if (otlp)
                {
                    metrics.AddOtlpExporter(otlpOptions => ConfigureOtlp(otlpOptions, telemetry, "v1/metrics"));
                }
            });
        if (otlp)
        {
            // Only with somewhere to send them: a registered tracer provider listens, and then every call makes spans.
            openTelemetry.WithTracing(tracing => tracing
                .AddSource(SourceName, JobTracing.SourceName)
                .AddAspNetCoreInstrumentation()
                .AddOtlpExporter(otlpOptions => ConfigureOtlp(otlpOptions, telemetry, "v1/traces")));
        }
    }

    /// <summary>Serves the Prometheus text on the plain-HTTP metrics listener only.</summary>
    public static void UseJobWorkerPrometheusEndpoint(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        // Every request on the gRPC port is HTTPS: the scrape path is never answered there.
        app.UseOpenTelemetryPrometheusScrapingEndpoint(context => !context.Request.IsHttps && context.Request.Path == MetricsPath);
    }

    /// <summary>Marks <paramref name="activity"/> failed with the exception's message; false, for use in a filter.</summary>
    internal static bool Failed(Activity? activity, Exception exception)
    {
        activity?.SetStatus(ActivityStatusCode.Error, exception.Message);
        activity?.SetTag("error.type", exception.GetType().FullName);
        return false;
    }

    private static void ConfigureOtlp(OtlpExporterOptions options, TelemetryOptions telemetry, string signalPath)
    {
        if (string.IsNullOrEmpty(telemetry.OtlpEndpoint))
        {
            // Configured by OTEL_EXPORTER_OTLP_*, which the exporter has already read.
            return;
        }

        if (!string.IsNullOrEmpty(telemetry.OtlpProtocol))
        {
            options.Protocol = telemetry.OtlpProtocol == TelemetryOptions.HttpProtobufProtocol ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
        }

        // Over HTTP each signal has its own path; the exporter appends it only to an endpoint it read from the variable.
        options.Endpoint = options.Protocol == OtlpExportProtocol.HttpProtobuf
            ? new Uri(telemetry.OtlpEndpoint.TrimEnd('/') + "/" + signalPath)
            : new Uri(telemetry.OtlpEndpoint);
    }
}
