namespace JobWorker.Cli.Tests;

/// <summary>Many real <c>worker</c> processes at once against one server (run by <c>make race_test</c>).</summary>
[Trait("Category", "Stress")]
public sealed class StressTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Fact(Timeout = 120_000)]
    public async Task LogsFollow_ManyConcurrentFollowersOfALiveJob_AllGetIdenticalBytes()
    {
        const int Followers = 12;
        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--", "/bin/sh", "-c", "for i in $(seq 1 200); do echo line $i; head -c 1000 /dev/zero; sleep 0.01; done");
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();

        // Followers join while the job writes; each must get every byte from 0, exactly once, in order.
        var followers = Enumerable.Range(0, Followers).Select(_ => server.WorkerAsync(ServerFixture.Alice, "logs", "-f", id)).ToArray();
        var results = await Task.WhenAll(followers);
        var final = await server.WorkerAsync(ServerFixture.Alice, "logs", id);

        var expected = Enumerable.Range(1, 200).SelectMany(i => System.Text.Encoding.ASCII.GetBytes($"line {i}\n").Concat(new byte[1000])).ToArray();
        Assert.All(results, r => WorkerResult.AssertExit(0, r));
        Assert.Equal(expected, final.StdoutBytes);
        Assert.All(results, r => Assert.Equal(expected, r.StdoutBytes));
        WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "rm", id));
    }

    [Fact(Timeout = 120_000)]
    public async Task Run_ManyConcurrentRuns_EachExitsWithItsOwnCode()
    {
        var runs = Enumerable.Range(0, 12).Select(i => server.WorkerAsync(ServerFixture.Bob, "run", "--rm", "--", ServerFixture.TestProcess, "echo", $"run{i}", "exit", $"{i}")).ToArray();
        var results = await Task.WhenAll(runs);

        for (var i = 0; i < results.Length; i++)
        {
            WorkerResult.AssertExit(i, results[i]);
            Assert.Equal($"run{i}\n", results[i].Stdout);
        }
    }
}
