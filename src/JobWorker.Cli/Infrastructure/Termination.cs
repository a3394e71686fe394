using System.Runtime.InteropServices;

namespace JobWorker.Cli.Infrastructure;

/// <summary>
/// Turns the first SIGINT or SIGTERM into a cancellation the running verb can act on (for example
/// <c>run</c> stops its job), and remembers which signal it was so the process exits 130 or 143.
/// A second signal falls back to the default disposition and ends the process at once.
/// </summary>
internal sealed class Termination : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private readonly PosixSignalRegistration _sigint;
    private readonly PosixSignalRegistration _sigterm;
    private int _signal;

    public Termination()
    {
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
    }

    public CancellationToken Token => _cts.Token;

    /// <summary>The exit code for the signal received (130 or 143), or null when none was.</summary>
    public int? SignalExitCode => Volatile.Read(ref _signal) switch
    {
        0 => null,
        var s => 128 + s,
    };

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
        _cts.Dispose();
    }

    private void Handle(PosixSignalContext context)
    {
        // PosixSignal values are negative abstractions; map to the Linux numbers for the exit code.
        var number = context.Signal == PosixSignal.SIGINT ? 2 : 15;
        if (Interlocked.CompareExchange(ref _signal, number, 0) != 0)
        {
            context.Cancel = false;
            return;
        }

        context.Cancel = true;
        _cts.Cancel();
    }
}
