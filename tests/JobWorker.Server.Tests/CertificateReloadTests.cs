using System.Net.Security;
using System.Net.Sockets;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Health.V1;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// The server picks up new certificate, key, CA and revocation files while it runs, against a real Kestrel with
/// real certificates: open streams go on, new handshakes use the new files, revoked clients are cut off.
/// </summary>
public sealed class CertificateReloadTests : IDisposable
{
    private const int ReloadEvent = 140;
    private const int NotReloadedEvent = 141;
    private const int DenyListNotReloadedEvent = 143;
    private const int RevokedClosedEvent = 144;
    private const int ExpiredClosedEvent = 146;
    private const int RefusedHandshakeEvent = 8;

    // Revocation files live outside the server's directory: the server needs their paths before it starts.
    private readonly string _directory = Directory.CreateTempSubdirectory("jobworker-srvtest-revocation-").FullName;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact(Timeout = 90_000)]
    public async Task Reload_ServerCertificateAndCaReplacedDuringFollow_StreamGoesOnAndNewHandshakesUseTheNewFiles()
    {
        await using var server = await TestServer.StartAsync(cancellationToken: Token);
        var alice = server.Client(TestServer.Alice);
        var job = await server.StartTestProcessAsync(TestServer.Alice, "ticker", "50", "sleep", "60");
        using var follow = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        await ReadTicksAsync(follow, 3);
        using var oldServerCertificate = PemFiles.LoadCertificate(server.Pki.ServerCertificate);

        // A new CA with a server and a client certificate of its own, renamed into place one file after the other as
        // renewal tools do: until the last file is there the set is inconsistent and must not be used.
        using var newCa = CertificateAuthority.Create("JobWorker Rotated CA");
        var (dns, ips) = DevPki.ServerNames([]);
        using var newServerCertificate = newCa.IssueServer(dns, ips);
        using var newAlice = newCa.IssueClient(new ClientIdentity(TestServer.Alice, Roles.User));
        PemFiles.WriteCertificate(newServerCertificate, server.Pki.ServerCertificate);
        PemFiles.WritePrivateKey(newServerCertificate, server.Pki.ServerKey);
        PemFiles.WriteCertificate(newCa.Certificate, server.Pki.CaCertificate);

        var presented = await WaitForServerCertificateAsync(server, newAlice, newCa.Certificate, newServerCertificate.Thumbprint);
        Assert.Equal(newServerCertificate.Thumbprint, presented);
        var health = new Health.HealthClient(server.Channel(newAlice, trust: newCa.Certificate));
        var serving = await health.CheckAsync(new HealthCheckRequest(), cancellationToken: Token);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, serving.Status);
        // A client of the old CA is refused now (it trusts the new CA here, so the refusal is the server's).
        var oldClient = new Health.HealthClient(server.Channel(server.ClientCertificate(TestServer.Alice), trust: newCa.Certificate));
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await oldClient.CheckAsync(new HealthCheckRequest(), cancellationToken: Token));
        Assert.Contains(refused.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        await WaitForLogAsync(server, e => e.EventId.Id == RefusedHandshakeEvent && e.Message.Contains("CN=alice", StringComparison.Ordinal));

        // The follow opened before the rotation goes on over its old connection, and ends with the job.
        await ReadTicksAsync(follow, 5);
        await alice.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
        JobStatus? final = null;
        await foreach (var message in follow.ResponseStream.ReadAllAsync(Token))
        {
            final = message.FinalStatus ?? final;
        }

        Assert.NotNull(final);
        Assert.NotEqual(oldServerCertificate.SerialNumber, newServerCertificate.SerialNumber);
        Assert.Contains(server.Logs.Entries, e => e.EventId.Id == ReloadEvent && e.Message.Contains(newServerCertificate.SerialNumber, StringComparison.Ordinal));
    }

    [Fact(Timeout = 60_000)]
    public async Task Reload_HalfWrittenKey_KeepsTheOldFilesAndWarnsUntilAValidPairIsInPlace()
    {
        await using var server = await TestServer.StartAsync(cancellationToken: Token);
        using var oldServerCertificate = PemFiles.LoadCertificate(server.Pki.ServerCertificate);
        using var ca = CertificateAuthority.Load(server.Pki.CaCertificate, server.Pki.CaKey);
        var (dns, ips) = DevPki.ServerNames([]);
        using var next = ca.IssueServer(dns, ips);

        // Written in place, as a careless copy does: the server sees the new certificate with half a key.
        PemFiles.WriteCertificate(next, server.Pki.ServerCertificate);
        using var nextKey = next.GetECDsaPrivateKey()!;
        var key = nextKey.ExportPkcs8PrivateKeyPem();
        await File.WriteAllTextAsync(server.Pki.ServerKey, key[..(key.Length / 2)], Token);

        var warning = await WaitForLogAsync(server, e => e.EventId.Id == NotReloadedEvent && e.Message.Contains(server.Pki.ServerKey, StringComparison.Ordinal));
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains(oldServerCertificate.SerialNumber, warning.Message, StringComparison.Ordinal);
        using var alice = server.ClientCertificate(TestServer.Alice);
        Assert.Equal(oldServerCertificate.Thumbprint, await PresentedCertificateAsync(server, alice, server.Ca));
        var health = new Health.HealthClient(server.Channel(server.ClientCertificate(TestServer.Bob)));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest(), cancellationToken: Token)).Status);

        Assert.DoesNotContain(server.Logs.Entries, e => e.EventId.Id == ReloadEvent);

        await File.WriteAllTextAsync(server.Pki.ServerKey, key + "\n", Token);

        Assert.Equal(next.Thumbprint, await WaitForServerCertificateAsync(server, alice, server.Ca, next.Thumbprint));
        Assert.Contains(server.Logs.Entries, e => e.EventId.Id == ReloadEvent && e.Message.Contains(next.SerialNumber, StringComparison.Ordinal));
    }

    [Fact(Timeout = 90_000)]
    public async Task Revoke_SerialOfAFollowingClient_ItsStreamEndsWithinTheBoundNewCallsRefusedOthersGoOn()
    {
        var revoked = Path.Combine(_directory, "revoked-serials");
        await File.WriteAllTextAsync(revoked, "# none yet\n", Token);
        var interval = TimeSpan.FromSeconds(2);
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Tls:RevokedSerialsFile"] = revoked,
            ["JobWorker:Tls:ReloadCheckInterval"] = interval.ToString(),
        }, Token);
        var alice = server.Client(TestServer.Alice);
        var bob = server.Client(TestServer.Bob);
        var aliceJob = await server.StartTestProcessAsync(TestServer.Alice, "ticker", "50", "sleep", "60");
        var bobJob = await server.StartTestProcessAsync(TestServer.Bob, "ticker", "50", "sleep", "60");
        using var aliceFollow = alice.StreamOutput(new StreamOutputRequest { JobId = aliceJob.JobId, Follow = true }, cancellationToken: Token);
        using var bobFollow = bob.StreamOutput(new StreamOutputRequest { JobId = bobJob.JobId, Follow = true }, cancellationToken: Token);
        await ReadTicksAsync(aliceFollow, 2);
        await ReadTicksAsync(bobFollow, 2);
        using var aliceCertificate = server.ClientCertificate(TestServer.Alice);

        // openssl's form (lower case, colons), renamed into place.
        var serial = string.Join(':', Convert.FromHexString(aliceCertificate.SerialNumber).Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
        await File.WriteAllTextAsync(revoked + ".new", $"# leaked laptop\n{serial}\n", Token);
        var written = DateTime.UtcNow;
        File.Move(revoked + ".new", revoked, overwrite: true);

        // The documented bound: ReloadCheckInterval plus reading the files (the directory watch is usually faster).
        await AssertStreamCutAsync(aliceFollow, written, interval + TimeSpan.FromSeconds(3));
        var closed = await WaitForLogAsync(server, e => e.EventId.Id == RevokedClosedEvent);
        Assert.Contains("of alice", closed.Message, StringComparison.Ordinal);
        Assert.Contains(aliceCertificate.SerialNumber.TrimStart('0'), closed.Message, StringComparison.Ordinal);

        var again = new Health.HealthClient(server.Channel(server.ClientCertificate(TestServer.Alice)));
        await Assert.ThrowsAsync<RpcException>(async () => await again.CheckAsync(new HealthCheckRequest(), cancellationToken: Token));
        await WaitForLogAsync(server, e => e.EventId.Id == RefusedHandshakeEvent && e.Message.Contains("is revoked by '" + revoked + "'", StringComparison.Ordinal));

        // Bob's stream and calls are untouched.
        await ReadTicksAsync(bobFollow, 3);
        var status = await bob.GetJobAsync(new GetJobRequest { JobId = bobJob.JobId }, cancellationToken: Token);
        Assert.Equal(JobState.Running, status.Job.State);
        await bob.StopJobAsync(new StopJobRequest { JobId = bobJob.JobId }, cancellationToken: Token);
        await server.Client(TestServer.Admin).StopJobAsync(new StopJobRequest { JobId = aliceJob.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Expiry_ClientCertificateExpiresDuringFollow_StreamEndsWithinTheIntervalOthersGoOn()
    {
        var interval = TimeSpan.FromSeconds(1);
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Tls:ReloadCheckInterval"] = interval.ToString(),
        }, Token);
        using var ca = CertificateAuthority.Load(server.Pki.CaCertificate, server.Pki.CaKey);
        using var shortLived = ca.IssueClient(new ClientIdentity(TestServer.Alice, Roles.User), new CertificateOptions { NotAfter = DateTimeOffset.UtcNow.AddSeconds(6) });
        var expiry = shortLived.NotAfter.ToUniversalTime();
        var alice = new Protocol.V1.JobWorker.JobWorkerClient(server.Channel(shortLived));
        var job = await server.StartTestProcessAsync(TestServer.Alice, "ticker", "50", "sleep", "60");
        using var follow = alice.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        await ReadTicksAsync(follow, 2);
        Assert.True(DateTime.UtcNow < expiry, "the follow must start before the certificate expires");

        // The handshake found it valid; the connection is closed once it is not, within the check interval.
        await AssertStreamCutAsync(follow, expiry, interval + TimeSpan.FromSeconds(3));
        Assert.True(DateTime.UtcNow >= expiry, $"the stream was cut at {DateTime.UtcNow:O}, before the certificate expired at {expiry:O}");
        var closed = await WaitForLogAsync(server, e => e.EventId.Id == ExpiredClosedEvent);
        Assert.Contains("of alice", closed.Message, StringComparison.Ordinal);
        Assert.Contains(shortLived.SerialNumber.TrimStart('0'), closed.Message, StringComparison.Ordinal);

        // A new handshake with it is refused; alice's long-lived certificate and bob go on.
        var again = new Health.HealthClient(server.Channel(shortLived));
        await Assert.ThrowsAsync<RpcException>(async () => await again.CheckAsync(new HealthCheckRequest(), cancellationToken: Token));
        await AssertServingAsync(server, TestServer.Alice);
        await AssertServingAsync(server, TestServer.Bob);
        await server.Client(TestServer.Alice).StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Revoke_ChangeTheDirectoryWatchCannotSee_AppliedByTheTimerWithinTheInterval()
    {
        // The configured path is a symlink into another directory: a file renamed into place there raises no event in
        // the watched directory, so only the periodic comparison can find it.
        var watched = Directory.CreateDirectory(Path.Combine(_directory, "watched")).FullName;
        var target = Directory.CreateDirectory(Path.Combine(_directory, "target")).FullName;
        var real = Path.Combine(target, "revoked-serials");
        await File.WriteAllTextAsync(real, "", Token);
        var configured = Path.Combine(watched, "revoked-serials");
        File.CreateSymbolicLink(configured, real);
        var interval = TimeSpan.FromSeconds(1);
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Tls:RevokedSerialsFile"] = configured,
            ["JobWorker:Tls:ReloadCheckInterval"] = interval.ToString(),
        }, Token);
        var bob = server.Client(TestServer.Bob);
        var job = await server.StartTestProcessAsync(TestServer.Bob, "ticker", "50", "sleep", "60");
        using var follow = bob.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        await ReadTicksAsync(follow, 2);
        using var bobCertificate = server.ClientCertificate(TestServer.Bob);

        await File.WriteAllTextAsync(real + ".new", "serial=" + bobCertificate.SerialNumber + "\n", Token);
        var written = DateTime.UtcNow;
        File.Move(real + ".new", real, overwrite: true);

        await AssertStreamCutAsync(follow, written, interval + TimeSpan.FromSeconds(3));
        await WaitForLogAsync(server, e => e.EventId.Id == RevokedClosedEvent && e.Message.Contains("of bob", StringComparison.Ordinal));
        await AssertServingAsync(server, TestServer.Alice);
        await server.Client(TestServer.Admin).StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Revoke_CrlOfTheCa_RefusesItsSerialsAndAForgedCrlIsIgnored()
    {
        var crlPath = Path.Combine(_directory, "ca.crl");
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?>
        {
            ["JobWorker:Tls:RevocationListFile"] = crlPath,
        }, prepareState: state =>
        {
            // The server's PKI exists by now (next to the state directory): start with an empty list of its CA.
            var pki = new DevPkiLayout(Path.Combine(Path.GetDirectoryName(state)!, "pki"));
            using var ca = CertificateAuthority.Load(pki.CaCertificate, pki.CaKey);
            File.WriteAllText(crlPath, Crl(ca, []));
        }, Token);
        using var serviceCa = CertificateAuthority.Load(server.Pki.CaCertificate, server.Pki.CaKey);
        using var bobCertificate = server.ClientCertificate(TestServer.Bob);
        await AssertServingAsync(server, TestServer.Bob);

        // Same issuer name, another key: the signature gives it away.
        using var forger = CertificateAuthority.Create();
        await File.WriteAllTextAsync(crlPath, Crl(forger, [bobCertificate]), Token);
        var warning = await WaitForLogAsync(server, e => e.EventId.Id == DenyListNotReloadedEvent);
        Assert.Contains("signature does not verify", warning.Message, StringComparison.Ordinal);
        await AssertServingAsync(server, TestServer.Bob);

        await File.WriteAllBytesAsync(crlPath, CrlDer(serviceCa, [bobCertificate]), Token);
        await WaitForLogAsync(server, e => e.EventId.Id == RefusedHandshakeEvent && e.Message.Contains("CN=bob", StringComparison.Ordinal)
            && e.Message.Contains("is revoked by '" + crlPath + "'", StringComparison.Ordinal), probe: async () =>
        {
            var health = new Health.HealthClient(server.Channel(server.ClientCertificate(TestServer.Bob)));
            try
            {
                await health.CheckAsync(new HealthCheckRequest(), cancellationToken: Token);
            }
            catch (RpcException)
            {
            }
        });
        await AssertServingAsync(server, TestServer.Alice);
    }

    private static string Crl(CertificateAuthority ca, IEnumerable<X509Certificate2> revoked)
        => PemEncoding.WriteString("X509 CRL", CrlDer(ca, revoked)) + "\n";

    private static byte[] CrlDer(CertificateAuthority ca, IEnumerable<X509Certificate2> revoked)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in revoked)
        {
            builder.AddEntry(certificate, DateTimeOffset.UtcNow.AddMinutes(-1), X509RevocationReason.KeyCompromise);
        }

        return builder.Build(ca.Certificate, BigInteger.One, DateTimeOffset.UtcNow.AddDays(1), HashAlgorithmName.SHA256);
    }

    /// <summary>Asserts that the server cuts the stream (not the job ending, not this test giving up) within <paramref name="bound"/> of <paramref name="since"/>.</summary>
    private static async Task AssertStreamCutAsync(AsyncServerStreamingCall<StreamOutputResponse> call, DateTime since, TimeSpan bound)
    {
        using var giveUp = CancellationTokenSource.CreateLinkedTokenSource(Token);
        giveUp.CancelAfter(bound + TimeSpan.FromSeconds(10));
        var ended = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext(giveUp.Token))
            {
            }
        });
        var took = DateTime.UtcNow - since;
        Assert.True(ended.StatusCode != StatusCode.Cancelled, $"the stream was not cut: still open after {took}");
        Assert.Contains(ended.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
        Assert.True(took < bound, $"the revoked client's stream ended only after {took} (bound {bound})");
    }

    private static async Task AssertServingAsync(TestServer server, string user)
    {
        var health = new Health.HealthClient(server.Channel(server.ClientCertificate(user)));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest(), cancellationToken: Token)).Status);
    }

    private static async Task ReadTicksAsync(AsyncServerStreamingCall<StreamOutputResponse> call, int count)
    {
        var ticks = 0;
        while (ticks < count)
        {
            Assert.True(await call.ResponseStream.MoveNext(Token), "the stream ended");
            var chunk = call.ResponseStream.Current.Chunk;
            ticks += chunk is null ? 0 : System.Text.Encoding.ASCII.GetString(chunk.Data.Span).Split("tick").Length - 1;
        }
    }

    /// <summary>The thumbprint of the certificate the server presents to a new connection.</summary>
    private static async Task<string> PresentedCertificateAsync(TestServer server, X509Certificate2 client, X509Certificate2 trust)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Address.Host, server.Address.Port, Token);
        await using var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ClientCertificates = [client],
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            RemoteCertificateValidationCallback = (_, presented, _, _) =>
                presented is X509Certificate2 s && CertificateTrust.Verify(s, trust, Oids.ServerAuthentication) is null,
        }, Token);
        return ((X509Certificate2)tls.RemoteCertificate!).Thumbprint;
    }

    private static async Task<string> WaitForServerCertificateAsync(TestServer server, X509Certificate2 client, X509Certificate2 trust, string thumbprint)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                var presented = await PresentedCertificateAsync(server, client, trust);
                if (presented == thumbprint)
                {
                    return presented;
                }
            }
            catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
            {
                // The server still presents the old certificate, which this client does not trust.
            }

            Assert.True(DateTime.UtcNow < deadline, "the server did not present the new certificate within 20 s");
            await Task.Delay(100, Token);
        }
    }

    private static async Task<(string Category, LogLevel Level, EventId EventId, string Message)> WaitForLogAsync(
        TestServer server, Func<(string Category, LogLevel Level, EventId EventId, string Message), bool> match, Func<Task>? probe = null)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            foreach (var entry in server.Logs.Entries)
            {
                if (match(entry))
                {
                    return entry;
                }
            }

            Assert.True(DateTime.UtcNow < deadline, "the server logged no matching entry within 20 s");
            if (probe is not null)
            {
                await probe();
            }

            await Task.Delay(100, Token);
        }
    }
}
