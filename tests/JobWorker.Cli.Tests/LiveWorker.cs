using System.Diagnostics;
using System.Text;

namespace JobWorker.Cli.Tests;

/// <summary>
/// A real <c>worker</c> process the test watches while it runs: its stdout bytes and stderr lines are collected as
/// they come, so the test can act once output flows or a notice appears. Killed on dispose if still running.
/// </summary>
internal sealed class LiveWorker : IDisposable
{
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(15);

    private readonly Process _process;
    private readonly MemoryStream _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Lock _lock = new();
    private readonly Task _readers;

    public LiveWorker(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        _process = WorkerProcess.Start(args, environment);
        _process.StandardInput.Close();
        _readers = Task.WhenAll(CopyStdoutAsync(), CopyStderrAsync());
    }

    public int StdoutLength
    {
        get
        {
            lock (_lock)
            {
                return (int)_stdout.Length;
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_lock)
            {
                return _stderr.ToString();
            }
        }
    }

    /// <summary>Waits until stdout holds more than <paramref name="length"/> bytes.</summary>
    public Task WaitForStdoutAsync(int length, CancellationToken cancellationToken)
        => WaitUntilAsync(() => StdoutLength > length, $"more than {length} bytes on stdout", cancellationToken);

    /// <summary>Waits until stderr contains <paramref name="text"/> <paramref name="count"/> times.</summary>
    public Task WaitForStderrAsync(string text, CancellationToken cancellationToken, int count = 1)
        => WaitUntilAsync(() => Occurrences(Stderr, text) >= count, $"'{text}' on stderr", cancellationToken);

    public async Task<WorkerResult> WaitForExitAsync(CancellationToken cancellationToken)
    {
        await _process.WaitForExitAsync(cancellationToken).WaitAsync(WaitLimit, cancellationToken);
        await _readers.WaitAsync(cancellationToken);
        lock (_lock)
        {
            return new WorkerResult(_process.ExitCode, _stdout.ToArray(), _stderr.ToString());
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    public static int Occurrences(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private async Task WaitUntilAsync(Func<bool> condition, string what, CancellationToken cancellationToken)
    {
        // Well within a test's timeout, so that a test that fails here still cleans up after itself.
        var deadline = DateTime.UtcNow + WaitLimit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no {what} within {WaitLimit.TotalSeconds:0} s; stderr: {Stderr}");
            }

            if (_process.HasExited)
            {
                // Whatever it printed last is read by now or never will be.
                await _readers.WaitAsync(cancellationToken);
                if (condition())
                {
                    return;
                }

                throw new InvalidOperationException($"worker exited with {_process.ExitCode} before {what}; stderr: {Stderr}");
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    private async Task CopyStdoutAsync()
    {
        var buffer = new byte[16 * 1024];
        var stream = _process.StandardOutput.BaseStream;
        int read;
        while ((read = await stream.ReadAsync(buffer)) > 0)
        {
            lock (_lock)
            {
                _stdout.Write(buffer, 0, read);
            }
        }
    }

    private async Task CopyStderrAsync()
    {
        while (await _process.StandardError.ReadLineAsync() is { } line)
        {
            lock (_lock)
            {
                _stderr.Append(line).Append('\n');
            }
        }
    }
}
