using JobWorker.Cli;
using JobWorker.Cli.Commands;
using JobWorker.Cli.Infrastructure;

using var termination = new Termination();
var context = new CliContext { SignalExitCodeProvider = () => termination.SignalExitCode };
try
{
    return await new WorkerCli(context).RunAsync(args, termination.Token);
}
catch (Exception ex)
{
    // Verbs report their own failures; this catches what escapes them (a bug), still as one line.
    context.ReportError("internal", ErrorReporter.Describe(ex, null), ex);
    return ExitCodes.Failure;
}
