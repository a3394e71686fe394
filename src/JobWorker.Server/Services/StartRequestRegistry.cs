using System.Diagnostics;
using System.Security.Cryptography;
using Google.Protobuf;
using JobWorker.Core.Jobs;
using JobWorker.Protocol.V1;
using JobWorker.Server.Configuration;
using JobWorker.Server.Errors;

namespace JobWorker.Server.Services;

/// <summary>
/// The StartJob idempotency keys: for each user, the request ids of recent starts and the job each one started,
/// so that a retried start (same user, same id, same spec) returns that job instead of running the program again.
/// </summary>
/// <remarks>
/// Bounded per user by <see cref="ServerOptions.StartRequestIdRetention"/> and
/// <see cref="ServerOptions.MaxStartRequestIdsPerUser"/> (the oldest are forgotten first). Only the spec's SHA-256
/// is kept, never the request. A start that fails forgets its id: it started nothing, so trying again is right.
/// A duplicate that arrives while the first is still starting waits for it rather than starting a second job.
/// Ids are per user: two users may use the same id without seeing each other.
/// </remarks>
public sealed class StartRequestRegistry
{
    private readonly TimeSpan _retention;
    private readonly int _maxPerUser;
    private readonly Func<long> _clock;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, UserRequests> _users = new(StringComparer.Ordinal);

    public StartRequestRegistry(ServerOptions options)
        : this(options, Stopwatch.GetTimestamp)
    {
    }

    internal StartRequestRegistry(ServerOptions options, Func<long> clock)
    {
        ArgumentNullException.ThrowIfNull(options);
        _retention = options.StartRequestIdRetention;
        _maxPerUser = options.MaxStartRequestIdsPerUser;
        _clock = clock;
    }

    /// <summary>
    /// Runs <paramref name="start"/> unless <paramref name="user"/> already started a job with
    /// <paramref name="requestId"/>; returns the job and whether it is that earlier one.
    /// </summary>
    /// <remarks><paramref name="start"/> gets the request's fingerprint (hex), to record with the job.</remarks>
    /// <exception cref="RequestIdReusedException">The id was used for a different spec.</exception>
    public async Task<(Job Job, bool Repeated)> StartOnceAsync(string user, string requestId, StartJobRequest request, Func<string, Job> start, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(start);
        var fingerprint = Fingerprint(request);
        while (true)
        {
            Entry entry;
            var owner = false;
            lock (_lock)
            {
                var now = _clock();
                Prune(now);
                if (!_users.TryGetValue(user, out var requests))
                {
                    requests = new UserRequests();
                    _users.Add(user, requests);
                }

                if (requests.ById.TryGetValue(requestId, out var existing))
                {
                    if (!CryptographicOperations.FixedTimeEquals(existing.Fingerprint, fingerprint))
                    {
                        var job = existing.Outcome.Task.IsCompletedSuccessfully ? $" (job {RequestValidator.FormatJobId(existing.Outcome.Task.Result.Id)})" : string.Empty;
                        throw new RequestIdReusedException(
                            $"request_id '{requestId}' was already used to start a different job{job}; use a new request id for a new job");
                    }

                    entry = existing;
                }
                else
                {
                    entry = new Entry(requestId, fingerprint, now);
                    requests.ById.Add(requestId, entry);
                    entry.Node = requests.ByAge.AddLast(entry);
                    owner = true;
                    ForgetOldest(requests);
                }
            }

            if (owner)
            {
                try
                {
                    var job = start(Convert.ToHexString(fingerprint));
                    entry.Outcome.SetResult(job);
                    return (job, false);
                }
                catch (Exception e)
                {
                    lock (_lock)
                    {
                        if (_users.TryGetValue(user, out var requests) && requests.ById.TryGetValue(requestId, out var current) && current == entry)
                        {
                            Forget(requests, entry);
                            if (requests.ById.Count == 0)
                            {
                                _users.Remove(user);
                            }
                        }
                    }

                    entry.Outcome.SetException(e);
                    _ = entry.Outcome.Task.Exception; // observed: duplicates may or may not be waiting for it
                    throw;
                }
            }

            try
            {
                return (await entry.Outcome.Task.WaitAsync(cancellationToken).ConfigureAwait(false), true);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested && !entry.Outcome.Task.IsCompletedSuccessfully)
            {
                // The first attempt started nothing (cancelled, refused, failed) and forgot the id: try again, as
                // the first in line or behind a newer attempt.
            }
        }
    }

