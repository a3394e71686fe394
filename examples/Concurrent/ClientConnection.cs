using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Grpc.Net.Client;

namespace JobWorker.Examples.Concurrent;

/// <summary>
/// The same connection settings as <c>worker</c>: WORKER_SERVER/CERT/KEY/CA, else the client config file
/// ($WORKER_CONFIG or ~/.config/jobworker/client.json written by <c>worker certs init</c>).
/// </summary>
internal static class ClientConnection
{
    public static (GrpcChannel Channel, Uri Server) Open()
    {
        var configPath = Environment.GetEnvironmentVariable("WORKER_CONFIG") is { Length: > 0 } p
            ? p
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } x ? x : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config"), "jobworker", "client.json");
        JsonElement? config = null;
        if (File.Exists(configPath))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(configPath));
            config = doc.RootElement.Clone();
        }

        string? Setting(string env, string key)
        {
            if (Environment.GetEnvironmentVariable(env) is { Length: > 0 } value)
            {
                return value;
            }

            return config is { } c && c.TryGetProperty(key, out var v) && v.GetString() is { Length: > 0 } s
                ? Path.GetFullPath(s, Path.GetDirectoryName(Path.GetFullPath(configPath))!)
                : null;
        }

        var server = new Uri(Environment.GetEnvironmentVariable("WORKER_SERVER") is { Length: > 0 } sv ? sv
            : config is { } cfg && cfg.TryGetProperty("server", out var sp) ? sp.GetString()! : "https://127.0.0.1:50051");
        var cert = Setting("WORKER_CERT", "cert");
        var key = Setting("WORKER_KEY", "key");
        var caPath = Setting("WORKER_CA", "ca");
        if (cert is null || key is null || caPath is null)
        {
            throw new InvalidOperationException($"no client certificate configured: run 'worker certs init' or set WORKER_CERT, WORKER_KEY and WORKER_CA (looked in {configPath})");
        }

        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.ImportFromPemFile(caPath);
        var handler = new SocketsHttpHandler
        {
            // Kestrel allows 100 streams per HTTP/2 connection by default: more followers need more connections.
            EnableMultipleHttp2Connections = true,
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls13,
                CertificateChainPolicy = policy,
                ClientCertificates = [X509Certificate2.CreateFromPemFile(cert, key)],
            },
        };
        return (GrpcChannel.ForAddress(server, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true }), server);
    }
}
