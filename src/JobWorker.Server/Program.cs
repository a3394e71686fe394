using JobWorker.Core.Jobs;
using JobWorker.Server;
using JobWorker.Server.Hosting;

// JobWorker.Server [settings]        run the server (see docs/operations.md)
// JobWorker.Server certs init ...    create a development PKI (see CertsCommand)
// JobWorker.Server --help|--version  no root needed
if (ServerCommandLine.Handle(args, Console.Out, Console.Error) is { } exitCode)
{
    return exitCode;
}

if (!Environment.IsPrivilegedProcess)
{
    Console.Error.WriteLine("JobWorker.Server: must run as root: it creates cgroups and starts jobs as another user (try sudo, or the systemd unit in docs/operations.md).");
    return 1;
}

WebApplication app;
try
{
    app = ServerApp.Build(args);
}
catch (StartupException e)
{
    Console.Error.WriteLine($"JobWorker.Server: {e.Message}");
    return 1;
}

try
{
    // RunAsync returns after SIGTERM/SIGINT once the jobs are stopped and Kestrel has drained.
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (ListenerBindException.Find(e) is { } bind)
{
    // A port in use, or an address that is not this host's: Kestrel could not listen.
    Console.Error.WriteLine($"JobWorker.Server: {bind.Message}");
    return 1;
}
catch (Exception e) when (e is JobWorkerException or IOException or UnauthorizedAccessException or ArgumentException or StartupException)
{
    // JobRunner.Create failed: the cgroup subtree or the log directory could not be prepared.
    Console.Error.WriteLine($"JobWorker.Server: cannot start the job runner: {e.Message}");
    return 1;
}
finally
{
    await app.DisposeAsync();
}