    /// <summary>
    /// Learns the request ids recorded with <paramref name="jobs"/> (a restarted server's jobs): each one still within
    /// the retention answers a retry with its job, as if this server had started it.
    /// </summary>
    public void Remember(IEnumerable<Job> jobs)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        lock (_lock)
        {
            var now = _clock();
            foreach (var job in jobs.OrderBy(j => j.CreatedAt))
            {
                var age = DateTimeOffset.UtcNow - job.CreatedAt;
                if (job.RequestId is not { } id || job.RequestFingerprint is not { } hex || job.Spec.Owner is not { } user
                    || age >= _retention || hex.Length != 64)
                {
                    continue;
                }

                if (!_users.TryGetValue(user, out var requests))
                {
                    requests = new UserRequests();
                    _users.Add(user, requests);
                }

                if (requests.ById.ContainsKey(id))
                {
                    continue;
                }

                var entry = new Entry(id, Convert.FromHexString(hex), now - (long)(Math.Max(0, age.TotalSeconds) * Stopwatch.Frequency));
                entry.Outcome.SetResult(job);
                requests.ById.Add(id, entry);
                entry.Node = requests.ByAge.AddLast(entry);
                ForgetOldest(requests);
            }
        }
    }

    private static byte[] Fingerprint(StartJobRequest request)
    {
        // Protobuf maps serialize in insertion order: rebuild the environment sorted so that equal specs hash equally.
        var canonical = request.Clone();
        canonical.RequestId = string.Empty;
        var env = canonical.Env.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        canonical.Env.Clear();
        foreach (var (key, value) in env)
        {
            canonical.Env.Add(key, value);
        }

        return SHA256.HashData(canonical.ToByteArray());
    }

    private void Prune(long now)
    {
        var expired = now - (long)(_retention.TotalSeconds * Stopwatch.Frequency);
        List<string>? empty = null;
        foreach (var (user, requests) in _users)
        {
            while (requests.ByAge.First is { } oldest && oldest.Value.Created <= expired && oldest.Value.Outcome.Task.IsCompleted)
            {
                Forget(requests, oldest.Value);
            }

            if (requests.ById.Count == 0)
            {
                (empty ??= []).Add(user);
            }
        }

        foreach (var user in empty ?? [])
        {
            _users.Remove(user);
        }
    }

    // Over the count, the oldest finished starts are forgotten; one still starting is kept, or a duplicate arriving
    // now could start a second job.
    private void ForgetOldest(UserRequests requests)
    {
        var node = requests.ByAge.First;
        while (requests.ById.Count > _maxPerUser && node is not null)
        {
            var next = node.Next;
            if (node.Value.Outcome.Task.IsCompleted)
            {
                Forget(requests, node.Value);
            }

            node = next;
        }
    }

    private static void Forget(UserRequests requests, Entry entry)
    {
        requests.ById.Remove(entry.RequestId);
        if (entry.Node is not null)
        {
            requests.ByAge.Remove(entry.Node);
            entry.Node = null;
        }
    }

    private sealed class UserRequests
    {
        public Dictionary<string, Entry> ById { get; } = new(StringComparer.Ordinal);

        public LinkedList<Entry> ByAge { get; } = new();
    }

    private sealed class Entry(string requestId, byte[] fingerprint, long created)
    {
        public string RequestId { get; } = requestId;

        public byte[] Fingerprint { get; } = fingerprint;

        public long Created { get; } = created;

        public TaskCompletionSource<Job> Outcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Entry>? Node { get; set; }
    }
}
