using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Grpc.Core;

namespace JobWorker.Server.Diagnostics;

/// <summary>
/// The server's counters, published as the <c>System.Diagnostics.Metrics</c> meter <c>JobWorker</c> (watch with
/// <c>dotnet-counters monitor -n JobWorker.Server --counters JobWorker</c>); OpenTelemetry exports the meter to
/// Prometheus and OTLP (<see cref="ServerTelemetry"/>). The values live here in plain fields, read by the
/// observable instruments and by the tests.
/// </summary>
public sealed class ServerMetrics
{
    public const string MeterName = "JobWorker";

    private readonly ConcurrentDictionary<StatusCode, long> _errors = new();
    private long _jobsStarted;
    private long _jobsStartFailed;
    private long _jobsEnded;
    private long _jobsRunning;
    private long _streamsActive;
    private long _streamsTotal;
    private long _streamBytes;
    private long _handshakesRefused;

    public ServerMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableCounter("jobworker.jobs.started", () => Volatile.Read(ref _jobsStarted), "{job}", "Jobs started");
        meter.CreateObservableCounter("jobworker.jobs.start_failed", () => Volatile.Read(ref _jobsStartFailed), "{job}", "Start requests that failed after validation");
        meter.CreateObservableCounter("jobworker.jobs.ended", () => Volatile.Read(ref _jobsEnded), "{job}", "Jobs that ended");
        meter.CreateObservableUpDownCounter("jobworker.jobs.running", () => Volatile.Read(ref _jobsRunning), "{job}", "Jobs running now");
        meter.CreateObservableUpDownCounter("jobworker.streams.active", () => Volatile.Read(ref _streamsActive), "{stream}", "Output streams open now");
        meter.CreateObservableCounter("jobworker.streams.opened", () => Volatile.Read(ref _streamsTotal), "{stream}", "Output streams opened");
        meter.CreateObservableCounter("jobworker.streams.bytes", () => Volatile.Read(ref _streamBytes), "By", "Output bytes sent to clients");
        meter.CreateObservableCounter("jobworker.tls.refused", () => Volatile.Read(ref _handshakesRefused), "{connection}", "Client certificates refused");
        meter.CreateObservableCounter("jobworker.rpc.errors", ObserveErrors, "{call}", "Calls that ended with a gRPC error status");
    }

    public long JobsStarted => Volatile.Read(ref _jobsStarted);

    public long JobsStartFailed => Volatile.Read(ref _jobsStartFailed);

    public long JobsEnded => Volatile.Read(ref _jobsEnded);

    public long JobsRunning => Volatile.Read(ref _jobsRunning);

    public long StreamsActive => Volatile.Read(ref _streamsActive);

    public long StreamsOpened => Volatile.Read(ref _streamsTotal);

    public long StreamBytes => Volatile.Read(ref _streamBytes);

    public long HandshakesRefused => Volatile.Read(ref _handshakesRefused);

    public IEnumerable<KeyValuePair<StatusCode, long>> Errors => _errors.OrderBy(e => e.Key);

    public void JobStarted()
    {
        Interlocked.Increment(ref _jobsStarted);
        Interlocked.Increment(ref _jobsRunning);
    }

    public void JobStartFailed() => Interlocked.Increment(ref _jobsStartFailed);

    public void JobEnded()
    {
        Interlocked.Increment(ref _jobsEnded);
        Interlocked.Decrement(ref _jobsRunning);
    }

    public void StreamOpened()
    {
        Interlocked.Increment(ref _streamsTotal);
        Interlocked.Increment(ref _streamsActive);
    }

    public void StreamClosed() => Interlocked.Decrement(ref _streamsActive);

    public void BytesStreamed(long count) => Interlocked.Add(ref _streamBytes, count);

    public void HandshakeRefused() => Interlocked.Increment(ref _handshakesRefused);

    public void Error(StatusCode code) => _errors.AddOrUpdate(code, 1, static (_, n) => n + 1);

    private IEnumerable<Measurement<long>> ObserveErrors()
        => _errors.Select(e => new Measurement<long>(e.Value, new KeyValuePair<string, object?>("code", e.Key.ToString())));
}
