namespace JobWorker.Cli.Parsing;

/// <summary>One <c>DEV=VALUE</c> I/O limit from the command line.</summary>
internal readonly record struct IoLimitSpec(string Device, long Value);
