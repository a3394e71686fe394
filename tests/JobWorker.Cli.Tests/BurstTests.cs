using System.Diagnostics;
using System.Text;

namespace JobWorker.Cli.Tests;

[CollectionDefinition(nameof(RunsAlone), DisableParallelization = true)]
public sealed class RunsAlone;

/// <summary>
/// A burst of real <c>worker</c> processes started at once against a freshly started server: every one must
/// connect (riding out the CPU contention of its siblings' start-up and TLS handshakes) and get every byte.
/// Runs alone: a hundred processes starting on a small machine would starve other tests' timeouts.
/// </summary>
[Trait("Category", "Stress")]
[Collection(nameof(RunsAlone))]
public sealed class BurstTests(ServerFixture server, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private const int Followers = 100;
    private const int Lines = 300;

    [Fact(Timeout = 300_000)]
    public async Task LogsFollow_HundredProcessesStartedAtOnce_AllGetIdenticalFullBytesAndExitZero()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        var expected = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(1, Lines).Select(i => $"line {i} {new string('x', 100)}\n")));
        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--", "/bin/sh", "-c", $"for i in $(seq 1 {Lines}); do echo \"line $i $(printf 'x%.0s' $(seq 1 100))\"; sleep 0.01; done");
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();

        try
        {
            // All processes are started before any is awaited: they start, handshake and follow at the same time.
            var clock = Stopwatch.StartNew();
            var processes = Enumerable.Range(0, Followers)
                .Select(_ => WorkerProcess.Start(["--config", server.ConfigFor(ServerFixture.Alice), "logs", "-f", id]))
                .ToList();
            var results = await Task.WhenAll(processes.Select(async p =>
            {
                using (p)
                {
                    p.StandardInput.Close();
                    var result = await WorkerProcess.CollectAsync(p, cancellationToken);
                    return (Result: result, Elapsed: clock.Elapsed);
                }
            }));

            var failed = results.Where(r => r.Result.ExitCode != 0 || !r.Result.StdoutBytes.AsSpan().SequenceEqual(expected)).ToList();
            output.WriteLine($"{Followers} followers in {clock.Elapsed.TotalSeconds:F1} s; {failed.Count} failed");
            foreach (var (result, elapsed) in failed.Take(10))
            {
                output.WriteLine($"  after {elapsed.TotalSeconds:F1} s: exit {result.ExitCode}, {result.StdoutBytes.Length} bytes, stderr: {result.Stderr.Trim()}");
            }

            Assert.All(results, r => WorkerResult.AssertExit(0, r.Result));
            Assert.All(results, r => Assert.Equal(expected, r.Result.StdoutBytes));
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "1s", id);
            WorkerResult.AssertExit(0, await server.WorkerAsync(ServerFixture.Alice, "rm", id));
        }
    }
}
