using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace JobWorker.Cli.Tests;

/// <summary>
/// <c>worker completion</c>: the scripts, and bash's completion function run for real (bash with the script sourced,
/// COMP_WORDS set as readline sets them) against a real server.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CompletionTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    [Theory(Timeout = 30_000)]
    [InlineData("bash", "complete -o default -F _worker_complete worker")]
    [InlineData("zsh", "compdef _worker worker")]
    [InlineData("fish", "complete -c worker")]
    public async Task Completion_Shell_PrintsAScriptThatCallsTheSuggestDirective(string shell, string registration)
    {
        var result = await WorkerProcess.RunAsync("completion", shell);

        WorkerResult.AssertExit(0, result);
        Assert.Contains(registration, result.Stdout, StringComparison.Ordinal);
        Assert.Contains("[suggest:", result.Stdout, StringComparison.Ordinal);
        Assert.Empty(result.Stderr);
    }

    [Fact(Timeout = 30_000)]
    public async Task Completion_UnknownShell_Exit2NamesTheShells()
    {
        var result = await WorkerProcess.RunAsync("completion", "tcsh");

        WorkerResult.AssertExit(2, result);
        Assert.Contains("'tcsh' is not a shell this command knows: use bash, zsh or fish", result.Stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task BashCompletion_ScriptIsValidBash()
    {
        var script = (await WorkerProcess.RunAsync("completion", "bash")).Stdout;

        var check = await BashAsync("bash", ["-n", "-c", script], TestContext.Current.CancellationToken);

        Assert.True(check.ExitCode == 0, check.Output);
    }

    [Fact(Timeout = 60_000)]
    public async Task BashCompletion_VerbAndContextNames_Offered()
    {
        var verbs = await CompleteAsync([WorkerProcess.BinaryPath, "con"]);
        var subverbs = await CompleteAsync([WorkerProcess.BinaryPath, "context", "u"]);

        Assert.Equal(["context"], verbs.Candidates);
        Assert.Equal(["use"], subverbs.Candidates);
    }

    [Fact(Timeout = 60_000)]
    public async Task BashCompletion_JobIdOfStatus_OffersTheServersJobs()
    {
        var start = await server.WorkerAsync(ServerFixture.Alice, "start", "--", ServerFixture.TestProcess, "sleep", "30");
        WorkerResult.AssertExit(0, start);
        var id = start.Stdout.Trim();
        try
        {
            var config = server.ConfigFor(ServerFixture.Alice);
            var all = await CompleteAsync([WorkerProcess.BinaryPath, "--config", config, "status", ""]);
            var prefixed = await CompleteAsync([WorkerProcess.BinaryPath, "--config", config, "stop", id[..6]]);
            var bobs = await CompleteAsync([WorkerProcess.BinaryPath, "--config", server.ConfigFor(ServerFixture.Bob), "logs", "-f", ""]);

            Assert.Contains(id, all.Candidates);
            Assert.Contains(id, prefixed.Candidates);
            Assert.All(prefixed.Candidates, c => Assert.StartsWith(id[..6], c, StringComparison.Ordinal));
            Assert.DoesNotContain(id, bobs.Candidates);
            Assert.Empty(all.Stderr);
        }
        finally
        {
            await server.WorkerAsync(ServerFixture.Alice, "stop", "--grace", "0s", id);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task BashCompletion_ServerNotAnswering_NoCandidatesNoOutputWithinTheBudget()
    {
        // Listening but never accepting: the TLS handshake never finishes, the worst case for a Tab.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var address = $"https://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}";
        var config = server.ConfigFor(ServerFixture.Alice);

        var clock = Stopwatch.StartNew();
        // A word no option starts with: only job ids could match it.
        var result = await CompleteAsync([WorkerProcess.BinaryPath, "--config", config, "--server", address, "status", "a"]);

        Assert.Empty(result.Candidates);
        Assert.Empty(result.Stderr);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"completion took {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Sources the bash script and calls its function as readline does, with COMP_WORDS and COMP_CWORD set.</summary>
    private static async Task<(string[] Candidates, string Stderr)> CompleteAsync(string[] words)
    {
        var script = (await WorkerProcess.RunAsync("completion", "bash")).Stdout;
        var quoted = string.Join(" ", words.Select(w => "'" + w.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var program = $"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={words.Length - 1}; _worker_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\"";
        var result = await BashAsync("bash", ["--norc", "--noprofile", "-c", program], TestContext.Current.CancellationToken);
        Assert.True(result.ExitCode == 0, result.Output + result.Stderr);
        return (result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries), result.Stderr);
    }

    private static async Task<(int ExitCode, string Output, string Stderr)> BashAsync(string bash, string[] args, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(bash) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("WORKER_", StringComparison.Ordinal)).ToList())
        {
            psi.Environment.Remove(name);
        }

        psi.Environment["XDG_CONFIG_HOME"] = Path.Combine(Path.GetTempPath(), "jobworker-cli-test-no-config");
        using var process = Process.Start(psi)!;
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            return (process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
