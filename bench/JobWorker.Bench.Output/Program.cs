using System.Globalization;
using JobWorker.Bench.Output;

// Output benchmarks (issue 3). Run as root from the repository root:
//   dotnet run -c Release --project bench/JobWorker.Bench.Output -- [drain] [latency] [--mib 2048] [--rounds 3]
//       [--messages 300] [--interval-ms 10] [--followers 1,100,1000] [--dir /var/tmp]
// Prints Markdown tables for docs/benchmarks-output.md.
var options = BenchOptions.Parse(args);
Console.WriteLine($"# JobWorker output benchmarks, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, .NET {Environment.Version}");
Console.WriteLine($"command: dotnet run -c Release --project bench/JobWorker.Bench.Output -- {string.Join(' ', args)}");
Console.WriteLine();

if (options.Drain)
{
    await DrainBenchmark.RunAsync(options);
}

if (options.Latency)
{
    await LatencyBenchmark.RunAsync(options);
}

internal sealed record BenchOptions(
    bool Drain, bool Latency, int Mib, int Rounds, int Messages, int IntervalMilliseconds, int[] Followers, string Directory)
{
    public static BenchOptions Parse(string[] args)
    {
        bool drain = args.Contains("drain"), latency = args.Contains("latency");
        if (!drain && !latency)
        {
            drain = latency = true;
        }

        string Value(string name, string fallback)
        {
            int index = Array.IndexOf(args, name);
            return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
        }

        int Int(string name, int fallback) => int.Parse(Value(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

        return new BenchOptions(
            drain,
            latency,
            Int("--mib", 2048),
            Int("--rounds", 3),
            Int("--messages", 300),
            Int("--interval-ms", 10),
            [.. Value("--followers", "1,100,1000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))],
            Value("--dir", "/var/tmp"));
    }
}
