using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;

namespace JobWorker.Server.Tests;

/// <summary>
/// Races between a job's own exit, StopJob, RemoveJob and followers, over the real server, many rounds (run by
/// <c>make race_test</c>). Each round checks a consistent final state and that nothing leaked.
/// </summary>
[Trait("Category", "Stress")]
[Collection(nameof(LifecycleStressTests))]
[CollectionDefinition(nameof(LifecycleStressTests), DisableParallelization = true)]
public sealed class LifecycleStressTests : IAsyncLifetime
{
    private TestServer _server = null!;

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(cancellationToken: Token);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    /// <summary>What <c>worker run --rm</c> does: follow to the final status, then remove at once.</summary>
    [Fact(Timeout = 120_000)]
    public async Task RemoveJob_RightAfterFinalStatus_ManyCycles_NeverStillRunning()
    {
        const int Cycles = 400;
        const int Parallel = 4;
        var client = _server.Client(TestServer.Alice);
        var refused = 0;
        var next = 0;

        async Task WorkerAsync()
        {
            while (Interlocked.Increment(ref next) <= Cycles)
            {
                var started = await _server.StartTestProcessAsync(TestServer.Alice, "echo", "x");
                using var call = client.StreamOutput(new StreamOutputRequest { JobId = started.JobId, Follow = true }, cancellationToken: Token);
                var result = await StreamResult.ReadAsync(call, Token);
                Assert.Equal("x\n"u8.ToArray(), result.Data);
                Assert.NotNull(result.FinalStatus);
                try
                {
                    await client.RemoveJobAsync(new RemoveJobRequest { JobId = started.JobId }, cancellationToken: Token);
                }
                catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
                {
                    Interlocked.Increment(ref refused);
                    await Task.Delay(100, Token);
                    await client.RemoveJobAsync(new RemoveJobRequest { JobId = started.JobId }, cancellationToken: Token);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Parallel).Select(_ => Task.Run(WorkerAsync, Token)));

        Assert.Equal(0, refused);
        Assert.Empty(_server.Host.Runner.Jobs);
    }
}
