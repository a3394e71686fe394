using System.CommandLine;

namespace JobWorker.Cli.Commands;

internal static class JobIdArgument
{
    public static Argument<string> Create() => new("id")
    {
        Description = "The job id (printed by 'worker start', listed by 'worker list')",
        HelpName = "ID",
        Validators =
        {
            r =>
            {
                var value = r.Tokens.Count > 0 ? r.Tokens[0].Value : string.Empty;
                if (string.IsNullOrWhiteSpace(value))
                {
                    r.AddError("the job id is empty");
                }
            },
        },
    };
}
