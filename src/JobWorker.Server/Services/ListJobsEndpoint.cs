using Google.Protobuf;
using Grpc.Core;
using JobWorker.Server.Errors;
using JobWorker.Server.Hosting;
using JobWorker.Server.Security;
using Proto = JobWorker.Protocol.V1;

namespace JobWorker.Server.Services;

/// <summary>
/// <c>jobworker.v1.JobWorker/ListJobs</c>, bound by hand so that a page is written from its entries' encodings: an
/// ended job's entry never changes, so it is encoded once and copied into every later page instead of being
/// serialized field by field on every call. The bytes on the wire are exactly those of the generated
/// <see cref="Proto.ListJobsResponse"/> (see <see cref="ListJobsPage"/>), so clients see no difference.
/// <see cref="ServerApp"/> maps this endpoint ahead of the generated binding of the same method.
/// </summary>
/// <remarks>
/// The method is virtual because grpc-dotnet finds a bound method by looking for a virtual method declared on the
/// type its bind method names (here this one), as it does for a generated service base.
/// </remarks>
[BindServiceMethod(typeof(ListJobsEndpoint), nameof(BindService))]
public class ListJobsEndpoint
{
    /// <summary>The method: the generated one's service and name, with the page's own marshaller.</summary>
    public static readonly Method<Proto.ListJobsRequest, ListJobsPage> Method = new(
        MethodType.Unary,
        Proto.JobWorker.Descriptor.FullName,
        nameof(ListJobs),
        Marshallers.Create(
            (request, context) => context.Complete(request.ToByteArray()),
            context => Proto.ListJobsRequest.Parser.ParseFrom(context.PayloadAsReadOnlySequence())),
        Marshallers.Create(ListJobsPage.Serialize, ListJobsPage.Deserialize));

    private readonly JobRunnerHost _host;

    public ListJobsEndpoint(JobRunnerHost host) => _host = host;

    /// <summary>Called by grpc-dotnet (through <see cref="BindServiceMethodAttribute"/>) to learn the method.</summary>
    public static void BindService(ServiceBinderBase binder, ListJobsEndpoint? service)
    {
        ArgumentNullException.ThrowIfNull(binder);
        binder.AddMethod(Method, service is null ? null : service.ListJobs);
    }

    /// <summary>One page of the jobs the caller may see, in creation order.</summary>
    public virtual Task<ListJobsPage> ListJobs(Proto.ListJobsRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        var caller = CallerIdentity.Get(context);
        var mayListOthers = AuthorizationPolicy.IsAllowed(caller.Role, JobOperation.List, Ownership.Other);
        if (request.Owner.Length > 0 && !AuthorizationPolicy.IsAllowed(caller, JobOperation.List, request.Owner))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"role '{caller.Role}' may list only its own jobs, not those of '{RequestValidator.Printable(request.Owner, 64)}'"));
        }

        if (!AuthorizationPolicy.IsAllowed(caller.Role, JobOperation.List, Ownership.Own))
        {
            return Task.FromResult(ListJobsPage.Empty);
        }

        var query = ListQuery.Parse(request, caller, mayListOthers);
        var full = request.View switch
        {
            Proto.JobView.Unspecified or Proto.JobView.Basic => false,
            Proto.JobView.Full => true,
            _ => throw new InvalidRequestException("view", $"{(int)request.View} is not a view; use JOB_VIEW_BASIC (the default) or JOB_VIEW_FULL"),
        };
        // One more than a page: whether another page follows, without an empty last page.
        var jobs = _host.Runner.ListJobs(query.After, query.PageSize + 1, query.Matches);
        var count = Math.Min(jobs.Count, query.PageSize);
        var entries = new byte[count][];
        for (var i = 0; i < count; i++)
        {
            entries[i] = StatusMapper.EncodeListEntry(jobs[i], full);
        }

        var token = jobs.Count > query.PageSize ? query.TokenAfter(jobs[count - 1]) : "";
        return Task.FromResult(new ListJobsPage(entries, token));
    }
}
