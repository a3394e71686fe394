using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using JobWorker.Pki;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>Mutual TLS against a real Kestrel: who gets in, who is refused, and that refusals are logged with the reason.</summary>
public sealed class TlsTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact(Timeout = 30_000)]
    public async Task Handshake_ValidClientCertificate_Accepted()
    {
        var health = new Health.HealthClient(_server.Channel(_server.ClientCertificate(TestServer.Alice)));

        var response = await health.CheckAsync(new HealthCheckRequest(), cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Reflection_ValidClient_ListsTheJobWorkerService()
    {
        var reflection = new Grpc.Reflection.V1Alpha.ServerReflection.ServerReflectionClient(_server.Channel(_server.ClientCertificate(TestServer.Alice)));
        using var call = reflection.ServerReflectionInfo(cancellationToken: TestContext.Current.CancellationToken);

        await call.RequestStream.WriteAsync(new Grpc.Reflection.V1Alpha.ServerReflectionRequest { ListServices = "" }, TestContext.Current.CancellationToken);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(TestContext.Current.CancellationToken));

        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("jobworker.v1.JobWorker", services);
        Assert.Contains("grpc.health.v1.Health", services);
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_NoClientCertificate_RefusedAndLogged()
    {
        await AssertRefusedAsync(_server.Channel(null), "no client certificate");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_CertificateFromAnotherCa_RefusedAndLogged()
    {
        using var other = CertificateAuthority.Create("JobWorker Development CA");
        using var cert = other.IssueClient(new ClientIdentity(TestServer.Alice, Roles.Admin));

        await AssertRefusedAsync(_server.Channel(cert), "PartialChain");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_ExpiredCertificate_RefusedAndLogged()
    {
        using var ca = LoadServiceCa();
        using var cert = IssueWithServiceCa(ca, new CertificateOptions
        {
            NotBefore = ca.Certificate.NotBefore.ToUniversalTime(),
            NotAfter = DateTimeOffset.UtcNow.AddMinutes(-1),
        });

        await AssertRefusedAsync(_server.Channel(cert), "NotTimeValid");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_NotYetValidCertificate_RefusedAndLogged()
    {
        using var ca = LoadServiceCa();
        using var cert = IssueWithServiceCa(ca, new CertificateOptions { NotBefore = DateTimeOffset.UtcNow.AddDays(1) });

        await AssertRefusedAsync(_server.Channel(cert), "NotTimeValid");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_NoClientAuthUsage_RefusedAndLogged()
    {
        using var ca = LoadServiceCa();
        using var cert = IssueWithServiceCa(ca, new CertificateOptions { IncludeExtendedKeyUsage = false });

        await AssertRefusedAsync(_server.Channel(cert), "NotValidForUsage");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_ServerCertificateAsClientCertificate_Refused()
    {
        // Signed by the right CA, but for serverAuth only.
        using var cert = PemFiles.LoadCertificateWithKey(_server.Pki.ServerCertificate, _server.Pki.ServerKey);

        await AssertRefusedAsync(_server.Channel(cert), "NotValidForUsage");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_SelfSignedClientCertificate_RefusedAndLogged()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=admin, OU=admin, O=JobWorker", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(Oids.ClientAuthentication)], false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));

        await AssertRefusedAsync(_server.Channel(cert), "UntrustedRoot");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_ValidChainButUnknownRole_Refused()
    {
        using var ca = LoadServiceCa();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=mallory, OU=root, O=JobWorker", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(Oids.ClientAuthentication)], false));
        using var issued = request.Create(ca.Certificate, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), [1, 2, 3, 4]);
        using var cert = issued.CopyWithPrivateKey(key);

        await AssertRefusedAsync(_server.Channel(cert), "role 'root' is unknown");
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_Tls12OnlyClient_RefusedByServerForItsProtocol()
    {
        // A server of its own, so that every connection in its log is this test's. Kestrel logs a failed
        // handshake at Debug under its HTTPS middleware, which the server's default log level hides.
        await using var server = await TestServer.StartAsync(
            new Dictionary<string, string?> { ["Logging:LogLevel:Microsoft.AspNetCore.Server.Kestrel"] = "Debug" },
            TestContext.Current.CancellationToken);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Address.Host, server.Address.Port, TestContext.Current.CancellationToken);
        await using var tls = new SslStream(tcp.GetStream());
        using var cert = server.ClientCertificate(TestServer.Alice);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = SslProtocols.Tls12,
            ClientCertificates = [cert],
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is X509Certificate2 s && CertificateTrust.Verify(s, server.Ca, Oids.ServerAuthentication) is null,
        };

        await Assert.ThrowsAsync<AuthenticationException>(() => tls.AuthenticateAsClientAsync(options, TestContext.Current.CancellationToken));

        // The server refused the protocol version itself (OpenSSL's "unsupported protocol"), before any
        // certificate was looked at: its certificate check neither ran nor counted a refusal.
        var refusal = await WaitForLogAsync(server, entry =>
            entry.Category == "Microsoft.AspNetCore.Server.Kestrel.Https.Internal.HttpsConnectionMiddleware" && entry.EventId.Name == "AuthenticationFailed");
        Assert.Contains("unsupported protocol", refusal.Message, StringComparison.Ordinal);
        Assert.Single(server.Logs.Entries, entry => entry.EventId.Name == "ConnectionAccepted");
        Assert.DoesNotContain(server.Logs.Entries, entry => entry.EventId.Id == 8 && entry.Category.StartsWith("JobWorker", StringComparison.Ordinal));
        Assert.Equal(0, server.Metrics.HandshakesRefused);
        Assert.False(tls.IsAuthenticated);

        // And it keeps serving TLS 1.3 clients.
        var health = new Health.HealthClient(server.Channel(server.ClientCertificate(TestServer.Bob)));
        var response = await health.CheckAsync(new HealthCheckRequest(), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_Tls13Client_NegotiatesHttp2AndTls13()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(_server.Address.Host, _server.Address.Port, TestContext.Current.CancellationToken);
        await using var tls = new SslStream(tcp.GetStream());
        using var cert = _server.ClientCertificate(TestServer.Alice);

        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ClientCertificates = [cert],
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = (_, server, _, _) =>
                server is X509Certificate2 s && CertificateTrust.Verify(s, _server.Ca, Oids.ServerAuthentication) is null,
        }, TestContext.Current.CancellationToken);

        Assert.Equal(SslProtocols.Tls13, tls.SslProtocol);
        Assert.Equal(SslApplicationProtocol.Http2, tls.NegotiatedApplicationProtocol);
    }

    [Fact(Timeout = 30_000)]
    public async Task Handshake_AfterRefusals_ServerKeepsServingValidClients()
    {
        await AssertRefusedAsync(_server.Channel(null), "no client certificate");

        var health = new Health.HealthClient(_server.Channel(_server.ClientCertificate(TestServer.Bob)));
        var response = await health.CheckAsync(new HealthCheckRequest(), cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    private CertificateAuthority LoadServiceCa() => CertificateAuthority.Load(_server.Pki.CaCertificate, _server.Pki.CaKey);

    private static X509Certificate2 IssueWithServiceCa(CertificateAuthority ca, CertificateOptions options)
        => ca.IssueClient(new ClientIdentity(TestServer.Alice, Roles.User), options);

    /// <summary>The first log entry of the server that matches; the server may log just after the client saw the end.</summary>
    private static async Task<(string Category, LogLevel Level, EventId EventId, string Message)> WaitForLogAsync(
        TestServer server, Func<(string Category, LogLevel Level, EventId EventId, string Message), bool> match)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            foreach (var entry in server.Logs.Entries)
            {
                if (match(entry))
                {
                    return entry;
                }
            }

            Assert.True(DateTime.UtcNow < deadline, "the server logged no matching entry within 10 s");
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    private async Task AssertRefusedAsync(GrpcChannel channel, string expectedReason)
    {
        var refusedBefore = _server.Metrics.HandshakesRefused;
        var health = new Health.HealthClient(channel);

        var e = await Assert.ThrowsAsync<RpcException>(async () =>
            await health.CheckAsync(new HealthCheckRequest(), cancellationToken: TestContext.Current.CancellationToken));

        // With TLS 1.3 the client finishes its side of the handshake before the server has checked the client
        // certificate, so the refusal reaches the client either while connecting (Unavailable) or as the
        // connection's end while its first request is in flight (Internal). Either way nothing was served.
        Assert.Contains(e.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        Assert.True(_server.Metrics.HandshakesRefused > refusedBefore, "the refusal was not counted");
        Assert.Contains(_server.Logs.Entries, entry =>
            entry.EventId.Id == 8 && entry.Message.Contains(expectedReason, StringComparison.Ordinal) && entry.Message.Contains("127.0.0.1", StringComparison.Ordinal));
    }
}
