using System.Text;
using System.Text.Json;
using JobWorker.Cli.Formatting;
using JobWorker.Cli.Infrastructure;

namespace JobWorker.Cli.Connection;

/// <summary>
/// Reads and writes the client config file. A write replaces the file atomically (a 0600 temporary file in the same
/// directory, flushed to disk, then renamed over it), so a reader never sees half a file and a crash leaves the old one.
/// </summary>
internal static class ClientConfigFile
{
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The file named by --config, else WORKER_CONFIG, else the default; and whether it was named.</summary>
    public static (string Path, bool Explicit) Locate(string? flag)
    {
        var named = string.IsNullOrWhiteSpace(flag) ? Environment.GetEnvironmentVariable("WORKER_CONFIG") : flag;
        return string.IsNullOrWhiteSpace(named) ? (ConnectionSettings.DefaultConfigPath, false) : (Path.GetFullPath(named), true);
    }

    public static ClientConfig Load(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonSerializer.Deserialize(stream, CliJsonContext.Default.ClientConfig)
                ?? throw new CliException($"config file {path} is empty");
        }
        catch (JsonException ex)
        {
            throw new CliException($"config file {path} is not valid JSON ({ex.Message}): fix it or recreate it with 'worker certs init --force'");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot read config file {path}: {ex.Message}");
        }
    }

    /// <summary>
    /// Reads the file (<paramref name="load"/>, by default its content or an empty config), lets
    /// <paramref name="change"/> modify it and writes it back, holding a lock against other <c>worker</c> commands
    /// from the read to the rename, so a change another command makes at the same time is not lost. An exception from
    /// <paramref name="change"/> writes nothing. The file's directory is created when <paramref name="create"/>;
    /// otherwise a missing directory means there is no file, and <paramref name="change"/> sees an empty config.
    /// </summary>
    public static void Update(string path, bool create, Action<ClientConfig> change, Func<string, ClientConfig>? load = null)
    {
        using var fileLock = Lock(path, create);
        var config = (load ?? LoadOrEmpty)(path);
        change(config);
        Save(path, config);
    }

    private static IDisposable Lock(string path, bool create)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        if (!create && !Directory.Exists(directory))
        {
            return EmptyDisposable.Instance;
        }

        try
        {
            Directory.CreateDirectory(directory, PrivateDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot create the directory of config file {path}: {ex.Message}");
        }

        return DirectoryLock.Take(directory, $"config file {path}");
    }

    /// <summary>The file's content, or an empty config when there is no file yet.</summary>
    public static ClientConfig LoadOrEmpty(string path) => File.Exists(path) ? Load(path) : new ClientConfig();

    private sealed class EmptyDisposable : IDisposable
    {
        public static readonly EmptyDisposable Instance = new();

        public void Dispose()
        {
        }
    }

    public static void Save(string path, ClientConfig config)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(directory, PrivateDirectory);
            var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(config, CliJsonContext.Default.ClientConfig) + "\n");

            // Created 0600 from the start: the file names private keys, and a chmod after the write would leave a window.
            using (var stream = new FileStream(temporary, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                UnixCreateMode = PrivateFile,
            }))
            {
                stream.Write(json);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot write config file {path}: {ex.Message}");
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }
}
