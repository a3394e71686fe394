namespace JobWorker.Server.Errors;

/// <summary>A request field is invalid. Answers InvalidArgument with "field: problem".</summary>
public sealed class InvalidRequestException : Exception
{
    public InvalidRequestException()
    {
        Field = "";
    }

    public InvalidRequestException(string message)
        : base(message)
    {
        Field = "";
    }

    public InvalidRequestException(string message, Exception? innerException)
        : base(message, innerException)
    {
        Field = "";
    }

    public InvalidRequestException(string field, string problem, Exception? innerException = null)
        : base($"{field}: {problem}", innerException)
    {
        Field = field;
    }

    /// <summary>The request field in error, in proto naming (for example <c>limits.memory_bytes</c> or <c>args[2]</c>).</summary>
    public string Field { get; }
}
