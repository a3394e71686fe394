using System.CommandLine;

namespace JobWorker.Cli.Commands;

internal static class JobIdArgument
{
    private const string Name = "id";

    public static Argument<string> Create() => new(Name)
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

    /// <summary>Whether an argument is a job id (its values complete from the server's job list).</summary>
    public static bool Is(Argument argument) => argument is Argument<string> { Name: Name, HelpName: "ID" };
}
