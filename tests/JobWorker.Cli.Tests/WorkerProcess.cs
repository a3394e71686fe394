using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace JobWorker.Cli.Tests;

/// <summary>What one run of the real <c>worker</c> binary produced.</summary>
public sealed record WorkerResult(int ExitCode, byte[] StdoutBytes, string Stderr)
{
    public string Stdout => Encoding.UTF8.GetString(StdoutBytes);

    public override string ToString() => $"exit {ExitCode}; stdout: {(Stdout.Length > 2000 ? Stdout[..2000] + "…" : Stdout)}; stderr: {Stderr}";

    /// <summary>Asserts the exit code and shows what the process printed when it differs.</summary>
    public static void AssertExit(int expected, WorkerResult result)
        => Assert.True(result.ExitCode == expected, $"expected exit {expected}, got {result}");
}

/// <summary>
/// Runs the real built <c>worker</c> (src/JobWorker.Cli's build output, or $WORKER_BIN, e.g. the
/// NativeAOT build) as a child process with a clean environment: no config file or WORKER_* variables
/// leak in from the machine unless a test passes them.
/// </summary>
internal static class WorkerProcess
{
    public static string BinaryPath
    {
        get
        {
            var fromEnv = Environment.GetEnvironmentVariable("WORKER_BIN");
            return !string.IsNullOrEmpty(fromEnv) ? fromEnv : BuiltBinary;
        }
    }

    /// <summary>src/JobWorker.Cli's build output for the same configuration as the tests (set by the test project).</summary>
    private static string BuiltBinary { get; } = typeof(WorkerProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "WorkerBinary").Value!;

    public static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(BinaryPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("WORKER_", StringComparison.Ordinal) && k != "WORKER_DEBUG").ToList())
        {
            psi.Environment.Remove(name);
        }

        // No config file is found by default: tests pass everything explicitly.
        psi.Environment["XDG_CONFIG_HOME"] = Path.Combine(Path.GetTempPath(), "jobworker-cli-test-no-config");
        if (environment is not null)
        {
            foreach (var (name, value) in environment)
            {
                psi.Environment[name] = value;
            }
        }

        return Process.Start(psi) ?? throw new InvalidOperationException($"could not start {BinaryPath}");
    }

    public static async Task<WorkerResult> RunAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment, CancellationToken cancellationToken)
    {
        using var process = Start(args, environment);
        process.StandardInput.Close();
        return await CollectAsync(process, cancellationToken);
    }

    public static Task<WorkerResult> RunAsync(params string[] args)
        => RunAsync(args, null, TestContext.Current.CancellationToken);

    public static async Task<WorkerResult> CollectAsync(Process process, CancellationToken cancellationToken)
    {
        try
        {
            var stdout = new MemoryStream();
            var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout, cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            await process.WaitForExitAsync(cancellationToken);
            await copy;
            return new WorkerResult(process.ExitCode, stdout.ToArray(), await stderr);
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
