using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging.Console;

namespace JobWorker.Server.Hosting;

/// <summary>
/// Runs the server as a systemd <c>Type=notify</c> service with <c>Microsoft.Extensions.Hosting.Systemd</c>: READY=1
/// when the host has started, STOPPING=1 when shutdown begins, and log lines in the journal's format (a syslog
/// priority prefix, no timestamp: journald adds its own).
/// </summary>
/// <remarks>
/// READY=1 is sent on <c>ApplicationStarted</c>, which the host signals only after every hosted service has started:
/// <see cref="JobRunnerHost"/> (the runner created, every recorded job re-attached, expired jobs removed) and
/// Kestrel (every listener bound). A unit that orders itself after <c>jobworker.service</c> therefore finds the port
/// open and the jobs of the previous server served.
/// </remarks>
internal static class ServiceManager
{
    /// <summary>The datagram socket a service manager listens on for sd_notify(3) messages.</summary>
    public const string NotifySocketVariable = "NOTIFY_SOCKET";

    public static IServiceCollection AddServiceManager(this IServiceCollection services)
    {
        // Only when systemd is the parent process (IsSystemdService); otherwise a no-op.
        services.AddSystemd();
        var systemdParent = SystemdHelpers.IsSystemdService();
        if (!systemdParent && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NotifySocketVariable)))
        {
            return services;
        }

        if (!systemdParent)
        {
            // NOTIFY_SOCKET without systemd as the parent: started through a wrapper (NotifyAccess=all) or by another
            // manager that speaks the protocol. sd_notify(3) notifies whenever the variable is set; so does the server.
            services.Configure<ConsoleLoggerOptions>(console => console.FormatterName = ConsoleFormatterNames.Systemd);
            services.AddSingleton<ISystemdNotifier, SystemdNotifier>();
            services.AddSingleton<IHostLifetime, SystemdLifetime>();
        }

        // The journal stamps every line itself; the shipped Logging:Console:FormatterOptions add a timestamp for the
        // console. Only the systemd formatter uses these (the simple one has SimpleConsoleFormatterOptions).
        services.Configure<ConsoleFormatterOptions>(formatter => formatter.TimestampFormat = null);
        return services;
    }
}
