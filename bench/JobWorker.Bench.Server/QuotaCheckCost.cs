using System.Diagnostics;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Quotas;

namespace JobWorker.Bench.Server;

/// <summary>
/// What the quota checks add to one StartJob, measured alone: the ledger's reserve and release for a user with the
/// shipped quotas, and the disk watermark's statvfs of the state directory, each in a tight loop (medians of rounds).
/// </summary>
internal static class QuotaCheckCost
{
    public static void Run(string stateDirectory, int iterations)
    {
        var options = new ServerOptions { StateDirectory = stateDirectory };
        var quotas = new QuotaOptions();
        var ledger = new QuotaLedger(options, quotas, new RetentionOptions());
        var disk = new DiskWatermark(new DiskOptions(), options);
        var caller = new ClientIdentity("alice", Roles.User);
        const int Rounds = 7;
        var reserve = new List<double>();
        var watermark = new List<double>();
        for (var round = 0; round < Rounds; round++)
        {
            var t0 = Stopwatch.GetTimestamp();
            for (var i = 0; i < iterations; i++)
            {
                ledger.Reserve(caller);
                ledger.Unreserve(caller.User);
            }

            reserve.Add(Stopwatch.GetElapsedTime(t0).TotalNanoseconds / iterations);
            t0 = Stopwatch.GetTimestamp();
            for (var i = 0; i < iterations; i++)
            {
                disk.Check();
            }

            watermark.Add(Stopwatch.GetElapsedTime(t0).TotalNanoseconds / iterations);
        }

        reserve.Sort();
        watermark.Sort();
        Console.WriteLine(FormattableString.Invariant($"## Quota checks per start: {iterations} calls x {Rounds} rounds, {Environment.ProcessorCount} CPUs"));
        Console.WriteLine();
        Console.WriteLine("| check | median per call | min | max |");
        Console.WriteLine("|---|---:|---:|---:|");
        Console.WriteLine(FormattableString.Invariant($"| quota ledger: reserve + release | {reserve[Rounds / 2]:0} ns | {reserve[0]:0} ns | {reserve[^1]:0} ns |"));
        Console.WriteLine(FormattableString.Invariant($"| disk watermark: statvfs of the state directory | {watermark[Rounds / 2]:0} ns | {watermark[0]:0} ns | {watermark[^1]:0} ns |"));
    }
}
