using System.Diagnostics;

namespace JobWorker.Bench.Cli;

/// <summary>Runs one process to completion and times it from just before spawn to just after exit.</summary>
internal sealed record ProcessTimer(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed)
{
    public static ProcessTimer Run(string path, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment)
    {
        var psi = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment)
        {
            psi.Environment[name] = value;
        }

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        var elapsed = clock.Elapsed;
        return new ProcessTimer(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult(), elapsed);
    }

    public ProcessTimer EnsureSuccess(string name)
        => ExitCode == 0 ? this : throw new InvalidOperationException($"{name} exited {ExitCode}: {Stderr}");
}
