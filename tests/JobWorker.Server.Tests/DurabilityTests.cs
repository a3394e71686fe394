using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Grpc.Core;
using JobWorker.Protocol.V1;
using JobWorker.Server.Tests.Infrastructure;
using JobWorkerClient = JobWorker.Protocol.V1.JobWorker.JobWorkerClient;

namespace JobWorker.Server.Tests;

/// <summary>
/// Jobs outlive the server: the real server binary is killed with SIGKILL (or stopped with SIGTERM) while real jobs
/// run, and a new server on the same state directory and cgroup root must find every job with its exact output,
/// exit status and end time. See docs/design-durability.md.
/// </summary>
public sealed partial class DurabilityTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 240_000)]
    public async Task Kill9_FiftyMixedJobs_NewServerHasEveryJobWithItsExactLogAndStatus()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var data = RandomNumberGenerator.GetBytes(64 * 1024);
        var dataFile = Path.Combine(env.Directory, "data.bin");
        await File.WriteAllBytesAsync(dataFile, data, Token);
        File.SetUnixFileMode(dataFile, (UnixFileMode)0b110_100_100); // jobs run as nobody
        const int Loops = 25;

        // Jobs that must end while no server runs wait for this file, which the test creates after the SIGKILL.
        var goDirectory = Path.Combine(env.Directory, "go");
        Directory.CreateDirectory(goDirectory);
        File.SetUnixFileMode(goDirectory, (UnixFileMode)0b111_101_101);
        var go = Path.Combine(goDirectory, "now");
        var expectedWriterOutput = Enumerable.Repeat(data, Loops).SelectMany(d => d).ToArray();

        var server = env.Start();
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var writers = await StartManyAsync(client, 10, _ => $"for i in $(seq {Loops}); do cat {dataFile}; sleep 0.15; done");
        var sleepers = await StartManyAsync(client, 10, _ => "exec sleep 120");
        var exiters = await StartManyAsync(client, 10, i => $"while [ ! -e {go} ]; do sleep 0.05; done; exit {10 + i}");
        var signaled = await StartManyAsync(client, 10, _ => "exec sleep 120");
        var quick = await StartManyAsync(client, 10, i => $"echo quick {i}; exit {30 + i}");

        // Followers get part of each writer's output from the first server, then lose it.
        var received = new List<byte>[writers.Count];
        for (var i = 0; i < writers.Count; i++)
        {
            received[i] = await ReadSomeAsync(client, writers[i].JobId);
        }

        server.Kill(); // SIGKILL
        await server.WaitForExitAsync(Token);
        var crashedAt = DateTimeOffset.UtcNow;
        await File.WriteAllTextAsync(go, "", Token);

        // While no server runs: jobs keep running, some end by themselves, some are signalled from outside.
        for (var i = 0; i < signaled.Count; i++)
        {
            Assert.Equal(0, Kill(signaled[i].Pid, i % 2 == 0 ? 15 : 10));
        }

        await Task.Delay(TimeSpan.FromSeconds(3), Token);
        var restartedAt = DateTimeOffset.UtcNow;
        server = env.Start();
        client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);

        // Every follower resumes where it was and gets exactly the job's output: no gap, no duplicate.
        for (var i = 0; i < writers.Count; i++)
        {
            received[i].AddRange(await ReadAllAsync(client, writers[i].JobId, received[i].Count));
            Assert.Equal(Sha256(expectedWriterOutput), Sha256([.. received[i]]));
            var status = await GetAsync(client, writers[i].JobId);
            Assert.Equal(JobState.Exited, status.State);
            Assert.Equal(0, status.ExitCode);
        }

        for (var i = 0; i < exiters.Count; i++)
        {
            var status = await GetAsync(client, exiters[i].JobId);
            Assert.Equal(JobState.Exited, status.State);
            Assert.Equal(10 + i, status.ExitCode);
            var ended = status.EndedAt.ToDateTimeOffset();
            Assert.True(ended > crashedAt && ended < restartedAt, $"ended {ended:O}: not while the server was down ({crashedAt:O}..{restartedAt:O})");
            Assert.Equal(TestServer.Alice, status.Owner);
        }

        for (var i = 0; i < signaled.Count; i++)
        {
            var status = await GetAsync(client, signaled[i].JobId);
            Assert.Equal(JobState.Signaled, status.State);
            Assert.Equal(i % 2 == 0 ? 15 : 10, status.Signal);
        }

        for (var i = 0; i < quick.Count; i++)
        {
            var status = await GetAsync(client, quick[i].JobId);
            Assert.Equal(30 + i, status.ExitCode);
            Assert.Equal($"quick {i}\n", System.Text.Encoding.ASCII.GetString([.. await ReadAllAsync(client, quick[i].JobId, 0)]));
        }

        // The sleepers were never touched: still running, and stop works on them.
        foreach (var sleeper in sleepers)
        {
            Assert.Equal(JobState.Running, (await GetAsync(client, sleeper.JobId)).State);
            Assert.True(Directory.Exists($"/proc/{sleeper.Pid}"));
        }

        AssertEveryProcessBelongsToARunningJob(env, sleepers.Select(s => s.JobId).ToHashSet());
        foreach (var sleeper in sleepers)
        {
            var stopped = await client.StopJobAsync(new StopJobRequest { JobId = sleeper.JobId }, cancellationToken: Token);
            Assert.Equal(JobState.Stopped, stopped.Job.State);
        }

        var list = await client.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token);
        Assert.Equal(50, list.Jobs.Count);
        Assert.All(list.Jobs, job => Assert.NotEqual(JobState.Running, job.State));
        AssertEveryProcessBelongsToARunningJob(env, new HashSet<string>());
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 120_000)]
    public async Task Sigterm_Default_JobsKeepRunningAndTheNextServerReattaches()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        // The job runs until the test creates this file, after the next server has re-attached to it.
        var goDirectory = Path.Combine(env.Directory, "go");
        Directory.CreateDirectory(goDirectory);
        File.SetUnixFileMode(goDirectory, (UnixFileMode)0b111_101_101);
        var go = Path.Combine(goDirectory, "now");
        var server = env.Start();
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var job = (await client.StartJobAsync(Shell($"echo before; while [ ! -e {go} ]; do sleep 0.05; done; echo after; exit 5"), cancellationToken: Token)).Job;

        Assert.Equal(0, Kill(server.Id, 15));
        await server.WaitForExitAsync(Token);
        Assert.Equal(0, server.ExitCode);
        Assert.True(Directory.Exists($"/proc/{job.Pid}"), "SIGTERM must leave jobs running by default");

        server = env.Start();
        client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        Assert.Equal(JobState.Running, (await GetAsync(client, job.JobId)).State);
        await File.WriteAllTextAsync(go, "", Token);
        var output = await ReadAllAsync(client, job.JobId, 0);
        var status = await GetAsync(client, job.JobId);

        Assert.Equal("before\nafter\n", System.Text.Encoding.ASCII.GetString([.. output]));
        Assert.Equal(JobState.Exited, status.State);
        Assert.Equal(5, status.ExitCode);
        Assert.Contains("Re-attached to job", env.Output, StringComparison.Ordinal);
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task Kill9_SupervisorsStartedAheadExitWithTheServer()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var server = env.Start();
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        _ = (await client.StartJobAsync(Shell("exit 0"), cancellationToken: Token)).Job; // the pool is filled by now or soon
        var idle = new List<int>();
        for (var i = 0; i < 200 && idle.Count == 0; i++)
        {
            idle = IdleSupervisors(server.Id);
            await Task.Delay(20, Token);
        }

        Assert.NotEmpty(idle);
        server.Kill(); // SIGKILL
        await server.WaitForExitAsync(Token);

        // Their stdin closed with the server: they exit (a zombie until their new parent reaps them counts as gone).
        for (var i = 0; i < 250 && idle.Any(IsLiveSupervisor); i++)
        {
            await Task.Delay(20, Token);
        }

        Assert.DoesNotContain(idle, IsLiveSupervisor);
    }

    [Fact(Timeout = 90_000)]
    public async Task Kill9_UsersStartMadeReady_ItsSupervisorExitsWithTheServerAndTheNextServerRemovesItsGroups()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var server = env.Start();
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var ended = (await client.StartJobAsync(Shell("exit 7"), cancellationToken: Token)).Job;

        // After alice's start: her next job's groups, recorded in the state directory, with an idle supervisor inside.
        var ahead = Path.Combine(env.Directory, "state", "ahead");
        string? group = null;
        var supervisor = 0;
        for (var i = 0; i < 250 && supervisor == 0; i++)
        {
            foreach (var record in Directory.Exists(ahead) ? Directory.GetFiles(ahead) : [])
            {
                group = Path.Combine(env.CgroupRoot, "users", TestServer.Alice, Path.GetFileName(record));
                var procs = Path.Combine(group, "shim", "cgroup.procs");
                if (File.Exists(procs) && File.ReadAllText(procs).Split('\n', StringSplitOptions.RemoveEmptyEntries) is [var pid])
                {
                    supervisor = int.Parse(pid, CultureInfo.InvariantCulture);
                }
            }

            await Task.Delay(20, Token);
        }

        Assert.True(supervisor > 0, "no start was made ready for alice");
        Assert.Contains(supervisor, IdleSupervisors(server.Id));
        server.Kill(); // SIGKILL
        await server.WaitForExitAsync(Token);

        // Its stdin closed with the server: it exits; the empty groups wait for the next server.
        for (var i = 0; i < 250 && IsLiveSupervisor(supervisor); i++)
        {
            await Task.Delay(20, Token);
        }

        Assert.False(IsLiveSupervisor(supervisor));
        Assert.True(Directory.Exists(group));

        server = env.Start();
        client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        await env.WaitForLineAsync(RemovedGroupAhead());
        Assert.False(Directory.Exists(group), "the groups made ahead were left");
        Assert.Empty(Directory.GetFiles(ahead));
        var status = await GetAsync(client, ended.JobId);
        Assert.Equal(7, status.ExitCode);
        Assert.Empty(JobGroups(env.CgroupRoot));
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [GeneratedRegex(@"Removed cgroup \S+ made ahead of a start by an earlier server and left behind \(it held no job\)")]
    private static partial Regex RemovedGroupAhead();

    [Fact(Timeout = 90_000)]
    public async Task WithoutClone3_PooledSupervisorMovesItselfIntoTheJobsGroupAndJobsRunStopAndReattach()
    {
        // As on kernels before 5.3 and under container seccomp profiles that refuse clone3: the server, its supervisors
        // and every job inherit a filter under which clone3 fails with ENOSYS, so each falls back to clone and a move
        // through cgroup.procs.
        await using var env = await BinaryEnvironment.CreateAsync();
        string[] withoutClone3 = [TestServer.TestProcess, "without-clone3"];
        var server = env.Start(launcher: withoutClone3);
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        // The whole pool (two), so the start takes one of these and none started after this look.
        var idle = new List<int>();
        for (var i = 0; i < 750 && idle.Count < 2; i++)
        {
            idle = IdleSupervisors(server.Id);
            await Task.Delay(20, Token);
        }

        Assert.Equal(2, idle.Count);
        var job = (await client.StartJobAsync(Shell("grep -E '^Seccomp(_filters)?:' /proc/self/status; cat /proc/self/cgroup; echo started; exec sleep 60"), cancellationToken: Token)).Job;
        var output = await ReadUntilAsync(client, job.JobId, "started\n");
        Assert.Contains("Seccomp:\t2\n", output, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^0::/.+/job$", output);

        // Its supervisor is one of the pooled ones, moved into the job's shim group (with clone3 it would be a copy).
        var status = Path.Combine(env.Directory, "state", "jobs", Guid.Parse(job.JobId).ToString("N"), "shim.status");
        var shimPid = -1;
        for (var i = 0; i < 250 && shimPid < 0; i++)
        {
            var line = File.Exists(status) ? File.ReadAllLines(status).FirstOrDefault(l => l.StartsWith("shim_pid=", StringComparison.Ordinal)) : null;
            shimPid = line is null ? -1 : int.Parse(line["shim_pid=".Length..], System.Globalization.CultureInfo.InvariantCulture);
            await Task.Delay(shimPid < 0 ? 20 : 0, Token);
        }

        Assert.Contains(shimPid, idle);
        Assert.Matches(@"(?m)^0::/.+/shim$", File.ReadAllText($"/proc/{shimPid}/cgroup"));

        // Killed and started again under the same filter: the job is re-attached, and stop ends it.
        server.Kill();
        await server.WaitForExitAsync(Token);
        server = env.Start(launcher: withoutClone3);
        client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        Assert.Equal(JobState.Running, (await client.GetJobAsync(new GetJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job.State);
        var stopped = (await client.StopJobAsync(new StopJobRequest { JobId = job.JobId }, cancellationToken: Token)).Job;
        Assert.Equal(JobState.Stopped, stopped.State);
        var another = (await client.StartJobAsync(Shell("echo again"), cancellationToken: Token)).Job;
        Assert.Equal("again\n", await ReadUntilAsync(client, another.JobId, "again\n"));
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task SupervisorKilledBeforeItsReport_StartFailsNamingItAndLeavesNothingBehind()
    {
        // Every supervisor is killed (SIGSYS) right before it starts the job: a pooled supervisor's copy dies before its
        // report, and the pooled one, waiting for that report, reports the copy's death instead.
        await using var env = await BinaryEnvironment.CreateAsync();
        var server = env.Start(launcher: [TestServer.TestProcess, "killed-at-pipe-size"]);
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        for (var i = 0; i < 750 && IdleSupervisors(server.Id).Count < 2; i++)
        {
            await Task.Delay(20, Token);
        }

        for (var i = 0; i < 3; i++)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(Shell("echo never"), cancellationToken: Token));
            Assert.Equal(StatusCode.Internal, refused.StatusCode);
            Assert.StartsWith("the server could not set up the job (SupervisorLost)", refused.Status.Detail, StringComparison.Ordinal);
        }

        // The log names the copy that died and how (the pid is known only from the pooled supervisor's report).
        await env.WaitForLineAsync(PooledCopyLost());

        // Nothing stays behind: no job, no record, no job group, and no child but idle supervisors (no zombie).
        Assert.Empty(await ListAllAsync(client));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(env.Directory, "state", "jobs")));
        Assert.False(Directory.Exists(Path.Combine(env.CgroupRoot, "users", TestServer.Alice)), "alice's user group is left behind");
        var others = new List<int>();
        for (var i = 0; i < 250; i++)
        {
            others = [.. Children(server.Id).Except(IdleSupervisors(server.Id))];
            if (others.Count == 0)
            {
                break;
            }

            await Task.Delay(20, Token);
        }

        var leftBehind = others.Select(pid => ReadProc(pid, "stat")).Where(stat => stat.Length > 0).ToList();
        Assert.True(leftBehind.Count == 0, "children of the server other than idle supervisors: " + string.Join(" | ", leftBehind));
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 60_000)]
    public async Task SupervisorStartedDirectlyKilledBeforeItsReport_StartFailsNamingItAndLeavesNothingBehind()
    {
        // No supervisors started ahead: each start executes its own, and the same filter kills it right before it
        // starts the job. The server reads the end of its report pipe instead of a report.
        await using var env = await BinaryEnvironment.CreateAsync();
        var server = env.Start(launcher: [TestServer.TestProcess, "killed-at-pipe-size"], extraArgs: ["--JobWorker:SupervisorPoolSize", "0"]);
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);

        for (var i = 0; i < 2; i++)
        {
            var refused = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(Shell("echo never"), cancellationToken: Token));
            Assert.Equal(StatusCode.Internal, refused.StatusCode);
            Assert.StartsWith("the server could not set up the job (SupervisorLost)", refused.Status.Detail, StringComparison.Ordinal);
        }

        await env.WaitForLineAsync(DirectSupervisorLost());
        Assert.Empty(IdleSupervisors(server.Id));
        Assert.Empty(await ListAllAsync(client));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(env.Directory, "state", "jobs")));
        Assert.False(Directory.Exists(Path.Combine(env.CgroupRoot, "users", TestServer.Alice)), "alice's user group is left behind");
        var children = new List<int>();
        for (var i = 0; i < 250; i++)
        {
            children = [.. Children(server.Id)];
            if (children.Count == 0)
            {
                break;
            }

            await Task.Delay(20, Token);
        }

        Assert.True(children.Count == 0, "children of the server: " + string.Join(" | ", children.Select(pid => ReadProc(pid, "stat"))));
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [GeneratedRegex(@"The job's supervisor ended before it reported whether the job started \(signal 31\); the start was undone")]
    private static partial Regex DirectSupervisorLost();

    [GeneratedRegex(@"supervisor \(pid \d+\) ended before it reported whether the job started \(signal 31\); the start was undone")]
    private static partial Regex PooledCopyLost();

    /// <summary>The server's children that are live supervisors waiting for a job (<c>jobworker-shim pool</c>).</summary>
    private static List<int> IdleSupervisors(int server)
        => [.. Children(server).Where(pid => IsLiveSupervisor(pid) && ReadProc(pid, "cmdline") == "jobworker-shim\0pool\0")];

    /// <summary>A /proc file of a process, or "" once the process is gone.</summary>
    private static string ReadProc(int pid, string file)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/{file}");
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>Follows a job's output until it contains <paramref name="text"/>; returns what was read.</summary>
    private static async Task<string> ReadUntilAsync(JobWorkerClient client, string id, string text)
    {
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true }, cancellationToken: Token);
        var read = new System.Text.StringBuilder();
        while (!read.ToString().Contains(text, StringComparison.Ordinal) && await call.ResponseStream.MoveNext(Token))
        {
            read.Append(call.ResponseStream.Current.Chunk?.Data.ToStringUtf8());
        }

        return read.ToString();
    }

    [Fact(Timeout = 120_000)]
    public async Task Kill9_RetriedStartWithTheSameRequestId_ReturnsTheJobTheFirstServerStarted()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var server = env.Start();
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var request = Shell("exec sleep 60");
        request.RequestId = "retry-after-crash-1";
        var first = (await client.StartJobAsync(request, cancellationToken: Token)).Job;

        server.Kill(); // the client never learns whether its start arrived, and retries against the next server
        await server.WaitForExitAsync(Token);
        server = env.Start();
        client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
        var again = (await client.StartJobAsync(request, cancellationToken: Token)).Job;
        var reused = Shell("exec sleep 61");
        reused.RequestId = request.RequestId;
        var e = await Assert.ThrowsAsync<RpcException>(async () => await client.StartJobAsync(reused, cancellationToken: Token));

        Assert.Equal(first.JobId, again.JobId);
        Assert.Single((await client.ListJobsAsync(new ListJobsRequest(), cancellationToken: Token)).Jobs);
        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 240_000)]
    public async Task Kill9_AtRandomMomentsDuringStartsStopsAndRemoves_NoRecordLiesAndNoProcessWithoutRecord()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        var random = new Random(20261129);
        for (var round = 0; round < 6; round++)
        {
            var server = env.Start();
            var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
            using var stopLoad = new CancellationTokenSource();
            var load = Enumerable.Range(0, 3).Select(worker => LoadAsync(client, worker, stopLoad.Token)).ToArray();

            await Task.Delay(random.Next(50, 800), Token);
            server.Kill(); // SIGKILL at a random moment of the load
            await server.WaitForExitAsync(Token);
            await stopLoad.CancelAsync();
            await Task.WhenAll(load);

            server = env.Start();
            client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);
            var jobs = await ListAllAsync(client);
            var running = new HashSet<string>(StringComparer.Ordinal);
            foreach (var job in jobs)
            {
                var groupPath = Path.Combine(env.CgroupRoot, "users", job.Owner, Guid.Parse(job.JobId).ToString("N"), "job");
                if (job.State == JobState.Running)
                {
                    // A job said to run has its group, and its main process in it (a start cut short is not "running").
                    running.Add(job.JobId);
                    Assert.True(Directory.Exists(groupPath), $"round {round}: running job {job.JobId} has no cgroup");
                    Assert.Contains(job.Pid.ToString(CultureInfo.InvariantCulture), await File.ReadAllTextAsync(Path.Combine(groupPath, "cgroup.procs"), Token), StringComparison.Ordinal);
                }
                else
                {
                    Assert.NotNull(job.EndedAt);
                    Assert.True(job.Pid == 0 || !Directory.Exists($"/proc/{job.Pid}") || !File.ReadAllText($"/proc/{job.Pid}/cgroup").Contains(Guid.Parse(job.JobId).ToString("N"), StringComparison.Ordinal), $"round {round}: ended job {job.JobId} still has its process {job.Pid}");
                }
            }

            // Give jobs whose end is being reconciled a moment, then: no process runs without a running job's record.
            await Task.Delay(500, Token);
            AssertEveryProcessBelongsToARunningJob(env, running, allowEnded: jobs.Where(j => j.State != JobState.Running).Select(j => j.JobId).ToHashSet());

            foreach (var job in jobs.Where(j => j.State == JobState.Running))
            {
                await client.StopJobAsync(new StopJobRequest { JobId = job.JobId, Grace = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.Zero) }, cancellationToken: Token);
            }

            server.Kill();
            await server.WaitForExitAsync(Token);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task SecondServer_SameStateDirectoryOrCgroupRoot_RefusesNamingTheHolder()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        await using var other = await BinaryEnvironment.CreateAsync();
        var first = env.Start();
        await env.WaitForListeningAsync(first);

        using var sameState = other.Start(extraArgs: ["--state-dir", Path.Combine(env.Directory, "state")]);
        await sameState.WaitForExitAsync(Token);
        Assert.Equal(1, sameState.ExitCode);
        Assert.Contains($"pid {first.Id}", other.Output, StringComparison.Ordinal);

        using var sameRoot = other.Start(extraArgs: ["--cgroup-root", env.CgroupRoot]);
        await sameRoot.WaitForExitAsync(Token);
        Assert.Equal(1, sameRoot.ExitCode);
        Assert.Contains($"pid {first.Id}", other.Output, StringComparison.Ordinal);
        Assert.Contains(env.CgroupRoot, other.Output, StringComparison.Ordinal);

        first.Kill();
        await first.WaitForExitAsync(Token);
    }

    [Fact(Timeout = 120_000)]
    public async Task StartJob_ServerOutOfFileDescriptors_ResourceExhaustedNamingTheLimit()
    {
        await using var env = await BinaryEnvironment.CreateAsync();
        // The runner keeps 512 descriptors for the server itself (the runtime keeps each loaded assembly open): a
        // limit of 700 leaves room for about 188 jobs.
        var server = env.Start(openFileLimit: 700, extraArgs: ["--max-running-jobs", "0"]);
        var client = env.Client(await env.WaitForListeningAsync(server), TestServer.Alice);

        // Each running job holds one descriptor in the server (its supervisor's pidfd): 700 cannot hold 600 jobs.
        RpcException? refused = null;
        for (var i = 0; i < 600 && refused is null; i++)
        {
            try
            {
                await client.StartJobAsync(Shell("exec sleep 60"), cancellationToken: Token);
            }
            catch (RpcException e)
            {
                refused = e;
            }
        }

        Assert.NotNull(refused);
        Assert.True(refused.StatusCode == StatusCode.ResourceExhausted, $"{refused.Status}; server output: {env.Output}");
        Assert.Contains("RLIMIT_NOFILE", refused.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("RLIMIT_NOFILE is 700", refused.Status.Detail, StringComparison.Ordinal);
        Assert.InRange((await ListAllAsync(client)).Count, 150, 700 - 512);

        // The server keeps serving: the jobs it has are listed and nothing half-started remains.
        var jobs = await ListAllAsync(client);
        Assert.All(jobs, job => Assert.Equal(JobState.Running, job.State));
        var ahead = Path.Combine(env.Directory, "state", "ahead");
        Assert.Equal(jobs.Count, JobGroups(env.CgroupRoot).Count(g => !File.Exists(Path.Combine(ahead, Path.GetFileName(g)))));
        server.Kill();
        await server.WaitForExitAsync(Token);
    }

    /// <summary>Starts, stops and removes jobs as fast as it can until cancelled; every error is expected (the server dies).</summary>
    private static async Task LoadAsync(JobWorkerClient client, int worker, CancellationToken cancellationToken)
    {
        var mine = new List<string>();
        var random = new Random(worker);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                switch (random.Next(4))
                {
                    case 0 or 1:
                        var script = random.Next(2) == 0 ? "exec sleep 60" : "echo hi; exit 3";
                        mine.Add((await client.StartJobAsync(Shell(script), cancellationToken: cancellationToken)).Job.JobId);
                        break;
                    case 2 when mine.Count > 0:
                        await client.StopJobAsync(new StopJobRequest { JobId = mine[random.Next(mine.Count)], Grace = Google.Protobuf.WellKnownTypes.Duration.FromTimeSpan(TimeSpan.FromMilliseconds(100)) }, cancellationToken: cancellationToken);
                        break;
                    case 3 when mine.Count > 0:
                        var id = mine[random.Next(mine.Count)];
                        try
                        {
                            await client.RemoveJobAsync(new RemoveJobRequest { JobId = id }, cancellationToken: cancellationToken);
                            mine.Remove(id);
                        }
                        catch (RpcException e) when (e.StatusCode == StatusCode.FailedPrecondition)
                        {
                            // Still running.
                        }

                        break;
                }
            }
        }
        catch (RpcException)
        {
            // The server was killed under the call.
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Every process under the cgroup root is a supervisor or a process of a job in <paramref name="running"/>
    /// (or of a job in <paramref name="allowEnded"/> whose leftovers the server is still killing), or the idle
    /// supervisor of a user's start made ready, in a group recorded as made ahead (<c>&lt;state&gt;/ahead</c>).
    /// </summary>
    private static void AssertEveryProcessBelongsToARunningJob(BinaryEnvironment env, IReadOnlySet<string> running, IReadOnlySet<string>? allowEnded = null)
    {
        var root = env.CgroupRoot;
        var ahead = Path.Combine(env.Directory, "state", "ahead");
        var madeAhead = Directory.Exists(ahead) ? Directory.GetFiles(ahead).Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal) : [];
        var ids = running.Select(id => Guid.Parse(id).ToString("N")).ToHashSet(StringComparer.Ordinal);
        var ended = (allowEnded ?? new HashSet<string>()).Select(id => Guid.Parse(id).ToString("N")).ToHashSet(StringComparer.Ordinal);
        if (!Directory.Exists(root))
        {
            return;
        }

        // Nothing but the users' groups under the root, each holding its jobs' groups.
        Assert.All(Directory.EnumerateDirectories(root), dir => Assert.Equal("users", Path.GetFileName(dir)));
        foreach (var group in JobGroups(root))
        {
            var name = Path.GetFileName(group);
            foreach (var procs in Directory.EnumerateFiles(group, "cgroup.procs", SearchOption.AllDirectories))
            {
                var pids = File.ReadAllText(procs).Split('\n', StringSplitOptions.RemoveEmptyEntries);
                if (pids.Length > 0 && !ids.Contains(name) && !madeAhead.Contains(name))
                {
                    Assert.True(ended.Contains(name) && WaitUntilEmpty(procs), $"processes {string.Join(',', pids)} in {procs} belong to no running job");
                }
            }
        }
    }

    /// <summary>Every job's group: <c>&lt;root&gt;/users/&lt;user&gt;/&lt;id&gt;</c>.</summary>
    private static IEnumerable<string> JobGroups(string root)
    {
        var users = Path.Combine(root, "users");
        return Directory.Exists(users) ? Directory.EnumerateDirectories(users).SelectMany(Directory.EnumerateDirectories) : [];
    }

    private static bool WaitUntilEmpty(string procs)
    {
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (!File.Exists(procs) || File.ReadAllText(procs).Trim().Length == 0)
            {
                return true;
            }

            Thread.Sleep(20);
        }

        return false;
    }

    /// <summary>Every job the caller may see, page by page.</summary>
    private static async Task<List<JobStatus>> ListAllAsync(JobWorkerClient client)
    {
        var all = new List<JobStatus>();
        var request = new ListJobsRequest { PageSize = 1000 };
        do
        {
            var page = await client.ListJobsAsync(request, cancellationToken: Token);
            all.AddRange(page.Jobs);
            request.PageToken = page.NextPageToken;
        }
        while (request.PageToken.Length > 0);

        return all;
    }

    private static StartJobRequest Shell(string script) => new() { Command = "/bin/sh", Args = { "-c", script } };

    private static async Task<List<JobStatus>> StartManyAsync(JobWorkerClient client, int count, Func<int, string> script)
    {
        var jobs = new List<JobStatus>();
        for (var i = 0; i < count; i++)
        {
            jobs.Add((await client.StartJobAsync(Shell(script(i)), cancellationToken: Token)).Job);
        }

        return jobs;
    }

    private static async Task<JobStatus> GetAsync(JobWorkerClient client, string id)
    {
        // A job that ended while no server ran is finished by the new server right after it starts.
        for (var attempt = 0; ; attempt++)
        {
            var status = (await client.GetJobAsync(new GetJobRequest { JobId = id }, cancellationToken: Token)).Job;
            if (status.State != JobState.Running || attempt > 100)
            {
                return status;
            }

            await Task.Delay(50, Token);
        }
    }

    /// <summary>Reads at least one chunk of a running job's output (follow), then leaves.</summary>
    private static async Task<List<byte>> ReadSomeAsync(JobWorkerClient client, string id)
    {
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true }, cancellationToken: Token);
        Assert.True(await call.ResponseStream.MoveNext(Token));
        return [.. call.ResponseStream.Current.Chunk.Data.Span];
    }

    /// <summary>Follows a job to its end from <paramref name="offset"/>, checking that every chunk continues the last.</summary>
    private static async Task<List<byte>> ReadAllAsync(JobWorkerClient client, string id, long offset)
    {
        var bytes = new List<byte>();
        using var call = client.StreamOutput(new StreamOutputRequest { JobId = id, Follow = true, FromOffset = offset }, cancellationToken: Token);
        while (await call.ResponseStream.MoveNext(Token))
        {
            if (call.ResponseStream.Current.Chunk is { } chunk)
            {
                Assert.Equal(offset + bytes.Count, chunk.Offset);
                bytes.AddRange(chunk.Data.Span);
            }
        }

        return bytes;
    }

    private static int Kill(int pid, int signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        return kill.ExitCode;
    }

    private static IEnumerable<int> Children(int pid)
        => Directory.EnumerateDirectories($"/proc/{pid}/task")
            .SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(child => int.Parse(child, System.Globalization.CultureInfo.InvariantCulture));

    private static bool IsLiveSupervisor(int pid)
    {
        var stat = ReadProc(pid, "stat");
        return stat.Contains("(jobworker-shim)", StringComparison.Ordinal) && stat[(stat.LastIndexOf(')') + 2)..][0] != 'Z';
    }

    private static string Sha256(byte[] data) => Convert.ToHexString(SHA256.HashData(data));
}
