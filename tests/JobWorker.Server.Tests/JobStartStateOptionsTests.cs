using JobWorker.Server.Configuration;

namespace JobWorker.Server.Tests;

public sealed class JobStartStateOptionsTests
{
    [Fact]
    public void Validate_InvalidJobStartState_EverySettingNamed()
    {
        var errors = new ServerOptions
        {
            JobOpenFilesSoftLimit = 4096,
            JobOpenFilesHardLimit = 2048,
            JobUmask = "0999",
            JobOomScoreAdjust = -1001,
            JobNice = 20,
        }.Validate();

        Assert.Equal(
            [
                "JobWorker:JobOpenFilesSoftLimit (4096) must not exceed JobOpenFilesHardLimit (2048)",
                "JobWorker:JobUmask '0999' is not an octal mode between 0000 and 0777 (for example 0022 or 0077)",
                "JobWorker:JobOomScoreAdjust must be between -1000 and 1000 (is -1001)",
                "JobWorker:JobNice must be between -20 and 19 (is 20)",
            ],
            errors);
    }

    [Theory]
    [InlineData("")]
    [InlineData("22x")]
    [InlineData("01000")]
    [InlineData("-022")]
    public void Validate_UmaskNotOctal_Refused(string umask)
    {
        var errors = new ServerOptions { JobUmask = umask }.Validate();

        Assert.Equal($"JobWorker:JobUmask '{umask}' is not an octal mode between 0000 and 0777 (for example 0022 or 0077)", Assert.Single(errors));
    }

    [Fact]
    public void JobStartState_Settings_MappedWithUmaskReadAsOctal()
    {
        var options = new ServerOptions { JobOpenFilesSoftLimit = 512, JobOpenFilesHardLimit = 8192, JobUmask = "077", JobOomScoreAdjust = 250, JobNice = 5 };

        var state = options.JobStartState();

        Assert.Empty(options.Validate());
        Assert.Equal(512L, state.OpenFilesSoftLimit);
        Assert.Equal(8192, state.OpenFilesHardLimit);
        Assert.Equal(0b_000_111_111, state.Umask);
        Assert.Equal(250, state.OomScoreAdjust);
        Assert.Equal(5, state.Nice);
        Assert.Equal(new JobWorker.Core.Jobs.JobStartState(), new ServerOptions().JobStartState());
    }
}
