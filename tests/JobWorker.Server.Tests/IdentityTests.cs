using System.Globalization;
using Grpc.Core;
using JobWorker.Core.Jobs;
using JobWorker.Protocol.V1;
using JobWorker.Server.Configuration;
using JobWorker.Server.Tests.Infrastructure;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Server.Tests;

/// <summary>
/// Each certificate user's jobs run under a uid of their own (docs/design-identity.md): through the real server
/// with real client certificates, across a SIGKILL of the server binary.
/// </summary>
public sealed class IdentityTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    // A random slice of systemd's dynamic range, so that parallel test runs rarely hand out the same ids.
    private static string RandomRange(int ids)
    {
        var first = JobIdentityOptions.DefaultFirstId + (uint)Random.Shared.Next(0, 4000);
        return $"{first}-{first + (uint)ids - 1}";
    }

    [Fact(Timeout = 120_000)]
    public async Task Kill9_TwoUsers_RunUnderIdsOfTheirOwnThatTheNextServerKeeps()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var range = RandomRange(8);
        var server = env.Start(extraArgs: ["--id-range", range]);
        var address = await env.WaitForListeningAsync(server);
        var alice = env.Client(address, TestServer.Alice);
        var bob = env.Client(address, TestServer.Bob);
        var aliceSleeper = (await alice.StartJobAsync(Shell("echo ready; exec sleep 60"), cancellationToken: Token)).Job;
        Assert.Equal("ready\n", await ReadSomeAsync(alice, aliceSleeper.JobId));

        var aliceIds = await RunAsync(alice, "id -u; id -g; pwd");
        var bobIds = await RunAsync(bob, $"id -u; id -g; pwd; {TestServer.TestProcess} probe {aliceSleeper.Pid}");

        server.Kill(); // SIGKILL: the allocations must already be on disk
        await server.WaitForExitAsync(Token);
        server = env.Start(extraArgs: ["--id-range", range]);
        address = await env.WaitForListeningAsync(server);
        alice = env.Client(address, TestServer.Alice);
        bob = env.Client(address, TestServer.Bob);
        var bobAfter = await RunAsync(bob, "id -u; id -g; pwd");
        var aliceAfter = await RunAsync(alice, "id -u; id -g; pwd");

        var (first, last) = (uint.Parse(range.Split('-')[0], CultureInfo.InvariantCulture), uint.Parse(range.Split('-')[1], CultureInfo.InvariantCulture));
        var aliceUid = uint.Parse(aliceIds.Split('\n')[0], CultureInfo.InvariantCulture);
        var bobUid = uint.Parse(bobIds.Split('\n')[0], CultureInfo.InvariantCulture);
        Assert.InRange(aliceUid, first, last);
        Assert.InRange(bobUid, first, last);
        Assert.NotEqual(aliceUid, bobUid);
        Assert.Equal($"{aliceUid}\n{aliceUid}\n{env.UserDirectoryRoot}/alice\n", aliceIds);
        // bob's job cannot signal, read or trace alice's (invisible instead if the server isolates jobs in PID namespaces).
        Assert.Contains(
            bobIds,
            new[] { "kill0=EPERM environ=EACCES fd1=EACCES ptrace=EPERM kill9=EPERM", "kill0=ESRCH environ=ENOENT fd1=ENOENT ptrace=ESRCH kill9=ESRCH" }
                .Select(probe => $"{bobUid}\n{bobUid}\n{env.UserDirectoryRoot}/bob\n{probe}\n"));
        Assert.Equal(aliceIds, aliceAfter);
        Assert.Equal($"{bobUid}\n{bobUid}\n{env.UserDirectoryRoot}/bob\n", bobAfter);
        Assert.Equal(JobWorker.Protocol.V1.JobState.Running, (await alice.GetJobAsync(new GetJobRequest { JobId = aliceSleeper.JobId }, cancellationToken: Token)).Job.State);

        await alice.StopJobAsync(new StopJobRequest { JobId = aliceSleeper.JobId, Grace = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.Zero) }, cancellationToken: Token);
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Start_MappedAccountMissing_ServerRefusesToStartNamingIt()
    {
        await using var env = await BinaryEnvironment.CreateAsync();

        using var server = env.Start(extraArgs: ["--JobWorker:Identity:Accounts:alice=jobworker-no-such-user"]);
        await server.WaitForExitAsync(Token);

        Assert.Equal(1, server.ExitCode);
        Assert.Contains(
            "cannot start the job runner: Identity.Accounts: owner 'alice' is mapped to the account 'jobworker-no-such-user', which does not exist in /etc/passwd. Create the account or remove the mapping.",
            env.Output,
            StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task StartJob_IdRangeExhausted_ResourceExhaustedNamingTheRangeAndTheFix()
    {
        var range = RandomRange(1);
        await using var server = await TestServer.StartAsync(new Dictionary<string, string?> { ["JobWorker:Identity:IdRange"] = range }, Token);
        var alice = await server.StartTestProcessAsync(TestServer.Alice, "ids");

        var e = await Assert.ThrowsAsync<RpcException>(() => server.StartTestProcessAsync(TestServer.Bob, "ids"));

        Assert.NotEmpty(alice.JobId);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Equal(
            $"No id is left for owner 'bob': all 1 ids of Identity.FirstId..LastId ({range}) are allocated to other owners (1) or used by accounts. " +
            "Widen the range (docs/operations.md); ids are never shared between owners.",
            e.Status.Detail);
    }

    [Fact]
    public void Validate_InvalidIdentity_EverySettingNamed()
    {
        var errors = new ServerOptions { Identity = new IdentityOptions { Mode = (JobIdentityMode)7, IdRange = "65000", UserDirectoryRoot = "users" } }.Validate();
        var empty = new ServerOptions { Identity = new IdentityOptions { IdRange = "62000-61000" } }.Validate();
        var root = new ServerOptions { Identity = new IdentityOptions { IdRange = "0-1000" } }.Validate();

        Assert.Equal(
            [
                "JobWorker:Identity:Mode must be PerOwner or SharedAccount",
                "JobWorker:Identity:IdRange '65000' is not a range FIRST-LAST of ids (for example 61184-65519)",
                "JobWorker:Identity:UserDirectoryRoot must be an absolute path, not 'users'",
            ],
            errors);
        Assert.Equal("JobWorker:Identity:IdRange '62000-61000' is empty: 62000 is above 61000", Assert.Single(empty));
        Assert.StartsWith("JobWorker:Identity:IdRange '0-1000' includes uid 0 (root)", Assert.Single(root), StringComparison.Ordinal);
    }

    [Fact]
    public void ToJobIdentityOptions_Defaults_PerOwnerInSystemdsDynamicRange()
    {
        var options = new ServerOptions { Identity = new IdentityOptions { IdRange = "62000-62100", Accounts = { ["carol"] = "nobody" } } };

        var identity = options.Identity.ToJobIdentityOptions();

        Assert.Empty(options.Validate());
        Assert.Equal((JobIdentityMode.PerOwner, 62000u, 62100u, "nobody"), (identity.Mode, identity.FirstId, identity.LastId, identity.Accounts["carol"]));
        Assert.Equal(new JobIdentityOptions().UserDirectoryRoot, identity.UserDirectoryRoot);
        Assert.Equal((JobIdentityMode.PerOwner, JobIdentityOptions.DefaultFirstId, JobIdentityOptions.DefaultLastId), (new ServerOptions().Identity.ToJobIdentityOptions() is var d ? (d.Mode, d.FirstId, d.LastId) : default));
    }

    private static StartJobRequest Shell(string script) => new() { Command = "/bin/sh", Args = { "-c", script } };

    private static async Task<string> RunAsync(JobWorkerClient client, string script)
    {
        var job = (await client.StartJobAsync(Shell(script), cancellationToken: Token)).Job;
        var bytes = new List<byte>();
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = job.JobId, Follow = true }, cancellationToken: Token);
        while (await call.ResponseStream.MoveNext(Token))
        {
            if (call.ResponseStream.Current.Chunk is { } chunk)
            {
                bytes.AddRange(chunk.Data.Span);
            }
        }

        return System.Text.Encoding.UTF8.GetString([.. bytes]);
    }

    private static async Task<string> ReadSomeAsync(JobWorkerClient client, string id)
    {
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true }, cancellationToken: Token);
        Assert.True(await call.ResponseStream.MoveNext(Token));
        return System.Text.Encoding.UTF8.GetString(call.ResponseStream.Current.Chunk.Data.Span);
    }
}
