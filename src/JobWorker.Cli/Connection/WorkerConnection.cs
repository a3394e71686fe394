using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using JobWorker.Cli.Infrastructure;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Cli.Connection;

/// <summary>
/// One mTLS gRPC channel to the server. The client trusts only the service CA (custom root trust, never
/// the system store) and presents its certificate; HTTP/2 and TLS 1.3 only, as the server requires.
/// </summary>
internal sealed class WorkerConnection : IDisposable
{
    /// <summary>The largest answer the client accepts; a larger one fails with ResourceExhausted on this side.</summary>
    public const int MaxReceiveMessageBytes = 16 * 1024 * 1024;

    private readonly GrpcChannel _channel;

    private WorkerConnection(ConnectionSettings settings, GrpcChannel channel)
    {
        Settings = settings;
        _channel = channel;
        Client = new JobWorkerClient(channel);
    }

    public ConnectionSettings Settings { get; }

    public JobWorkerClient Client { get; }

    public static WorkerConnection Open(ConnectionSettings settings)
    {
        const string setup = "pass --cert, --key and --ca (or WORKER_CERT, WORKER_KEY, WORKER_CA), or run 'worker certs init' to create a development PKI and client config";
        if (settings.CertPath is null || settings.KeyPath is null || settings.CaPath is null)
        {
            var missing = string.Join(", ", new[] { (settings.CertPath, "certificate"), (settings.KeyPath, "key"), (settings.CaPath, "CA") }
                .Where(p => p.Item1 is null).Select(p => p.Item2));
            throw new CliException($"no client {missing} configured: {setup}");
        }

        var ca = LoadCa(settings.CaPath);
        var credentials = ClientCredentials.Load(settings.CertPath, settings.KeyPath);

        // .NET on Linux reads every file in /etc/ssl/certs on its first chain check (60–90 ms per process)
        // even with custom root trust. Measured here: SSL_CERT_FILE alone still scans SSL_CERT_DIR or the
        // default directory; SSL_CERT_FILE = our CA plus an empty SSL_CERT_DIR reads only the CA. We override
        // values inherited from the user's shell on purpose: trust is decided by the custom root below, never
        // by the system store, and this process starts no children. Set in the native environment because
        // .NET's OpenSSL shim calls getenv (Environment.SetEnvironmentVariable only changes a managed copy).
        NativeEnvironment.Set("SSL_CERT_FILE", Path.GetFullPath(settings.CaPath));
        NativeEnvironment.Set("SSL_CERT_DIR", string.Empty);

        var chainPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        chainPolicy.CustomTrustStore.AddRange(ca);

        SocketsHttpHandler CreateHandler(TimeSpan connectTimeout) => new()
        {
            // Covers the TCP connect and the TLS handshake; ConnectRetryHandler gives each attempt what is left.
            ConnectTimeout = connectTimeout,
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls13,
                CertificateChainPolicy = chainPolicy,
                // The pair current when the handler is made; a renewed pair gets a new handler (ConnectRetryHandler).
                ClientCertificateContext = credentials.Current,
            },
        };

        var handler = new ConnectRetryHandler(settings.Server, settings.ConnectTimeout, CreateHandler, credentials.Refresh);
        var channel = GrpcChannel.ForAddress(settings.Server, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = MaxReceiveMessageBytes,
        });
        return new WorkerConnection(settings, channel);
    }

    public void Dispose() => _channel.Dispose();

    private static X509Certificate2Collection LoadCa(string path)
    {
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPemFile(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or CryptographicException)
        {
            throw new CliException($"cannot read the CA certificate {path}: {Reason(ex)}. Check --ca / WORKER_CA, or run 'worker certs init'");
        }

        if (collection.Count == 0)
        {
            throw new CliException($"the CA file {path} holds no PEM certificate. Check --ca / WORKER_CA");
        }

        return collection;
    }

    private static string Reason(Exception ex) => ex.Message.TrimEnd('.');
}
