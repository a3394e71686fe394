using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using JobWorker.Pki;

namespace JobWorker.Cli.Tests;

/// <summary>
/// The real built <c>worker</c> binary, run as a child process, against a real server over mutual TLS
/// (<see cref="ServerFixture"/>), with real jobs (tests/JobWorker.TestProcess and coreutils).
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class EndToEndTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static readonly string Tp = ServerFixture.TestProcess;

    [Fact(Timeout = 60_000)]
    public async Task Start_Job_PrintsOnlyTheIdThenStatusJsonDescribesIt()
    {
        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "echo", "hello", "sleep", "30");
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.TrimEnd('\n');
        Assert.Equal(id + "\n", start.Stdout);
        Assert.DoesNotContain(" ", id, StringComparison.Ordinal);

        try
        {
            var status = await server.WorkerAsync(ServerFixture.Alice, "status", "--json", id);

            WorkerResult.AssertExit(0, status);
            using var json = JsonDocument.Parse(status.Stdout);
            Assert.Equal(id, json.RootElement.GetProperty("id").GetString());
            Assert.Equal("running", json.RootElement.GetProperty("state").GetString());
            Assert.Equal(ServerFixture.Alice, json.RootElement.GetProperty("owner").GetString());
            Assert.Equal(Tp, json.RootElement.GetProperty("command").GetString());
            Assert.Equal(["echo", "hello", "sleep", "30"], json.RootElement.GetProperty("args").EnumerateArray().Select(e => e.GetString()));
            Assert.True(json.RootElement.GetProperty("pid").GetInt32() > 0);
        }
        finally
        {
            WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "1s", id));
        }

        var human = await server.WorkerAsync(ServerFixture.Alice, "status", id);
        WorkerResult.AssertExit(0, human);
        Assert.Matches(@"State:\s+(stopped|signaled) \(SIGTERM\)", human.Stdout);
        Assert.Matches(@"Command:\s+\S+jobworker-testprocess echo hello sleep 30", human.Stdout);
        WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "rm", id));
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_Json_PrintsTheNewJobAsJson()
    {
        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--json", "--", Tp, "exit", "0");

        WorkerResult.AssertExit(0, start);
        using var json = JsonDocument.Parse(start.Stdout);
        var id = json.RootElement.GetProperty("id").GetString()!;
        await WaitEndedAsync(ServerFixture.Alice, id);
        WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "rm", id));
    }

    [Theory(Timeout = 60_000)]
    [InlineData("exit 0", 0)]
    [InlineData("exit 3", 3)]
    [InlineData("exit 255", 255)]
    [InlineData("signal 9", 137)]
    [InlineData("signal 15", 143)]
    public async Task Run_Job_ExitsWithTheJobsExitCodeOr128PlusSignal(string steps, int expected)
    {
        var result = await server.WorkerAsync(ServerFixture.Alice, ["run", "--rm", "--", Tp, "echo", "out", .. steps.Split(' ')]);

        Assert.Equal(expected, result.ExitCode);
        Assert.Equal("out\n", result.Stdout);
    }

    [Fact(Timeout = 60_000)]
    public async Task Run_CommandWithDashArgumentsWithoutSeparator_RunsIt()
    {
        var result = await server.WorkerAsync(ServerFixture.Alice, "run", "--rm", "--env", "GREETING=hi there", "/bin/sh", "-c", "echo \"$GREETING\" >&2; echo -n out");

        WorkerResult.AssertExit(0, result);
        Assert.Equal("hi there\nout", result.Stdout);
    }

    [Fact(Timeout = 60_000)]
    public async Task Run_EnvironmentAndWorkingDirectory_ReachTheJob()
    {
        var result = await server.WorkerAsync(ServerFixture.Alice, "run", "--rm", "-e", "FOO=a=b", "--cwd", "/usr", "--", Tp, "env", "FOO", "cwd");

        WorkerResult.AssertExit(0, result);
        Assert.Equal("FOO=a=b\ncwd=/usr\n", result.Stdout);
    }

    [Fact(Timeout = 60_000)]
    public async Task Logs_BinaryOutput_RoundTripsByteIdentical()
    {
        // Every byte value, NULs, CR/LF and invalid UTF-8, then 1 MiB of random bytes.
        using var dir = new TempDirectory();
        File.SetUnixFileMode(dir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        var expected = Enumerable.Range(0, 256).Select(i => (byte)i).Concat(Encoding.ASCII.GetBytes("\r\n\0\xff\xfe")).ToArray();
        var random = new byte[1 << 20];
        Random.Shared.NextBytes(random);
        expected = [.. expected, .. random];
        var file = Path.Combine(dir.Path, "blob.bin");
        await File.WriteAllBytesAsync(file, expected, TestContext.Current.CancellationToken);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--", "/bin/cat", file);
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();

        var followed = await server.WorkerAsync(ServerFixture.Alice, "logs", "-f", id);
        var again = await server.WorkerAsync(ServerFixture.Alice, "logs", id);
        var fromOffset = await server.WorkerAsync(ServerFixture.Alice, "logs", "--from-offset", "1000", id);

        WorkerResult.AssertExit(0, followed);
        Assert.Equal(expected, followed.StdoutBytes);
        Assert.Equal(expected, again.StdoutBytes);
        Assert.Equal(expected[1000..], fromOffset.StdoutBytes);
        WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "rm", id));
    }

    [Fact(Timeout = 60_000)]
    public async Task Run_BinaryOutput_RoundTripsByteIdentical()
    {
        var result = await server.WorkerAsync(ServerFixture.Alice, "run", "--rm", "--", "/bin/sh", "-c", "printf '\\000\\001\\377\\376\\r\\n'; head -c 300000 /dev/zero");

        WorkerResult.AssertExit(0, result);
        Assert.Equal([0, 1, 0xff, 0xfe, (byte)'\r', (byte)'\n', .. new byte[300000]], result.StdoutBytes);
    }

    [Fact(Timeout = 60_000)]
    public async Task Logs_Tail_WritesTheLastLines()
    {
        var result = await server.WorkerAsync(ServerFixture.Alice, "start", "--", "/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done");
        WorkerResult.AssertExit(0, result);
        var id = result.Stdout.Trim();
        await WaitEndedAsync(ServerFixture.Alice, id);

        var tail = await server.WorkerAsync(ServerFixture.Alice, "logs", "--tail", "2", id);

        WorkerResult.AssertExit(0, tail);
        Assert.Equal("line4\nline5\n", tail.Stdout);
        WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "rm", id));
    }

    [Fact(Timeout = 60_000)]
    public async Task List_JsonAndTable_ShowOwnJobsOnlyAndAdminSeesAll()
    {
        var alice = (await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "sleep", "30")).Stdout.Trim();
        var bob = (await server.WorkerAsync(ServerFixture.Bob, "start", "--", Tp, "sleep", "30")).Stdout.Trim();
        try
        {
            var aliceList = await server.WorkerAsync(ServerFixture.Alice, "list", "--json");
            var adminList = await server.WorkerAsync(ServerFixture.Admin, "list", "--json");
            var table = await server.WorkerAsync(ServerFixture.Alice, "list");

            WorkerResult.AssertExit(0, aliceList);
            using var aliceJson = JsonDocument.Parse(aliceList.Stdout);
            var aliceIds = aliceJson.RootElement.EnumerateArray().Select(j => j.GetProperty("id").GetString()).ToList();
            Assert.Contains(alice, aliceIds);
            Assert.DoesNotContain(bob, aliceIds);
            using var adminJson = JsonDocument.Parse(adminList.Stdout);
            var adminIds = adminJson.RootElement.EnumerateArray().Select(j => j.GetProperty("id").GetString()).ToList();
            Assert.Contains(alice, adminIds);
            Assert.Contains(bob, adminIds);
            WorkerResult.AssertExit(0, table);
            Assert.StartsWith("ID ", table.Stdout, StringComparison.Ordinal);
            Assert.Contains("COMMAND", table.Stdout, StringComparison.Ordinal);
            Assert.Contains(alice, table.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", alice);
            await server.WorkerAsync(ServerFixture.Bob, "stop", "--grace", "0s", bob);
            await server.WorkerAsync(ServerFixture.Alice, "rm", alice);
            await server.WorkerAsync(ServerFixture.Bob, "rm", bob);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Status_AnotherUsersJob_Exit3NotFound()
    {
        var id = (await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "exit", "0")).Stdout.Trim();
        try
        {
            var result = await server.WorkerAsync(ServerFixture.Bob, "status", id);

            WorkerResult.AssertExit(3, result);
            Assert.Contains("not found", result.Stderr, StringComparison.OrdinalIgnoreCase);
            Assert.Single(result.Stderr.Trim().Split('\n'));
            Assert.Empty(result.StdoutBytes);
        }
        finally
        {
            await WaitEndedAsync(ServerFixture.Alice, id);
            await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Rm_RunningJob_Exit1ThenStopAndRmSucceedThenStatusExit3()
    {
        var id = (await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "sleep", "30")).Stdout.Trim();

        var early = await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        var stop = await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "500ms", id);
        var rm = await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        var gone = await server.WorkerAsync(ServerFixture.Alice, "status", id);

        WorkerResult.AssertExit(1, early);
        Assert.Contains("running", early.Stderr, StringComparison.OrdinalIgnoreCase);
        WorkerResult.AssertExit(0, stop);
        WorkerResult.AssertExit(0, rm);
        WorkerResult.AssertExit(3, gone);
    }

    [Fact(Timeout = 60_000)]
    public async Task Stop_JobIgnoringSigterm_KilledAfterGrace()
    {
        var id = (await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "ignore-sigterm", "sleep", "30")).Stdout.Trim();

        var stop = await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "300ms", id);
        var status = await server.WorkerAsync(ServerFixture.Alice, "status", "--json", id);

        WorkerResult.AssertExit(0, stop);
        using var json = JsonDocument.Parse(status.Stdout);
        Assert.Equal(9, json.RootElement.GetProperty("signal").GetInt32());
        await server.WorkerAsync(ServerFixture.Alice, "rm", id);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_ServerRejectsRequest_Exit1WithTheServersReason()
    {
        var result = await server.WorkerAsync(ServerFixture.Alice, "start", "--cwd", "relative/dir", "--", Tp, "exit", "0");

        WorkerResult.AssertExit(1, result);
        Assert.Empty(result.StdoutBytes);
        Assert.Single(result.Stderr.Trim().Split('\n'));
        Assert.Contains("working", result.Stderr, StringComparison.OrdinalIgnoreCase);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_ProgramNotFound_Exit1SaysSo()
    {
        var result = await server.WorkerAsync(ServerFixture.Alice, "start", "--", "/nonexistent/program");

        WorkerResult.AssertExit(1, result);
        Assert.Contains("/nonexistent/program", result.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task ListJson_EndedJob_TheSameObjectAsStatusJson()
    {
        // 'worker list --json' asks for the full view: limits, isolation and usage as 'status' shows them.
        var run = await server.WorkerAsync(ServerFixture.Alice, "run", "--", Tp, "echo", "list-json-full");
        WorkerResult.AssertExit(0, run);
        var list = await server.WorkerAsync(ServerFixture.Alice, "list", "--json");
        WorkerResult.AssertExit(0, list);
        var entry = System.Text.Json.Nodes.JsonNode.Parse(list.Stdout)!.AsArray()
            .Single(j => j!["args"]!.AsArray().Any(a => a!.GetValue<string>() == "list-json-full"))!;
        var id = entry["id"]!.GetValue<string>();
        var status = await server.WorkerAsync(ServerFixture.Alice, "status", "--json", id);
        WorkerResult.AssertExit(0, status);

        Assert.NotNull(entry["usage"]);
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse(status.Stdout), entry), $"list: {entry.ToJsonString()}\nstatus: {status.Stdout}");
        await server.WorkerAsync(ServerFixture.Alice, "rm", id);
    }

    [Fact(Timeout = 60_000)]
    public async Task Run_Sigint_StopsTheJobAndExits130()
    {
        using var process = WorkerProcess.Start(["--config", server.ConfigFor(ServerFixture.Alice), "run", "--", Tp, "echo", "ready", "sleep", "30"]);
        process.StandardInput.Close();
        Assert.Equal("ready", await process.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken));

        Assert.Equal(0, Kill(process.Id, 2));
        var result = await WorkerProcess.CollectAsync(process, TestContext.Current.CancellationToken);

        WorkerResult.AssertExit(130, result);
        var list = await server.WorkerAsync(ServerFixture.Alice, "list", "--json");
        using var json = JsonDocument.Parse(list.Stdout);
        var job = json.RootElement.EnumerateArray().Single(j => j.GetProperty("command").GetString() == Tp
            && j.GetProperty("args").EnumerateArray().Select(a => a.GetString()).SequenceEqual(["echo", "ready", "sleep", "30"]));
        Assert.NotEqual("running", job.GetProperty("state").GetString());
        await server.WorkerAsync(ServerFixture.Alice, "rm", job.GetProperty("id").GetString()!);
    }

    [Fact(Timeout = 60_000)]
    public async Task LogsFollow_Sigterm_Exits143()
    {
        var id = (await server.WorkerAsync(ServerFixture.Alice, "start", "--", Tp, "echo", "ready", "sleep", "30")).Stdout.Trim();
        try
        {
            using var process = WorkerProcess.Start(["--config", server.ConfigFor(ServerFixture.Alice), "logs", "-f", id]);
            process.StandardInput.Close();
            Assert.Equal("ready", await process.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken));

            Assert.Equal(0, Kill(process.Id, 15));
            var result = await WorkerProcess.CollectAsync(process, TestContext.Current.CancellationToken);

            WorkerResult.AssertExit(143, result);
            Assert.Equal(string.Empty, result.Stderr);
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", id);
            await server.WorkerAsync(ServerFixture.Alice, "rm", id);
        }
    }

    [Theory(Timeout = 60_000)]
    [InlineData("list")]
    [InlineData("logs -f 9a25a9ee-4802-40da-8afb-542c9bfc77f1")] // a refusal is a verdict, not an outage to reconnect through
    public async Task Verb_ClientCertificateFromAnotherCa_Exit4SaysTheCertificateWasRefused(string commandLine)
    {
        using var other = new TempDirectory();
        var foreign = DevPki.Create(other.Path, [new ClientIdentity(ServerFixture.Alice, Roles.User)]);
        var config = Path.Combine(other.Path, "client.json");
        ServerFixture.WriteConfig(config, server.Address, foreign.ClientCertificate(ServerFixture.Alice), foreign.ClientKey(ServerFixture.Alice), server.Pki.CaCertificate);

        var result = await WorkerProcess.RunAsync(["--config", config, .. commandLine.Split(' ')], null, TestContext.Current.CancellationToken);

        WorkerResult.AssertExit(4, result);
        Assert.Contains("refused the client certificate", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }

    [Fact(Timeout = 60_000)]
    public async Task List_ExpiredClientCertificate_Exit4SaysWhenItExpired()
    {
        // Valid from the CA's own start (a few minutes ago) to a minute ago.
        await AssertRefusedForValidityAsync(
            ca => (new DateTimeOffset(ca.NotBefore.ToUniversalTime()), DateTimeOffset.UtcNow.AddMinutes(-1)),
            issued => $"(it expired at {issued.NotAfter.ToUniversalTime():u}; renew it)");
    }

    [Fact(Timeout = 60_000)]
    public async Task List_ClientCertificateNotValidYet_Exit4SaysFromWhenAndToCheckTheClock()
    {
        // Valid from an hour from now: as a client whose clock runs behind would see a fresh certificate.
        await AssertRefusedForValidityAsync(
            _ => (DateTimeOffset.UtcNow.AddHours(1), DateTimeOffset.UtcNow.AddDays(1)),
            issued => $"(it is not valid before {issued.NotBefore.ToUniversalTime():u}; check this machine's clock)");
    }

    /// <summary>
    /// <c>worker list</c> with a certificate for alice from the server's CA, valid over the window chosen from the CA's
    /// certificate: refused (exit 4) in one line that names the certificate and says why.
    /// </summary>
    private async Task AssertRefusedForValidityAsync(
        Func<X509Certificate2, (DateTimeOffset NotBefore, DateTimeOffset NotAfter)> validity,
        Func<X509Certificate2, string> why)
    {
        using var dir = new TempDirectory();
        using var ca = CertificateAuthority.Load(server.Pki.CaCertificate, server.Pki.CaKey);
        var (notBefore, notAfter) = validity(ca.Certificate);
        using var issued = ca.IssueClient(
            new ClientIdentity(ServerFixture.Alice, Roles.User),
            new CertificateOptions { NotBefore = notBefore, NotAfter = notAfter });

        var (result, cert) = await ListWithAsync(dir, "alice", issued);

        WorkerResult.AssertExit(4, result);
        var expected = $"refused the client certificate {cert} {why(issued)}";
        Assert.True(result.Stderr.Contains(expected, StringComparison.Ordinal), $"expected '{expected}' in: {result.Stderr}");
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }

    [Fact(Timeout = 60_000)]
    public async Task List_CertificateOfTheCaWithoutARole_Exit4RefusedAtTheHandshake()
    {
        // Signed by the server's CA but with no role the server knows: it is refused during the TLS handshake, before
        // any call, so the client cannot tell it from a server that went away: 4, with the certificate named.
        using var dir = new TempDirectory();
        using var ca = CertificateAuthority.Load(server.Pki.CaCertificate, server.Pki.CaKey);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("O=JobWorker, OU=nobody, CN=mallory", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca.Certificate, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        using var issued = request.Create(ca.Certificate, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), [0x01, 0x02, 0x03, 0x04]);
        using var withKey = issued.CopyWithPrivateKey(key);
        var (result, cert) = await ListWithAsync(dir, "mallory", withKey);

        WorkerResult.AssertExit(4, result);
        Assert.Contains($"refused the client certificate {cert}", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }

    /// <summary>Writes <paramref name="certificate"/> and its key as NAME.crt/.key in <paramref name="dir"/> and runs <c>worker list</c> with them.</summary>
    private async Task<(WorkerResult Result, string CertificatePath)> ListWithAsync(TempDirectory dir, string name, X509Certificate2 certificate)
    {
        var cert = Path.Combine(dir.Path, name + ".crt");
        var key = Path.Combine(dir.Path, name + ".key");
        PemFiles.WriteCertificate(certificate, cert);
        PemFiles.WritePrivateKey(certificate, key);
        var result = await WorkerProcess.RunAsync(["--server", server.Address.ToString(), "--cert", cert, "--key", key, "--ca", server.Pki.CaCertificate, "list"], null, TestContext.Current.CancellationToken);
        return (result, cert);
    }

    [Fact(Timeout = 60_000)]
    public async Task List_ServerCertificateFromAnotherCa_Exit4SaysTheServerIsNotTrusted()
    {
        using var other = new TempDirectory();
        var foreign = DevPki.Create(other.Path, []);
        var config = Path.Combine(other.Path, "client.json");
        ServerFixture.WriteConfig(config, server.Address, server.Pki.ClientCertificate(ServerFixture.Alice), server.Pki.ClientKey(ServerFixture.Alice), foreign.CaCertificate);

        var result = await WorkerProcess.RunAsync(["--config", config, "list"], null, TestContext.Current.CancellationToken);

        WorkerResult.AssertExit(4, result);
        Assert.Contains("not signed by the CA", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Trim().Split('\n'));
    }

    [Fact(Timeout = 60_000)]
    public async Task Status_FlagsOverrideEnvironmentOverrideConfig()
    {
        // A config pointing nowhere, environment pointing nowhere else, and flags with the real server: flags win.
        using var dir = new TempDirectory();
        var config = Path.Combine(dir.Path, "client.json");
        ServerFixture.WriteConfig(config, new Uri("https://127.0.0.1:1"), server.Pki.ClientCertificate(ServerFixture.Alice), server.Pki.ClientKey(ServerFixture.Alice), server.Pki.CaCertificate);
        var env = new Dictionary<string, string> { ["WORKER_CONFIG"] = config, ["WORKER_SERVER"] = "https://127.0.0.1:2" };

        var viaEnv = await WorkerProcess.RunAsync(["list"], env, TestContext.Current.CancellationToken);
        var viaFlag = await WorkerProcess.RunAsync(["--server", server.Address.ToString(), "list"], env, TestContext.Current.CancellationToken);

        WorkerResult.AssertExit(4, viaEnv);
        Assert.Contains("127.0.0.1:2", viaEnv.Stderr, StringComparison.Ordinal);
        WorkerResult.AssertExit(0, viaFlag);
    }

    private async Task WaitEndedAsync(string user, string id)
    {
        // `logs -f` returns once the job has ended: no polling.
        var result = await server.WorkerAsync(user, "logs", "-f", id);
        WorkerResult.AssertExit(0, result);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
