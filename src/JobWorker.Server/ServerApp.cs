using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Hosting;
using JobWorker.Server.Quotas;
using JobWorker.Server.RateLimiting;
using JobWorker.Server.Security;
using JobWorker.Server.Services;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace JobWorker.Server;

/// <summary>Builds the server: configuration, Kestrel with mutual TLS, the gRPC services and the job runner.</summary>
public static class ServerApp
{
    /// <summary>Short command-line flags for the common settings (any setting also works as <c>--JobWorker:Name=value</c>).</summary>
    public static IReadOnlyDictionary<string, string> SwitchMappings => Switches;

    private static readonly Dictionary<string, string> Switches = new(StringComparer.Ordinal)
    {
        ["--listen"] = "JobWorker:Listen",
        ["--ca"] = "JobWorker:CaCertificate",
        ["--cert"] = "JobWorker:ServerCertificate",
        ["--key"] = "JobWorker:ServerKey",
        ["--cgroup-root"] = "JobWorker:CgroupRoot",
        ["--delegated-cgroup"] = "JobWorker:UseDelegatedCgroup",
        ["--state-dir"] = "JobWorker:StateDirectory",
        ["--stop-jobs-on-shutdown"] = "JobWorker:StopJobsOnShutdown",
        ["--job-user"] = "JobWorker:JobUser",
        ["--job-group"] = "JobWorker:JobGroup",
        ["--identity"] = "JobWorker:Identity:Mode",
        ["--id-range"] = "JobWorker:Identity:IdRange",
        ["--user-dir-root"] = "JobWorker:Identity:UserDirectoryRoot",
        ["--grace"] = "JobWorker:DefaultStopGrace",
        ["--max-running-jobs"] = "JobWorker:MaxRunningJobsPerUser",
        ["--default-isolation"] = "JobWorker:DefaultIsolation",
        ["--required-isolation"] = "JobWorker:RequiredIsolation",
        ["--metrics-listen"] = "JobWorker:MetricsListen",
    };

    /// <summary>Optional system-wide settings file, read after appsettings.json and before environment variables.</summary>
    public const string SystemConfigFile = "/etc/jobworker/jobworker.json";

