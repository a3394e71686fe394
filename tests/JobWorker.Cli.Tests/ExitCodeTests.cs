using System.Net.Sockets;
using Grpc.Core;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Tests;

/// <summary>
/// The gRPC status → exit code table of docs/cli.md, for every status, also those a test server cannot be made to
/// send (the process tests check the codes a real server and real connections produce).
/// </summary>
public sealed class ExitCodeTests
{
    [Theory]
    [InlineData(StatusCode.NotFound, 3)]
    [InlineData(StatusCode.Unavailable, 4)]
    [InlineData(StatusCode.PermissionDenied, 5)]
    [InlineData(StatusCode.Unauthenticated, 5)]
    [InlineData(StatusCode.ResourceExhausted, 5)]
    [InlineData(StatusCode.InvalidArgument, 1)]
    [InlineData(StatusCode.FailedPrecondition, 1)]
    [InlineData(StatusCode.AlreadyExists, 1)]
    [InlineData(StatusCode.Internal, 1)]
    [InlineData(StatusCode.Unknown, 1)]
    [InlineData(StatusCode.Unimplemented, 1)]
    [InlineData(StatusCode.Cancelled, 1)]
    [InlineData(StatusCode.DeadlineExceeded, 1)]
    public void ExitCodeOf_StatusFromTheServer_MapsAsDocumented(StatusCode code, int expected)
    {
        Assert.Equal(expected, ErrorReporter.ExitCodeOf(new RpcException(new Status(code, "from the server"))));
    }

    [Theory]
    [InlineData(StatusCode.Unavailable, 4)]
    [InlineData(StatusCode.Internal, 4)]
    [InlineData(StatusCode.Unknown, 4)]
    [InlineData(StatusCode.DeadlineExceeded, 4)]
    [InlineData(StatusCode.Cancelled, 1)]
    public void ExitCodeOf_StatusMadeByTheClientForABrokenConnection_MapsAsDocumented(StatusCode code, int expected)
    {
        var broken = new HttpRequestException("connection lost", new IOException("reset", new SocketException((int)SocketError.ConnectionReset)));

        Assert.Equal(expected, ErrorReporter.ExitCodeOf(new RpcException(new Status(code, "made here", broken))));
    }

    [Fact]
    public void ExitCodeOf_ClientsOwnReceiveLimit_IsNotARefusal()
    {
        var status = new Status(StatusCode.ResourceExhausted, "Received message exceeds the maximum configured message size.", new InvalidOperationException("limit"));

        Assert.Equal(1, ErrorReporter.ExitCodeOf(new RpcException(status)));
    }

    [Fact]
    public void ExitCodeOf_ClientSideFailureUnrelatedToTheConnection_Is1()
    {
        var status = new Status(StatusCode.Internal, "Failed to deserialize response message.", new InvalidDataException("bad protobuf"));

        Assert.Equal(1, ErrorReporter.ExitCodeOf(new RpcException(status)));
    }

    [Fact]
    public void ExitCodeOf_CliException_KeepsItsCode()
    {
        Assert.Equal(2, ErrorReporter.ExitCodeOf(new CliException("usage", ExitCodes.Usage)));
        Assert.Equal(1, ErrorReporter.ExitCodeOf(new InvalidOperationException("bug")));
    }
}
