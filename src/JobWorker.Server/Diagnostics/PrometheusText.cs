using System.Globalization;
using System.Text;

namespace JobWorker.Server.Diagnostics;

/// <summary>
/// Writes <see cref="ServerMetrics"/> in the Prometheus text exposition format (version 0.0.4). Small enough to
/// write by hand; it saves a dependency on a metrics library.
/// </summary>
public static class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static string Format(ServerMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var text = new StringBuilder(1024);
        Metric(text, "jobworker_jobs_started_total", "counter", "Jobs started.", metrics.JobsStarted);
        Metric(text, "jobworker_jobs_start_failed_total", "counter", "Start requests that failed after validation.", metrics.JobsStartFailed);
        Metric(text, "jobworker_jobs_ended_total", "counter", "Jobs that ended.", metrics.JobsEnded);
        Metric(text, "jobworker_jobs_running", "gauge", "Jobs running now.", metrics.JobsRunning);
        Metric(text, "jobworker_streams_active", "gauge", "Output streams open now.", metrics.StreamsActive);
        Metric(text, "jobworker_streams_opened_total", "counter", "Output streams opened.", metrics.StreamsOpened);
        Metric(text, "jobworker_stream_bytes_total", "counter", "Output bytes sent to clients.", metrics.StreamBytes);
        Metric(text, "jobworker_tls_refused_total", "counter", "Client certificates refused.", metrics.HandshakesRefused);
        text.Append("# HELP jobworker_rpc_errors_total Calls that ended with a gRPC error status.\n");
        text.Append("# TYPE jobworker_rpc_errors_total counter\n");
        foreach (var (code, count) in metrics.Errors)
        {
            text.Append(CultureInfo.InvariantCulture, $"jobworker_rpc_errors_total{{code=\"{code}\"}} {count}\n");
        }

        return text.ToString();
    }

    private static void Metric(StringBuilder text, string name, string type, string help, long value)
    {
        text.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n{name} {value}\n");
    }
}
