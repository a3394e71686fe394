using JobWorker.Core.Cgroups;
using JobWorker.Core.Tests.Infrastructure;

namespace JobWorker.Core.Tests.Cgroups;

public sealed class CgroupFilesTests
{
    [Fact]
    public void TryRead_MissingFileOrDirectory_Null()
    {
        var missing = Path.Combine(Path.GetTempPath(), "jobworker-test-" + Guid.NewGuid().ToString("N"));

        Assert.Null(CgroupFiles.TryRead(missing));
        Assert.Null(CgroupFiles.TryRead(Path.Combine(missing, "memory.current")));
        Assert.Null(CgroupFiles.SingleValue(Path.Combine(missing, "pids.current")));
    }

    [Fact]
    public void TryRead_LargerThanOneRead_WholeText()
    {
        var path = Path.Combine(Path.GetTempPath(), "jobworker-test-" + Guid.NewGuid().ToString("N"));
        var text = string.Concat(Enumerable.Range(0, 2000).Select(i => $"8:{i} rbytes={i} wbytes={i * 2}\n"));
        File.WriteAllText(path, text);
        try
        {
            Assert.True(text.Length > 3 * 4096);
            Assert.Equal(text, CgroupFiles.TryRead(path));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TryRead_OtherErrors_IOExceptionNamingFileAndErrno()
    {
        var ex = Assert.Throws<IOException>(() => CgroupFiles.TryRead(Path.GetTempPath()));

        Assert.Contains(Path.GetTempPath(), ex.Message, StringComparison.Ordinal);
        Assert.Contains("EISDIR", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_CgroupFile_ItsText()
    {
        var group = Path.Combine(TestRunner.CgroupMount, "jobworker-test-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(group);
        try
        {
            var events = CgroupFiles.TryRead(Path.Combine(group, "cgroup.events"));

            Assert.NotNull(events);
            Assert.StartsWith("populated 0\n", events, StringComparison.Ordinal);
            Assert.Equal(0, CgroupFiles.KeyedValue(events, "populated"));
        }
        finally
        {
            Directory.Delete(group);
        }
    }
}
