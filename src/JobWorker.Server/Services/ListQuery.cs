using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using JobWorker.Core.Jobs;
using JobWorker.Pki;
using JobWorker.Protocol.V1;
using JobWorker.Server.Errors;
using CoreJobState = JobWorker.Core.Jobs.JobState;
using ProtoJobState = JobWorker.Protocol.V1.JobState;

namespace JobWorker.Server.Services;

/// <summary>
/// One ListJobs page request, checked: the page size, where the page starts and which jobs match. A page token is
/// the last listed job's <see cref="JobListPosition"/> plus a digest of the caller and the filters, so a token
/// used with other filters or by another caller is refused rather than silently listing something else. A token
/// carries no secret and grants nothing: the filters and the caller's rights are applied to every page anew.
/// </summary>
public sealed class ListQuery
{
    /// <summary>Entries per page when the request does not say.</summary>
    public const int DefaultPageSize = 100;

    /// <summary>The most entries per page; larger requests get this many.</summary>
    public const int MaxPageSize = 1000;

    private const byte TokenVersion = 1;
    private const int TokenBytes = 1 + 8 + 16 + 8;

    private readonly HashSet<CoreJobState>? _states;
    private readonly DateTimeOffset? _startedSince;
    private readonly byte[] _digest;

    private ListQuery(int pageSize, JobListPosition? after, string? owner, HashSet<CoreJobState>? states, DateTimeOffset? startedSince, byte[] digest)
    {
        PageSize = pageSize;
        After = after;
        Owner = owner;
        _states = states;
        _startedSince = startedSince;
        _digest = digest;
    }

    /// <summary>Jobs per page.</summary>
    public int PageSize { get; }

    /// <summary>Where the previous page ended; null for the first page.</summary>
    public JobListPosition? After { get; }

    /// <summary>The only owner listed; null = every owner.</summary>
    public string? Owner { get; }

    /// <summary>
    /// Checks <paramref name="request"/> for <paramref name="caller"/>. <paramref name="mayListOthers"/> says whether
    /// the caller's role may list other users' jobs; without it the listing is the caller's own jobs.
    /// </summary>
    /// <exception cref="InvalidRequestException">A bad page size, state, time or token.</exception>
    public static ListQuery Parse(ListJobsRequest request, ClientIdentity caller, bool mayListOthers)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(caller);
        if (request.PageSize < 0)
        {
            throw new InvalidRequestException("page_size", $"{request.PageSize} is negative; use 0 for the server's default ({DefaultPageSize}) or up to {MaxPageSize}");
        }

        var pageSize = request.PageSize == 0 ? DefaultPageSize : Math.Min(request.PageSize, MaxPageSize);

        HashSet<CoreJobState>? states = null;
        foreach (var state in request.States)
        {
            (states ??= []).Add(state switch
            {
                ProtoJobState.Running => CoreJobState.Running,
                ProtoJobState.Exited => CoreJobState.Exited,
                ProtoJobState.Signaled => CoreJobState.Signaled,
                ProtoJobState.Stopped => CoreJobState.Stopped,
                _ => throw new InvalidRequestException("states", $"'{state}' is not a state to filter by (RUNNING, EXITED, SIGNALED or STOPPED)"),
            });
        }

        DateTimeOffset? since = null;
        if (request.StartedSince is { } timestamp)
        {
            try
            {
                since = timestamp.ToDateTimeOffset();
            }
            catch (InvalidOperationException)
            {
                throw new InvalidRequestException("started_since", "is not a valid time");
            }
        }

        // Without the right to see others, the listing is the caller's own jobs whatever the request says (the
        // caller asked for another owner is refused before this).
        var owner = request.Owner.Length > 0 ? request.Owner : mayListOthers ? null : caller.User;
        var digest = Digest(caller, owner, states, since);
        var after = request.PageToken.Length == 0 ? (JobListPosition?)null : ParseToken(request.PageToken, digest);
        return new ListQuery(pageSize, after, owner, states, since, digest);
    }

    /// <summary>Whether <paramref name="job"/> is listed. Cheap: runs under the runner's listing lock.</summary>
    public bool Matches(Job job)
    {
        ArgumentNullException.ThrowIfNull(job);
        return (Owner is null || string.Equals(job.Spec.Owner, Owner, StringComparison.Ordinal))
            && (_states is null || _states.Contains(job.CurrentState))
            && (_startedSince is not { } since || job.StartedAt >= since);
    }

    /// <summary>The token that continues after <paramref name="last"/>, the last job of a full page.</summary>
    public string TokenAfter(Job last)
    {
        var position = JobListPosition.Of(last);
        Span<byte> token = stackalloc byte[TokenBytes];
        token[0] = TokenVersion;
        BinaryPrimitives.WriteInt64BigEndian(token[1..], position.CreatedAtUtcTicks);
        position.Id.TryWriteBytes(token[9..], bigEndian: true, out _);
        _digest.CopyTo(token[25..]);
        return Convert.ToBase64String(token).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    private static JobListPosition ParseToken(string text, byte[] digest)
    {
        const string Fix = "pass the next_page_token of the previous page, with the same filters, or none for the first page";
        Span<byte> token = stackalloc byte[TokenBytes + 3];
        var base64 = text.Replace('-', '+').Replace('_', '/');
        base64 += new string('=', (4 - (base64.Length % 4)) % 4);
        if (text.Length > 64 || !Convert.TryFromBase64String(base64, token, out var length) || length != TokenBytes || token[0] != TokenVersion)
        {
            throw new InvalidRequestException("page_token", $"'{RequestValidator.Printable(text, 40)}' is not a page token; {Fix}");
        }

        if (!CryptographicOperations.FixedTimeEquals(token[25..TokenBytes], digest))
        {
            throw new InvalidRequestException("page_token", $"was issued for other filters or another caller; {Fix}");
        }

        var ticks = BinaryPrimitives.ReadInt64BigEndian(token[1..]);
        return new JobListPosition(ticks, new Guid(token[9..25], bigEndian: true));
    }

    private static byte[] Digest(ClientIdentity caller, string? owner, HashSet<CoreJobState>? states, DateTimeOffset? since)
    {
        var text = new StringBuilder()
            .Append(caller.User).Append('\0')
            .Append(caller.Role).Append('\0')
            .Append(owner).Append('\0')
            .AppendJoin(',', states?.Order() ?? Enumerable.Empty<CoreJobState>()).Append('\0')
            .Append(since?.UtcTicks)
            .ToString();
        return SHA256.HashData(Encoding.UTF8.GetBytes(text))[..8];
    }
}
