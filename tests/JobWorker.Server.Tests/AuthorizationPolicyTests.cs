using JobWorker.Pki;
using JobWorker.Server.Security;

namespace JobWorker.Server.Tests;

public sealed class AuthorizationPolicyTests
{
    private static readonly ClientIdentity Alice = new("alice", Roles.User);
    private static readonly ClientIdentity Root = new("root", Roles.Admin);

    public static TheoryData<string, JobOperation, Ownership, bool> Table => new()
    {
        { Roles.User, JobOperation.Start, Ownership.NoJob, true },
        { Roles.User, JobOperation.List, Ownership.Own, true },
        { Roles.User, JobOperation.List, Ownership.Other, false },
        { Roles.User, JobOperation.Get, Ownership.Own, true },
        { Roles.User, JobOperation.Get, Ownership.Other, false },
        { Roles.User, JobOperation.Stop, Ownership.Own, true },
        { Roles.User, JobOperation.Stop, Ownership.Other, false },
        { Roles.User, JobOperation.StreamOutput, Ownership.Own, true },
        { Roles.User, JobOperation.StreamOutput, Ownership.Other, false },
        { Roles.User, JobOperation.Remove, Ownership.Own, true },
        { Roles.User, JobOperation.Remove, Ownership.Other, false },
        { Roles.Admin, JobOperation.Start, Ownership.NoJob, true },
        { Roles.Admin, JobOperation.List, Ownership.Own, true },
        { Roles.Admin, JobOperation.List, Ownership.Other, true },
        { Roles.Admin, JobOperation.Get, Ownership.Own, true },
        { Roles.Admin, JobOperation.Get, Ownership.Other, true },
        { Roles.Admin, JobOperation.Stop, Ownership.Own, true },
        { Roles.Admin, JobOperation.Stop, Ownership.Other, true },
        { Roles.Admin, JobOperation.StreamOutput, Ownership.Own, true },
        { Roles.Admin, JobOperation.StreamOutput, Ownership.Other, true },
        { Roles.Admin, JobOperation.Remove, Ownership.Own, true },
        { Roles.Admin, JobOperation.Remove, Ownership.Other, true },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void IsAllowed_Table_MatchesPolicy(string role, JobOperation operation, Ownership ownership, bool expected)
    {
        Assert.Equal(expected, AuthorizationPolicy.IsAllowed(role, operation, ownership));
    }

    [Fact]
    public void IsAllowed_EveryCombination_CoveredByTheTable()
    {
        // A new operation or role must be decided explicitly in the test table above.
        var covered = Table.Select(row => (row.Data.Item1, row.Data.Item2, row.Data.Item3)).ToHashSet();
        foreach (var role in new[] { Roles.User, Roles.Admin })
        {
            foreach (var operation in Enum.GetValues<JobOperation>())
            {
                var ownerships = operation == JobOperation.Start ? [Ownership.NoJob] : new[] { Ownership.Own, Ownership.Other };
                foreach (var ownership in ownerships)
                {
                    Assert.Contains((role, operation, ownership), covered);
                }
            }
        }
    }

    [Theory]
    [InlineData("root")]
    [InlineData("Admin")]
    [InlineData("")]
    public void IsAllowed_UnknownRole_DeniedEverything(string role)
    {
        foreach (var operation in Enum.GetValues<JobOperation>())
        {
            foreach (var ownership in Enum.GetValues<Ownership>())
            {
                Assert.False(AuthorizationPolicy.IsAllowed(role, operation, ownership));
            }
        }
    }

    [Fact]
    public void IsAllowed_UserOnOwnJob_AllowedOnOtherDenied()
    {
        Assert.True(AuthorizationPolicy.IsAllowed(Alice, JobOperation.Stop, "alice"));
        Assert.False(AuthorizationPolicy.IsAllowed(Alice, JobOperation.Stop, "bob"));
        Assert.False(AuthorizationPolicy.IsAllowed(Alice, JobOperation.Stop, "Alice")); // names are exact
        Assert.False(AuthorizationPolicy.IsAllowed(Alice, JobOperation.Get, null));
    }

    [Fact]
    public void IsAllowed_AdminOnAnyJob_Allowed()
    {
        Assert.True(AuthorizationPolicy.IsAllowed(Root, JobOperation.Remove, "alice"));
        Assert.True(AuthorizationPolicy.IsAllowed(Root, JobOperation.StreamOutput, null));
    }

    [Fact]
    public void IsAllowed_Start_IgnoresOwner()
    {
        Assert.True(AuthorizationPolicy.IsAllowed(Alice, JobOperation.Start, "bob"));
    }
}
