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
}
