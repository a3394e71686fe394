namespace JobWorker.Cli.Tests;

/// <summary><c>worker run --isolate</c> through the real server: the job gets its namespaces, and <c>run</c> reports it as without them.</summary>
[Trait("Category", "Integration")]
public sealed class IsolationEndToEndTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Theory(Timeout = 60_000)]
    [InlineData("all", "exit 3", 3)]
    [InlineData("pid,mount", "kill -SEGV $$", 139)]
    [InlineData("none", "kill -SEGV $$", 139)]
    public async Task Run_Isolated_JobSeesOwnNamespacesAndExitStatusIsUnchanged(string isolate, string end, int expected)
    {
        var script = $"echo pid=$$; ls -A /tmp | wc -l; {end}";

        var result = await server.WorkerAsync(ServerFixture.Alice, "run", "--rm", "--isolate", isolate, "--", "/bin/sh", "-c", script);

        Assert.Equal(expected, result.ExitCode);
        if (isolate == "none")
        {
            Assert.DoesNotContain("pid=2\n", result.Stdout, StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal("pid=2\n0\n", result.Stdout);
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task Status_RequestBelowTheServersMinimum_ShowsTheIsolationTheJobGot()
    {
        var token = TestContext.Current.CancellationToken;
        await using var required = new RestartableServer();
        required.Arguments.AddRange(["--required-isolation", "Pid, Mount, Ipc, Uts"]);
        await required.StartAsync(token);

        var start = await required.WorkerAsync("start", "--isolate", "none", "--", "/bin/sh", "-c", "echo pid=$$");
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();
        var logs = await required.WorkerAsync("logs", "-f", id);
        var status = await required.WorkerAsync("status", id);
        var json = await required.WorkerAsync("status", "--json", id);

        Assert.Equal("pid=2\n", logs.Stdout);
        Assert.Contains("Isolation: pid,mount,ipc,uts\n", status.Stdout, StringComparison.Ordinal);
        using var document = System.Text.Json.JsonDocument.Parse(json.Stdout);
        var isolation = document.RootElement.GetProperty("isolation");
        Assert.Equal(
            "pid=True mount=True network=False ipc=True uts=True",
            string.Join(' ', new[] { "pid", "mount", "network", "ipc", "uts" }.Select(n => $"{n}={isolation.GetProperty(n).GetBoolean()}")));
    }
}
