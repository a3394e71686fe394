using JobWorker.Server.Configuration;

namespace JobWorker.Server.Security;

/// <summary>
/// Reloads the TLS files when they change: a watch on their directories (so that a rename into place, as
/// <c>step ca renew</c> and Kubernetes secret updates do, is seen at once) triggers a check after a short quiet
/// time, and a timer checks every <see cref="TlsOptions.ReloadCheckInterval"/> in case a notification is missed.
/// When the deny list changes, open connections of revoked certificates are closed; at every timer check, open
/// connections whose client certificate has expired are closed too.
/// </summary>
public sealed class CertificateWatcher : IHostedService, IDisposable
{
    // Writers often replace the certificate and then the key: wait for the burst to end before reading.
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);

    private readonly CertificateStore _store;
    private readonly ConnectionRegistry _connections;
    private readonly TlsOptions _options;
    private readonly ILogger<CertificateWatcher> _logger;
    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly Lock _gate = new();
    private Timer? _poll;
    private Timer? _debounce;
    private bool _stopped;

    public CertificateWatcher(CertificateStore store, ConnectionRegistry connections, TlsOptions options, ILogger<CertificateWatcher> logger)
    {
        _store = store;
        _connections = connections;
        _options = options;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            _debounce = new Timer(_ => CheckNow(), null, Timeout.Infinite, Timeout.Infinite);
            _poll = new Timer(_ => CheckNow(), null, _options.ReloadCheckInterval, _options.ReloadCheckInterval);
            foreach (var directory in _store.Files.Select(f => Path.GetDirectoryName(Path.GetFullPath(f))!).Distinct(StringComparer.Ordinal))
            {
                if (!Directory.Exists(directory))
                {
                    continue;
                }

                try
                {
                    var watcher = new FileSystemWatcher(directory)
                    {
                        NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.Attributes,
                    };
                    watcher.Changed += (_, _) => Soon();
                    watcher.Created += (_, _) => Soon();
                    watcher.Deleted += (_, _) => Soon();
                    watcher.Renamed += (_, _) => Soon();
                    watcher.EnableRaisingEvents = true;
                    _watchers.Add(watcher);
                }
                catch (Exception e) when (e is IOException or ArgumentException or PlatformNotSupportedException)
                {
                    // Out of inotify watches, say: the timer still finds every change, only later.
                    Diagnostics.Log.ConfigurationWarning(_logger, $"cannot watch '{directory}' for certificate changes ({e.Message}); checking every {_options.ReloadCheckInterval} instead");
                }
            }
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Checks the files and the open connections' certificates now (also what the timers call).</summary>
    public void CheckNow()
    {
        try
        {
            if (_store.Check(_logger))
            {
                _connections.CloseRevoked();
            }

            _connections.CloseExpired(DateTimeOffset.UtcNow);
        }
        catch (Exception e)
        {
            // A timer callback must not throw; the next check tries again.
            Diagnostics.Log.ConfigurationWarning(_logger, $"checking the TLS files failed: {e}");
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            foreach (var watcher in _watchers)
            {
                watcher.Dispose();
            }

            _watchers.Clear();
            _poll?.Dispose();
            _debounce?.Dispose();
        }
    }

    private void Soon()
    {
        lock (_gate)
        {
            if (!_stopped)
            {
                _debounce?.Change(Quiet, Timeout.InfiniteTimeSpan);
            }
        }
    }
}
