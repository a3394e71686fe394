using System.Globalization;
using System.Text;
using System.Threading.RateLimiting;
using Grpc.Core;
using JobWorker.Pki;
using JobWorker.Server.Configuration;
using JobWorker.Server.Diagnostics;
using JobWorker.Server.Security;
using Microsoft.AspNetCore.RateLimiting;

namespace JobWorker.Server.RateLimiting;

/// <summary>
/// ASP.NET Core's rate limiting middleware, partitioned by the caller's verified certificate: a token bucket on
/// StartJob and a concurrency limit on StreamOutput, per user, with the role's limits from
/// <see cref="RateLimitOptions"/>. A refusal is a gRPC ResourceExhausted with a message naming the limit and a
/// <c>retry-after</c> trailer in whole seconds.
/// </summary>
public static class RateLimits
{
    /// <summary>The policy on StartJob (<see cref="EnableRateLimitingAttribute"/> on the service method).</summary>
    public const string StartJobPolicy = "StartJob";

    /// <summary>The policy on StreamOutput.</summary>
    public const string OutputStreamPolicy = "OutputStreams";

    /// <summary>The trailer that says how long to wait before retrying, in whole seconds.</summary>
    public const string RetryAfterTrailer = "retry-after";

    // A concurrency limit frees up when a stream closes, not after a known time: a hint, not a promise.
    private static readonly TimeSpan StreamRetryAfter = TimeSpan.FromSeconds(5);

    /// <summary>Registers the policies for <paramref name="options"/>.</summary>
    public static IServiceCollection AddJobWorkerRateLimits(this IServiceCollection services, RateLimitOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return services.AddRateLimiter(limiter =>
        {
            limiter.AddPolicy(StartJobPolicy, http =>
            {
                var caller = Caller(http);
                var limits = caller is null ? null : For(options, caller);
                return limits is { LimitsStartJob: true }
                    ? RateLimitPartition.GetTokenBucketLimiter(caller!, _ => new TokenBucketRateLimiterOptions
                    {
                        // One token per 1/rate seconds: any rate, not only whole starts per second.
                        TokenLimit = limits.StartJobBurst,
                        TokensPerPeriod = 1,
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1 / limits.StartJobsPerSecond),
                        QueueLimit = 0,
                        AutoReplenishment = true,
                    })
                    : RateLimitPartition.GetNoLimiter(caller ?? NoIdentity);
            });
            limiter.AddPolicy(OutputStreamPolicy, http =>
            {
                var caller = Caller(http);
                var limits = caller is null ? null : For(options, caller);
                return limits is { MaxOpenStreams: > 0 }
                    ? RateLimitPartition.GetConcurrencyLimiter(caller!, _ => new ConcurrencyLimiterOptions { PermitLimit = limits.MaxOpenStreams, QueueLimit = 0 })
                    : RateLimitPartition.GetNoLimiter(caller ?? NoIdentity);
            });
            limiter.OnRejected = (context, _) =>
            {
                Reject(context, options);
                return ValueTask.CompletedTask;
            };
        });
    }

    private static readonly ClientIdentity NoIdentity = new(string.Empty, string.Empty);

    /// <summary>The limits of <paramref name="caller"/>'s role.</summary>
    public static RoleRateLimits For(RateLimitOptions options, ClientIdentity caller)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(caller);
        return caller.Role == Roles.Admin ? options.Admin : options.User;
    }

    // Without a usable certificate there is no partition: the call goes on and the service refuses it (Unauthenticated).
    private static ClientIdentity? Caller(HttpContext http)
    {
        try
        {
            return CallerIdentity.Get(http);
        }
        catch (Errors.UnauthenticatedException)
        {
            return null;
        }
    }

    private static void Reject(OnRejectedContext context, RateLimitOptions options)
    {
        var http = context.HttpContext;
        var caller = Caller(http)!;
        var limits = For(options, caller);
        var section = $"{RateLimitOptions.Section}:{(caller.Role == Roles.Admin ? nameof(RateLimitOptions.Admin) : nameof(RateLimitOptions.User))}";
        var policy = http.GetEndpoint()?.Metadata.GetMetadata<EnableRateLimitingAttribute>()?.PolicyName;
        var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : StreamRetryAfter;
        var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
        var message = policy == StartJobPolicy
            ? $"user '{caller.User}' starts jobs faster than allowed ({limits.StartJobBurst} at once, then {limits.StartJobsPerSecond.ToString("0.###", CultureInfo.InvariantCulture)} per second; {section}:StartJobBurst and StartJobsPerSecond); retry in {seconds} s"
            : $"user '{caller.User}' already has {limits.MaxOpenStreams} output streams open, the most allowed ({section}:MaxOpenStreams); close one (a 'worker logs -f' or 'worker run') or retry in {seconds} s";

        var services = http.RequestServices;
        services.GetRequiredService<ServerMetrics>().Error(StatusCode.ResourceExhausted);
        Log.CallFailed(services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(RateLimits).FullName!), caller.User, http.Request.Path, nameof(StatusCode.ResourceExhausted), message);

        WriteTrailersOnly(http.Response, StatusCode.ResourceExhausted, message, seconds);
    }

    /// <summary>Answers a gRPC call with <paramref name="status"/> and a <c>retry-after</c> trailer, before any service runs.</summary>
    internal static void WriteTrailersOnly(HttpResponse response, StatusCode status, string message, long retryAfterSeconds)
    {
        // A trailers-only gRPC response: HTTP 200 whose headers carry the status (the client reads them as trailers).
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)status).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = PercentEncode(message);
        response.Headers[RetryAfterTrailer] = retryAfterSeconds.ToString(CultureInfo.InvariantCulture);
    }

    // grpc-message is percent-encoded UTF-8 (the gRPC HTTP/2 protocol): printable ASCII except '%' stays as is.
    private static string PercentEncode(string message)
    {
        var builder = new StringBuilder(message.Length);
        foreach (var b in Encoding.UTF8.GetBytes(message))
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }
}