    /// <summary>Builds the application. Nothing listens until it is started.</summary>
    /// <param name="args">Command-line arguments.</param>
    /// <param name="configure">Adjusts the builder before the settings are read: configuration added here has the
    /// highest precedence (tests add settings and a log collector).</param>
    /// <exception cref="StartupException">The settings or certificates are unusable.</exception>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            // appsettings.json ships next to the binary; the working directory does not matter.
            ContentRootPath = AppContext.BaseDirectory,
        });
        InsertSystemConfigFile(builder.Configuration);
        var startupLog = new StartupFailureLogFilter();
        builder.Logging.AddFilter(StartupFailureLogFilter.Category, startupLog.IsEnabled);
        builder.Configuration.AddCommandLine(args, Switches);
        configure?.Invoke(builder);

        var options = BindOptions(builder.Configuration);
        var (quotas, retention, disk) = BindQuotaOptions(builder.Configuration);
        var rateLimits = BindRateLimits(builder.Configuration);
        var telemetry = BindTelemetry(builder.Configuration);
        var limits = BindLimits(builder.Configuration, options);
        var tls = BindTls(builder.Configuration);
        var certificates = LoadCertificates(options, tls);

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(rateLimits);
        services.AddJobWorkerRateLimits(rateLimits);
        services.AddSingleton(Options.Create(options));
        services.AddSingleton(limits);
        services.AddSingleton(new JobLimitPolicy(limits));
        services.AddSingleton<ServerMetrics>();
        services.AddSingleton(telemetry);
        services.AddJobWorkerTelemetry(options, telemetry, builder.Configuration);
        services.AddSingleton(new RequestValidator(options));
        services.AddSingleton(new StartRequestRegistry(options));
        services.AddSingleton(quotas);
        services.AddSingleton(retention);
        services.AddSingleton(disk);
        services.AddSingleton(new QuotaLedger(options, quotas, retention));
        services.AddSingleton(new DiskWatermark(disk, options));
        services.AddSingleton<JobRunnerHost>();
        services.AddHostedService(sp => sp.GetRequiredService<JobRunnerHost>());
        services.AddSingleton(tls);
        services.AddSingleton(certificates);
        services.AddSingleton<ConnectionRegistry>();
        services.AddSingleton<CertificateWatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<CertificateWatcher>());
        services.AddSingleton<ClientCertificateValidator>();
        // Registered as a singleton, the interceptor is reused; otherwise grpc-dotnet builds one per call.
        services.AddSingleton<ErrorInterceptor>();
        services.AddGrpc(grpc =>
        {
            grpc.Interceptors.Add<ErrorInterceptor>();
            grpc.EnableDetailedErrors = false;
            // Largest request is StartJob: bounded by MaxArgumentBytes plus framing.
            grpc.MaxReceiveMessageSize = options.MaxArgumentBytes + (64 * 1024);
        });
        services.AddGrpcHealthChecks()
            .AddCheck<RunnerHealthCheck>("jobs");
        services.AddGrpcReflection();
        // Jobs get their grace at shutdown; give the host that long plus time to drain the last streams.
        services.Configure<HostOptions>(host => host.ShutdownTimeout = options.DefaultStopGrace + TimeSpan.FromSeconds(15));
        // Type=notify: READY=1 once the runner has recovered its jobs and Kestrel listens (see ServiceManager).
        services.AddServiceManager();

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Every follower is one HTTP/2 stream; Kestrel's default of 100 per connection is too few for a
            // client that follows many jobs (see docs/operations.md).
            kestrel.Limits.Http2.MaxStreamsPerConnection = options.MaxStreamsPerConnection;
            // Detect dead peers so their followers release readers even without a TCP reset.
            kestrel.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
            kestrel.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
            var validator = kestrel.ApplicationServices.GetRequiredService<ClientCertificateValidator>();
            var connections = kestrel.ApplicationServices.GetRequiredService<ConnectionRegistry>();
            Listen(kestrel, ListenAddress.Parse(options.Listen), listen =>
            {
                listen.Protocols = HttpProtocols.Http2;
                // The per-connection callback form lets our validator see the peer address (for the refusal log)
                // and replaces Kestrel's certificate check entirely; Kestrel still adds ALPN (h2) itself. It also
                // picks up reloaded files: each handshake takes the certificate set current when it starts.
                listen.UseHttps(new TlsHandshakeCallbackOptions
                {
                    HandshakeTimeout = TimeSpan.FromSeconds(10),
                    OnConnection = context =>
                    {
                        var material = certificates.Current;
                        return ValueTask.FromResult(new SslServerAuthenticationOptions
                        {
                            ServerCertificateContext = material.Context,
                            EnabledSslProtocols = SslProtocols.Tls13,
                            ClientCertificateRequired = true,
                            // Revocation is our deny list (CertificateStore), checked by the validator.
                            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                            RemoteCertificateValidationCallback = validator.CallbackFor(context.Connection.RemoteEndPoint, material.Ca),
                        });
                    },
                });
                // After the handshake: the connection is registered with its certificate, for revocation and the
                // per-user connection cap.
                listen.Use(next => context => connections.OnConnectionAsync(context, next));
            });
            if (!string.IsNullOrEmpty(options.MetricsListen))
            {
                Listen(kestrel, ListenAddress.Parse(options.MetricsListen), listen => listen.Protocols = HttpProtocols.Http1);
            }
        });

        ListenerBinding.NameBindFailures(services, Listeners(options));
        var app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(startupLog.Started);
        if (!string.IsNullOrEmpty(options.MetricsListen))
        {
            app.UseJobWorkerPrometheusEndpoint();
        }

        var registry = app.Services.GetRequiredService<ConnectionRegistry>();
        app.Use((http, next) => registry.TryRefuseCall(http) ? Task.CompletedTask : next(http));
        // After routing (added first by WebApplication): the limiter needs the endpoint to know the method's policy.
        app.UseRateLimiter();
        app.MapGrpcService<JobWorkerService>();
        // Answers ListJobs instead of the generated binding mapped above (same route, lower order wins).
        app.MapGrpcService<ListJobsEndpoint>().Add(endpoint => ((RouteEndpointBuilder)endpoint).Order = -1);
        app.MapGrpcHealthChecksService();
        app.MapGrpcReflectionService();
        app.Lifetime.ApplicationStarted.Register(() => LogStarted(app, options));
        return app;
    }

    /// <summary>The gRPC address the started server listens on, such as <c>https://127.0.0.1:50051</c>.</summary>
    public static Uri GetGrpcAddress(WebApplication app) => GetAddress(app, "https://");

    /// <summary>The metrics address the started server listens on, or null when metrics are off.</summary>
    public static Uri? GetMetricsAddress(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.Services.GetRequiredService<ServerOptions>().MetricsListen is { Length: > 0 } ? GetAddress(app, "http://") : null;
    }

    private static Uri GetAddress(WebApplication app, string scheme)
    {
        ArgumentNullException.ThrowIfNull(app);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var address = addresses.FirstOrDefault(a => a.StartsWith(scheme, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"the server has no {scheme} address (is it started?)");
        return new Uri(address);
    }

    private static ServerOptions BindOptions(ConfigurationManager configuration)
    {
        ServerOptions options;
        try
        {
            options = configuration.GetSection(ServerOptions.Section).Get<ServerOptions>() ?? new ServerOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new StartupException($"invalid configuration: {e.Message}{(e.InnerException is { } inner ? " " + inner.Message : "")}", e);
        }

        var errors = options.Validate();
        return errors.Count == 0 ? options : throw StartupException.InvalidConfiguration(errors);
    }

    private static (QuotaOptions Quotas, RetentionOptions Retention, DiskOptions Disk) BindQuotaOptions(ConfigurationManager configuration)
    {
        QuotaOptions quotas;
        RetentionOptions retention;
        DiskOptions disk;
        try
        {
            quotas = configuration.GetSection(QuotaOptions.Section).Get<QuotaOptions>() ?? new QuotaOptions();
            retention = configuration.GetSection(RetentionOptions.Section).Get<RetentionOptions>() ?? new RetentionOptions();
            disk = configuration.GetSection(DiskOptions.Section).Get<DiskOptions>() ?? new DiskOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new StartupException($"invalid configuration: {e.Message}{(e.InnerException is { } inner ? " " + inner.Message : "")}", e);
        }

        var errors = quotas.Validate().Concat(retention.Validate()).Concat(disk.Validate()).ToList();
        return errors.Count == 0 ? (quotas, retention, disk) : throw StartupException.InvalidConfiguration(errors);
    }

    private static RateLimitOptions BindRateLimits(ConfigurationManager configuration)
    {
        RateLimitOptions options;
        try
        {
            options = configuration.GetSection(RateLimitOptions.Section).Get<RateLimitOptions>() ?? new RateLimitOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new StartupException($"invalid configuration: {e.Message}{(e.InnerException is { } inner ? " " + inner.Message : "")}", e);
        }

        var errors = options.Validate();
        return errors.Count == 0 ? options : throw StartupException.InvalidConfiguration(errors);
    }

    private static TelemetryOptions BindTelemetry(ConfigurationManager configuration)
    {
        TelemetryOptions options;
        try
        {
            options = configuration.GetSection(TelemetryOptions.Section).Get<TelemetryOptions>() ?? new TelemetryOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new StartupException($"invalid configuration: {e.Message}{(e.InnerException is { } inner ? " " + inner.Message : "")}", e);
        }

        var errors = options.Validate();
        return errors.Count == 0 ? options : throw StartupException.InvalidConfiguration(errors);
    }

    private static LimitsOptions BindLimits(ConfigurationManager configuration, ServerOptions server)
    {
        LimitsOptions limits;
        try
        {
            // A misspelt key ("MemoryByte", "memory") would otherwise be ignored, and a limit silently not applied.
            limits = configuration.GetSection(LimitsOptions.Section).Get<LimitsOptions>(binder => binder.ErrorOnUnknownConfiguration = true) ?? new LimitsOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new StartupException($"invalid configuration: {LimitsOptions.Section}: {e.Message}{(e.InnerException is { } inner ? " " + inner.Message : "")}", e);
        }

        var errors = limits.Validate(server.UseDelegatedCgroup);
        return errors.Count == 0 ? limits : throw StartupException.InvalidConfiguration(errors);
    }

    private static TlsOptions BindTls(ConfigurationManager configuration)
    {
        TlsOptions options;
        try
        {
            options = configuration.GetSection(TlsOptions.Section).Get<TlsOptions>() ?? new TlsOptions();
        }
        catch (InvalidOperationException e)
        {
            throw new StartupException($"invalid configuration: {e.Message}{(e.InnerException is { } inner ? " " + inner.Message : "")}", e);
        }

        var errors = options.Validate();
        return errors.Count == 0 ? options : throw StartupException.InvalidConfiguration(errors);
    }

    private static CertificateStore LoadCertificates(ServerOptions options, TlsOptions tls)
    {
        try
        {
            return CertificateStore.Load(options, tls);
        }
        catch (PkiException e)
        {
            throw new StartupException(e.Message, e);
        }
    }

    private static List<(ListenAddress Address, string Setting)> Listeners(ServerOptions options)
    {
        List<(ListenAddress, string)> listeners = [(ListenAddress.Parse(options.Listen), $"{ServerOptions.Section}:Listen, --listen")];
        if (!string.IsNullOrEmpty(options.MetricsListen))
        {
            listeners.Add((ListenAddress.Parse(options.MetricsListen), $"{ServerOptions.Section}:MetricsListen, --metrics-listen"));
        }

        return listeners;
    }

    private static void Listen(KestrelServerOptions kestrel, ListenAddress address, Action<ListenOptions> configure)
    {
        if (address.IsLocalhost)
        {
            kestrel.ListenLocalhost(address.Port, configure);
        }
        else
        {
            kestrel.Listen(new IPEndPoint(address.Address!, address.Port), configure);
        }
    }

    private static void InsertSystemConfigFile(ConfigurationManager configuration)
    {
        var sources = ((IConfigurationBuilder)configuration).Sources;
        var index = 0;
        for (var i = 0; i < sources.Count; i++)
        {
            if (sources[i] is JsonConfigurationSource)
            {
                index = i + 1;
            }
        }

        var source = new JsonConfigurationSource { Path = SystemConfigFile, Optional = true, ReloadOnChange = false };
        source.ResolveFileProvider();
        sources.Insert(index, source);
    }

    private static void LogStarted(WebApplication app, ServerOptions options)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("JobWorker.Server");
        var host = app.Services.GetRequiredService<JobRunnerHost>();
        var controllers = host.Runner.AvailableControllers.Count == 0 ? "none" : string.Join(' ', host.Runner.AvailableControllers.Order());
        Log.Listening(logger, GetGrpcAddress(app).ToString(), controllers);
        if (GetMetricsAddress(app) is { } metrics)
        {
            Log.MetricsListening(logger, metrics.Authority);
        }

        if (!ListenAddress.TryParse(options.Listen, out var listen, out _) || !listen.IsLoopback)
        {
            Log.ConfigurationWarning(logger, $"gRPC listens on a non-loopback address ({options.Listen}); only clients with a certificate from the service CA can connect");
        }
    }

    private sealed class RunnerHealthCheck(JobRunnerHost host) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
            => Task.FromResult(host.IsStopping ? HealthCheckResult.Unhealthy("shutting down") : HealthCheckResult.Healthy());
    }
}
