using System.Text;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// The server's RequiredIsolation through the real server: a request may add namespaces, never remove one, and every
/// RPC reports the isolation the job got.
/// </summary>
public sealed class IsolationPolicyTests : IAsyncLifetime
{
    private TestServer _server = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static Isolation Standard => new() { Pid = true, Mount = true, Ipc = true, Uts = true };

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(
        new Dictionary<string, string?> { ["JobWorker:DefaultIsolation"] = "None", ["JobWorker:RequiredIsolation"] = "Pid, Mount, Ipc, Uts" }, Token);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    public static TheoryData<string> Requests => new() { "unset", "empty", "network" };

    [Theory(Timeout = 30_000)]
    [MemberData(nameof(Requests))]
    public async Task StartJob_IsolationBelowRequired_RequiredAppliedAndShownByEveryRpc(string asked)
    {
        var client = _server.Client(TestServer.Alice);
        var request = new StartJobRequest { Command = "/bin/sh", Args = { "-c", "echo pid=$$" } };
        request.Isolation = asked switch
        {
            "empty" => new Isolation(), // explicitly off: what a client that wants none sends
            "network" => new Isolation { Network = true },
            _ => null,
        };
        var expected = Standard;
        expected.Network = asked == "network";

        var started = (await client.StartJobAsync(request, cancellationToken: Token)).Job;
        var output = await StreamResult.ReadAsync(client.StreamOutput(new StreamOutputRequest { JobId = started.JobId, Follow = true }, cancellationToken: Token), Token);
        var got = (await client.GetJobAsync(new GetJobRequest { JobId = started.JobId }, cancellationToken: Token)).Job;
        var listed = (await client.ListJobsAsync(new ListJobsRequest { View = JobView.Full }, cancellationToken: Token)).Jobs.Single(j => j.JobId == started.JobId);

        Assert.Equal("pid=2\n", Encoding.UTF8.GetString(output.Data));
        Assert.Equal(expected, started.Isolation);
        Assert.Equal(expected, got.Isolation);
        Assert.Equal(expected, listed.Isolation);
        Assert.Equal(expected, output.FinalStatus!.Isolation);
    }
}
