using System.CommandLine;
using Grpc.Core;
using JobWorker.Cli.Connection;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Commands;

/// <summary>
/// A verb: one class per command. The base turns failures into one stderr line and an exit code, and a
/// cancellation caused by SIGINT/SIGTERM into 130/143.
/// </summary>
internal abstract class VerbCommand : Command
{
    protected VerbCommand(string name, string description, CliContext context)
        : base(name, description)
    {
        Context = context;
        SetAction(InvokeAsync);
    }

    protected CliContext Context { get; }

    /// <summary>The verb as typed, for messages: "status", "certs init".</summary>
    public string DisplayName => string.Join(" ", Parents.OfType<Command>().Where(c => c is not RootCommand).Select(c => c.Name).Reverse().Append(Name));

    /// <summary>The connection settings once resolved, so errors can name the server and files.</summary>
    protected ConnectionSettings? Settings { get; private set; }

    protected abstract Task<int> ExecuteAsync(ParseResult parseResult, CancellationToken cancellationToken);

    protected WorkerConnection Connect(ParseResult parseResult)
    {
        Settings = Context.Globals.Resolve(parseResult);
        return WorkerConnection.Open(Settings);
    }

    protected static void WriteStdout(string text)
    {
        Console.Out.Write(text);
        Console.Out.Flush();
    }

    private async Task<int> InvokeAsync(ParseResult parseResult, CancellationToken cancellationToken)
    {
        try
        {
            return await ExecuteAsync(parseResult, cancellationToken);
        }
        catch (Exception ex) when (cancellationToken.IsCancellationRequested && IsCancellation(ex))
        {
            return Context.SignalExitCode ?? ExitCodes.SigInt;
        }
        catch (IOException ex) when (IsBrokenPipe(ex))
        {
            return ExitCodes.BrokenPipe;
        }
        catch (Exception ex)
        {
            Context.ReportError(DisplayName, ErrorReporter.Describe(ex, Settings), ex);
            return ErrorReporter.ExitCodeOf(ex);
        }
    }

    private static bool IsCancellation(Exception ex)
        => ex is OperationCanceledException || ex is RpcException { StatusCode: StatusCode.Cancelled };

    // EPIPE: the reader of our stdout went away (e.g. `worker logs ID | head`).
    private static bool IsBrokenPipe(IOException ex) => ex.HResult == 32 || (ex.HResult & 0xFFFF) == 32;
}
