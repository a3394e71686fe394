using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using JobWorker.Protocol.V1;
using JobWorker.Server.Services;

namespace JobWorker.Server.Tests;

/// <summary>A page written from encoded entries is byte for byte the generated ListJobsResponse.</summary>
public sealed class ListJobsPageTests
{
    [Theory]
    [InlineData(0, 0, "")]
    [InlineData(1, 10, "")]
    [InlineData(3, 100, "token-é")]
    [InlineData(2, 200, "")] // entries of 128 bytes and more: two-byte lengths
    [InlineData(2, 20_000, "AQAAAAAAAAA")] // three-byte lengths
    [InlineData(100, 150, "next")]
    public void ToByteArray_EntriesAndToken_SameBytesAsTheGeneratedResponse(int count, int commandLength, string token)
    {
        var expected = new ListJobsResponse { NextPageToken = token };
        for (var i = 0; i < count; i++)
        {
            expected.Jobs.Add(new JobStatus
            {
                JobId = Guid.NewGuid().ToString(),
                Owner = "alice",
                Command = new string('c', commandLength),
                Args = { "-v", i.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                State = JobState.Exited,
                ExitCode = i,
                StartedAt = Timestamp.FromDateTimeOffset(DateTimeOffset.UnixEpoch.AddSeconds(i)),
                Usage = new ResourceUsage { CpuUsageUsec = i },
            });
        }

        var page = new ListJobsPage(expected.Jobs.Select(j => j.ToByteArray()).ToArray(), token);

        Assert.Equal(expected.ToByteArray(), page.ToByteArray());
        Assert.Equal(expected.CalculateSize(), page.CalculateSize());
        Assert.Equal(expected, page.ToMessage());
    }

    [Fact]
    public void Empty_NoEntriesNoToken_EncodesToNothing()
    {
        Assert.Empty(ListJobsPage.Empty.ToByteArray());
        Assert.Equal(new ListJobsResponse(), ListJobsPage.Empty.ToMessage());
    }
}
