using System.Diagnostics;
using JobWorker.Server.Hosting;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>The server binary's own command line: help and version without root, and arguments the host would ignore refused.</summary>
public sealed class ServerCommandLineTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Theory(Timeout = 60_000)]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("-?")]
    public async Task Binary_HelpAsNobody_UsageSettingsAndDocsExitZero(string flag)
    {
        var (exitCode, stdout, stderr) = await RunAsync([flag], asNobody: true);

        Assert.True(exitCode == 0, $"exit code {exitCode}; stderr:\n{stderr}");
        Assert.Empty(stderr);
        Assert.StartsWith("usage: JobWorker.Server ", stdout, StringComparison.Ordinal);
        foreach (var (switchName, setting) in ServerApp.SwitchMappings)
        {
            Assert.Contains(switchName + " ", stdout, StringComparison.Ordinal);
            Assert.Contains(setting, stdout, StringComparison.Ordinal);
        }

        Assert.Contains("certs init", stdout, StringComparison.Ordinal);
        Assert.Contains("docs/operations.md", stdout, StringComparison.Ordinal);
        Assert.Contains("JOBWORKER__", stdout, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_VersionAsNobody_OneLineExitZero()
    {
        var (exitCode, stdout, stderr) = await RunAsync(["--version"], asNobody: true);

        Assert.Equal(0, exitCode);
        Assert.Empty(stderr);
        Assert.Matches(@"^JobWorker\.Server \d+\.\d+\.\d+\S* \(\.NET \d+[^)]*\)\n$", stdout);
    }

    [Theory(Timeout = 60_000)]
    [InlineData(new[] { "start" }, "JobWorker.Server: unexpected argument 'start': the only command is 'certs'")]
    [InlineData(new[] { "--lisen", "127.0.0.1:1" }, "JobWorker.Server: unknown option '--lisen'")]
    [InlineData(new[] { "--Listen", "127.0.0.1:1" }, "JobWorker.Server: unknown option '--Listen' (did you mean '--listen'?)")]
    [InlineData(new[] { "--MaxArguments=5" }, "JobWorker.Server: unknown option '--MaxArguments=5' (the setting is '--JobWorker:MaxArguments')")]
    [InlineData(new[] { "-v" }, "JobWorker.Server: unknown option '-v'")]
    [InlineData(new[] { "--listen", "127.0.0.1:1", "--grace" }, "JobWorker.Server: option '--grace' needs a value")]
    [InlineData(new[] { "--grace", "--listen", "127.0.0.1:1" }, "JobWorker.Server: option '--grace' needs a value")]
    public async Task Binary_ArgumentTheHostWouldIgnore_OneLineExitTwo(string[] args, string expected)
    {
        var (exitCode, stdout, stderr) = await RunAsync(args, asNobody: false);

        Assert.Equal(2, exitCode);
        Assert.Empty(stdout);
        Assert.Equal(expected + "; see 'JobWorker.Server --help'\n", stderr);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_CertsInit_SharedOptionsParsedAndApplied()
    {
        var directory = Directory.CreateTempSubdirectory("jobworker-srvtest-certs-");
        try
        {
            var pki = Path.Combine(directory.FullName, "pki");
            var (exitCode, stdout, stderr) = await RunAsync(["certs", "init", "--dir", pki, "--client", "carol:admin", "--server-name", "jobs.example", "--server-name", "192.0.2.7"], asNobody: false);

            Assert.True(exitCode == 0, $"exit code {exitCode}; stderr:\n{stderr}");
            Assert.Contains("carol (admin)", stdout, StringComparison.Ordinal);
            using var server = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificateFromFile(Path.Combine(pki, "server.crt"));
            var names = server.Extensions.OfType<System.Security.Cryptography.X509Certificates.X509SubjectAlternativeNameExtension>().Single();
            Assert.Contains("jobs.example", names.EnumerateDnsNames());
            Assert.Contains(System.Net.IPAddress.Parse("192.0.2.7"), names.EnumerateIPAddresses());
            Assert.False(File.Exists(Path.Combine(pki, "clients", "alice.crt")), "--client replaces the default clients");

            (exitCode, _, stderr) = await RunAsync(["certs", "init", "--dir", pki], asNobody: false);
            Assert.Equal(1, exitCode);
            Assert.Contains("already exists", stderr, StringComparison.Ordinal);

            (exitCode, _, stderr) = await RunAsync(["certs", "init", "--dir", pki, "--force", "--client", "carol:root"], asNobody: false);
            Assert.Equal(2, exitCode);
            Assert.Equal("JobWorker.Server certs init: --client: role 'root' is unknown; use 'admin' or 'user'\nRun 'JobWorker.Server certs init --help' for usage.\n", stderr);

            (exitCode, _, stderr) = await RunAsync(["certs", "init", "--dir", pki, "--froce"], asNobody: false);
            Assert.Equal(2, exitCode);
            Assert.StartsWith("JobWorker.Server certs init: Unrecognized command or argument '--froce'", stderr, StringComparison.Ordinal);

            (exitCode, stdout, _) = await RunAsync(["certs", "init", "--help"], asNobody: true);
            Assert.Equal(0, exitCode);
            foreach (var option in new[] { "--dir <DIR>", "--client <USER:ROLE>", "--server-name <NAME>", "--force" })
            {
                Assert.Contains(option, stdout, StringComparison.Ordinal);
            }
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void Handle_ConfigurationArgumentsInEveryFormTheHostReads_RunsTheServer()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exitCode = ServerCommandLine.Handle(
            [
                "--listen", "127.0.0.1:1", "--grace=00:00:01", "/state-dir", "/tmp/x", "--max-running-jobs", "-3",
                "--JobWorker:Retention:EndedJobs=", "--RateLimits:User:StartJobBurst", "5", "/JobWorker:MaxArguments", "9",
                "JobWorker:MaxEnvironmentVariables=3", "--environment", "Production", "--Logging:LogLevel:Default=Debug",
            ],
            output,
            error);

        Assert.Null(exitCode);
        Assert.Empty(error.ToString());
    }

    [Fact]
    public void FlagHelp_EverySwitch_Described()
    {
        Assert.All(ServerApp.SwitchMappings.Keys, flag => Assert.True(ServerCommandLine.FlagHelp.ContainsKey(flag), $"{flag} has no description in ServerCommandLine"));
    }

    private static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string[] args, bool asNobody)
    {
        var start = new ProcessStartInfo(asNobody ? "setpriv" : BinaryEnvironment.ServerBinary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (asNobody)
        {
            foreach (var arg in new[] { "--reuid=nobody", "--regid=nogroup", "--clear-groups", BinaryEnvironment.ServerBinary })
            {
                start.ArgumentList.Add(arg);
            }
        }

        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(Token);
        var stderr = process.StandardError.ReadToEndAsync(Token);
        await process.WaitForExitAsync(Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
