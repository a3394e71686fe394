using System.Net;
using System.Net.Sockets;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// The real binary with an address it cannot listen on: one line on stderr naming the address and its setting, exit
/// status 1, no stack trace and no log line.
/// </summary>
public sealed class ListenFailureTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 60_000)]
    public async Task Binary_PortInUse_OneLineNamingAddressAndSetting()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var output = await RunToExitAsync(extraArgs: [], listen: $"127.0.0.1:{port}");

        Assert.Equal($"JobWorker.Server: cannot listen on 127.0.0.1:{port} (JobWorker:Listen, --listen): the port is in use by another program (is another JobWorker.Server running?)", output);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_LocalhostPortInUse_OneLineNamingTheLocalhostAddress()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var output = await RunToExitAsync(extraArgs: [], listen: $"localhost:{port}");

        Assert.Equal($"JobWorker.Server: cannot listen on localhost:{port} (JobWorker:Listen, --listen): the port is in use by another program (is another JobWorker.Server running?)", output);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_MetricsPortInUse_NamesTheMetricsSetting()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;

        var output = await RunToExitAsync(extraArgs: ["--metrics-listen", $"127.0.0.1:{port}"]);

        Assert.Equal($"JobWorker.Server: cannot listen on 127.0.0.1:{port} (JobWorker:MetricsListen, --metrics-listen): the port is in use by another program (is another JobWorker.Server running?)", output);
    }

    [Fact(Timeout = 60_000)]
    public async Task Binary_AddressNotOfThisHost_OneLineNamingAddressAndSetting()
    {
        // TEST-NET-1 (RFC 5737): never assigned to a host, so bind fails with EADDRNOTAVAIL; nothing is sent.
        var output = await RunToExitAsync(extraArgs: [], listen: "192.0.2.1:50051");

        Assert.Equal("JobWorker.Server: cannot listen on 192.0.2.1:50051 (JobWorker:Listen, --listen): the address is not one of this host's", output);
    }

    [Theory(Timeout = 60_000)]
    [InlineData("localhost:0", "JobWorker.Server: invalid configuration: JobWorker:Listen: 'localhost:0': port 0 (any free port) needs one IP address; use 127.0.0.1:0 or [::1]:0")]
    [InlineData("no-such-host.invalid:50051", "JobWorker.Server: invalid configuration: JobWorker:Listen: 'no-such-host.invalid:50051' is not IP:port, [IPv6]:port or localhost:port")]
    public async Task Binary_UnbindableAddress_OneLineNamingTheSetting(string listen, string expected)
    {
        var output = await RunToExitAsync(extraArgs: [], listen: listen);

        Assert.Equal(expected, output);
    }

    private static async Task<string> RunToExitAsync(string[] extraArgs, string listen = "127.0.0.1:0")
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        using var process = env.Start(extraArgs: extraArgs, listen: listen);
        await process.WaitForExitAsync(Token);
        // Output collected asynchronously: the last line may follow the exit.
        process.WaitForExit();

        Assert.True(process.ExitCode == 1, $"exit code {process.ExitCode}; output:\n{env.Output}");
        return env.Output.Trim();
    }
}
