// JobWorker.Bench.Cli [--iterations N] [--aot PATH] [--jit PATH]
// Measures the wall time of whole `worker status ID` processes (spawn to exit) against a real server with
// mutual TLS on loopback, hosted in this process. Candidates run interleaved (A B C A B C …) so machine noise
// hits them alike. Baselines in the same run: /bin/true (the cost of spawning any process from here) and
// `worker --help` (the AOT binary without any network or TLS). Prints a Markdown table for docs/benchmarks-cli.md.
//   make worker AOT=1 && dotnet publish src/JobWorker.Cli -c Release -p:PublishAot=false -o artifacts/worker-jit
//   dotnet run -c Release --project bench/JobWorker.Bench.Cli -- --iterations 200
using System.Globalization;
using System.Text.Json;
using JobWorker.Bench.Cli;
using JobWorker.Pki;
using JobWorker.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

var iterations = 100;
var root = FindRepositoryRoot();
var aot = Path.Combine(root, "artifacts", "worker", "worker");
var jit = Path.Combine(root, "artifacts", "worker-jit", "worker");
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--iterations":
            iterations = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            break;
        case "--aot":
            aot = Path.GetFullPath(args[i + 1]);
            break;
        case "--jit":
            jit = Path.GetFullPath(args[i + 1]);
            break;
        default:
            Console.Error.WriteLine($"unknown option {args[i]}");
            return 2;
    }
}

foreach (var binary in new[] { aot, jit })
{
    if (!File.Exists(binary))
    {
        Console.Error.WriteLine($"bench: {binary} does not exist. Build it first:\n  dotnet publish src/JobWorker.Cli -c Release -o artifacts/worker\n  dotnet publish src/JobWorker.Cli -c Release -p:PublishAot=false -o artifacts/worker-jit");
        return 1;
    }
}

var work = Path.Combine(Path.GetTempPath(), "jobworker-bench-cli-" + Guid.NewGuid().ToString("N")[..12]);
Directory.CreateDirectory(work, PemFiles.DirectoryMode);
var cgroupMount = File.ReadLines("/proc/self/mountinfo")
    .Select(line => (Fields: line.Split(' '), Type: line[(line.IndexOf(" - ", StringComparison.Ordinal) + 3)..].Split(' ')[0]))
    .Where(m => m.Type == "cgroup2").Select(m => m.Fields[4]).First();
WebApplication? app = null;
try
{
    var pki = DevPki.Create(Path.Combine(work, "pki"), [new ClientIdentity("bench", Roles.User)]);
    app = ServerApp.Build([], builder =>
    {
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["JobWorker:Listen"] = "127.0.0.1:0",
            ["JobWorker:CaCertificate"] = pki.CaCertificate,
            ["JobWorker:ServerCertificate"] = pki.ServerCertificate,
            ["JobWorker:ServerKey"] = pki.ServerKey,
            ["JobWorker:CgroupRoot"] = Path.Combine(cgroupMount, "jobworker-bench-cli-" + Environment.ProcessId),
            ["JobWorker:StateDirectory"] = Path.Combine(work, "logs"),
            ["JobWorker:StopJobsOnShutdown"] = "true",
            ["JobWorker:DefaultStopGrace"] = "00:00:01",
        });
        builder.Logging.ClearProviders();
    });
    await app.StartAsync();
    var config = Path.Combine(work, "client.json");
    await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new Dictionary<string, string>
    {
        ["server"] = ServerApp.GetGrpcAddress(app).ToString(),
        ["cert"] = pki.ClientCertificate("bench"),
        ["key"] = pki.ClientKey("bench"),
        ["ca"] = pki.CaCertificate,
    }));
    var env = new Dictionary<string, string> { ["WORKER_CONFIG"] = config };

    var start = ProcessTimer.Run(aot, ["start", "--", "/bin/sleep", "3600"], env);
    if (start.ExitCode != 0)
    {
        Console.Error.WriteLine($"bench: worker start failed: {start.Stderr}");
        return 1;
    }

    var id = start.Stdout.Trim();
    var candidates = new (string Name, string Path, string[] Args)[]
    {
        ("/bin/true (process spawn baseline)", "/bin/true", []),
        ("worker --help, NativeAOT (no network)", aot, ["--help"]),
        ("worker status ID, NativeAOT", aot, ["status", id]),
        ("worker status ID, JIT", jit, ["status", id]),
    };

    // Warm-up: page cache, server JIT of the status path, first TLS handshakes.
    foreach (var c in candidates)
    {
        for (var i = 0; i < 5; i++)
        {
            ProcessTimer.Run(c.Path, c.Args, env).EnsureSuccess(c.Name);
        }
    }

    var samples = candidates.Select(_ => new List<double>(iterations)).ToArray();
    var cpu = candidates.Select(_ => new List<double>(iterations)).ToArray();
    for (var i = 0; i < iterations; i++)
    {
        for (var c = 0; c < candidates.Length; c++)
        {
            var result = ProcessTimer.Run(candidates[c].Path, candidates[c].Args, env).EnsureSuccess(candidates[c].Name);
            samples[c].Add(result.Elapsed.TotalMilliseconds);
            cpu[c].Add(result.Cpu.TotalMilliseconds);
        }
    }

    ProcessTimer.Run(aot, ["stop", "--grace", "0s", id], env);
    ProcessTimer.Run(aot, ["rm", id], env);

    var aotMedian = Median(samples[2]);
    Console.WriteLine($"`worker status` process wall time, {iterations} interleaved runs each, {Environment.ProcessorCount} cores, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
    Console.WriteLine();
    Console.WriteLine($"load average at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
    Console.WriteLine();
    Console.WriteLine("| process | wall median ms | wall p90 ms | wall min ms | CPU (user+sys) median ms | wall ratio to AOT status |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|");
    for (var c = 0; c < candidates.Length; c++)
    {
        var sorted = samples[c].Order().ToArray();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {candidates[c].Name} | {Median(sorted):0.0} | {sorted[(int)(0.9 * (sorted.Length - 1))]:0.0} | {sorted[0]:0.0} | {Median(cpu[c]):0.0} | {Median(sorted) / aotMedian:0.00}× |"));
    }

    Console.WriteLine();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"AOT binary {new FileInfo(aot).Length / 1024.0 / 1024:0.0} MiB; goal: AOT `worker status` median ≤ 30 ms → {(aotMedian <= 30 ? "met" : "NOT met")} ({aotMedian:0.0} ms)"));
    return 0;
}
finally
{
    if (app is not null)
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    Directory.Delete(work, recursive: true);
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}

static string FindRepositoryRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "JobWorker.slnx")))
        {
            return dir.FullName;
        }
    }

    return Directory.GetCurrentDirectory();
}
