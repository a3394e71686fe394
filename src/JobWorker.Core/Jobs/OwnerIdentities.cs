using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using JobWorker.Core.Processes;
using JobWorker.Core.State;
using Microsoft.Win32.SafeHandles;

namespace JobWorker.Core.Jobs;

/// <summary>
/// <see cref="JobIdentityMode.PerOwner"/>: the account and private directory of each owner (docs/design-identity.md).
/// An owner keeps the id allocated to it for the life of the state directory; an allocation is on disk before the
/// first job runs under it.
/// </summary>
internal sealed partial class OwnerIdentities
{
    private const string Prefix = "Identity.";
    private const uint RootMode = 0b_111_101_101; // 0755
    private const uint PrivateMode = 0b_111_000_000; // 0700

    private readonly JobIdentityOptions _options;
    private readonly OwnerIdStore _store;
    private readonly Lock _lock = new();
    private volatile AccountDatabase _accounts;

    private OwnerIdentities(JobIdentityOptions options, OwnerIdStore store, AccountDatabase accounts)
    {
        _options = options;
        _store = store;
        _accounts = accounts;
    }

    /// <summary>
    /// Checks the options against the host's accounts and reads the allocations of the state directory.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it and the fix.</exception>
    /// <exception cref="JobWorkerException">An allocation in the state directory collides with an account, or the
    /// allocation file is unreadable.</exception>
    public static OwnerIdentities Open(JobIdentityOptions options, string stateDirectory)
    {
        var accounts = AccountDatabase.Read();
        ValidateRange(options, accounts);
        ValidateAccounts(options, accounts);
        PrepareRoot(options, stateDirectory);
        var store = OwnerIdStore.Open(stateDirectory);
        foreach (var (owner, id) in store.Ids)
        {
            if (accounts.Describe(id) is { } clash)
            {
                throw new JobWorkerException(
                    $"Owner '{owner}' was allocated id {id} ({store.Path}), which is now used by {clash}: jobs of the two would share " +
                    "an identity. Remove or renumber that account (the range must be reserved for JobWorker; see docs/operations.md).");
            }
        }

        return new OwnerIdentities(options, store, accounts);
    }

    /// <summary>
    /// The account and private directory of the spec's owner, allocating an id on its first job and
    /// creating (or repairing) its directory.
    /// </summary>
    /// <exception cref="ArgumentException">The owner is missing or not a valid name.</exception>
    /// <exception cref="JobStartException">The range is exhausted (<see cref="JobStartFailure.UserIdsExhausted"/>), a
    /// mapped account no longer exists (<see cref="JobStartFailure.UserNotFound"/>), or the allocation or directory
    /// cannot be written (<see cref="JobStartFailure.StateError"/>).</exception>
    public (UserAccount Account, string Directory) Resolve(JobSpec spec)
    {
        var owner = spec.Owner;
        if (owner is null)
        {
            throw new ArgumentException(
                "Owner is required: every owner's jobs run under a uid of their own (JobRunnerOptions.Identity.Mode = PerOwner). " +
                "Set JobSpec.Owner, or choose JobIdentityMode.SharedAccount to run every job as JobRunnerOptions.User.",
                nameof(spec));
        }

        if (!IsValidOwner(owner))
        {
            throw new ArgumentException(
                $"Owner '{Shown(owner)}' is not a valid owner name: it names the owner's directory, so it must be 1-64 characters from " +
                "[A-Za-z0-9._-], not starting with '.' or '-'.",
                nameof(spec));
        }

        var accounts = CurrentAccounts();
        var directory = Path.Combine(_options.UserDirectoryRoot, owner);
        UserAccount account;
        if (_options.Accounts.TryGetValue(owner, out var name))
        {
            var entry = accounts.FindUser(name)
                ?? throw new JobStartException(
                    JobStartFailure.UserNotFound,
                    $"Owner '{owner}' is mapped to the account '{name}' ({Prefix}Accounts), which no longer exists in /etc/passwd. " +
                    "Create the account again or change the mapping; the job is not run as any other account.");
            account = new UserAccount(entry.Uid, entry.Gid, entry.Name, entry.Home);
        }
        else
        {
            var id = Allocate(owner, accounts);
            account = new UserAccount(id, id, owner, directory);
        }

        PrepareDirectory(directory, account);
        return (account, directory);
    }

    private uint Allocate(string owner, AccountDatabase accounts)
    {
        if (_store.Ids.TryGetValue(owner, out var known))
        {
            return known;
        }

        lock (_lock)
        {
            if (_store.Ids.TryGetValue(owner, out known))
            {
                return known;
            }

            var taken = _store.Ids.Values.ToHashSet();
            for (var id = _options.FirstId; ; id++)
            {
                if (!taken.Contains(id) && accounts.Describe(id) is null)
                {
                    try
                    {
                        _store.Add(owner, id);
                    }
                    catch (IOException ex)
                    {
                        throw new JobStartException(JobStartFailure.StateError, $"Cannot record the id of owner '{owner}': {ex.Message}", ex.HResult, ex);
                    }

                    return id;
                }

                if (id == _options.LastId)
                {
                    break;
                }
            }

            var count = _options.LastId - _options.FirstId + 1;
            throw new JobStartException(
                JobStartFailure.UserIdsExhausted,
                $"No id is left for owner '{owner}': all {count} ids of {Prefix}FirstId..LastId ({_options.FirstId}-{_options.LastId}) " +
                $"are allocated to other owners ({taken.Count}) or used by accounts. Widen the range (docs/operations.md); " +
                "ids are never shared between owners.");
        }
    }

    // /etc/passwd and /etc/group are read again only when one of them changed (two stats per start).
    private AccountDatabase CurrentAccounts()
    {
        var current = _accounts;
        if (current.IsCurrent())
        {
            return current;
        }

        var fresh = AccountDatabase.Read();
        _accounts = fresh;
        return fresh;
    }

    // The directory is (re)made the owner's at every start: created 0700 if missing, its owner and mode corrected if
    // someone changed them. Only root can write the root directory, so nothing else can have put a link here.
    private static void PrepareDirectory(string directory, UserAccount account)
    {
        if (Interop.Sys.MakeDirectory(directory, PrivateMode) != 0 && Marshal.GetLastPInvokeError() is var mkdirErrno && mkdirErrno != Interop.EEXIST)
        {
            throw new JobStartException(JobStartFailure.StateError, $"Cannot create the private directory {directory} of user {account.Name}: {Interop.Describe(mkdirErrno)}.", mkdirErrno);
        }

        int fd = Interop.Files.Open(directory, Interop.Files.O_RDONLY | Interop.Files.O_DIRECTORY | Interop.Files.O_NOFOLLOW | Interop.Files.O_CLOEXEC, 0);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new JobStartException(JobStartFailure.StateError, $"Cannot open the private directory {directory} of user {account.Name}: {Interop.Describe(errno)}. It must be a directory, not a link.", errno);
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Interop.Locks.StatxFd(handle, string.Empty, Interop.Locks.AT_EMPTY_PATH, Interop.Locks.STATX_BASIC_STATS, out var st) != 0
            || st.Uid != account.Uid || st.Gid != account.Gid || (st.Mode & 0xfff) != PrivateMode)
        {
            if (Interop.Files.Fchown(handle, account.Uid, account.Gid) != 0 || Interop.Files.Fchmod(handle, PrivateMode) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new JobStartException(JobStartFailure.StateError, $"Cannot give the private directory {directory} to user {account.Name} (uid {account.Uid}): {Interop.Describe(errno)}.", errno);
            }
        }
    }

    private static void ValidateRange(JobIdentityOptions options, AccountDatabase accounts)
    {
        var range = $"{Prefix}FirstId..LastId ({options.FirstId}-{options.LastId})";
        if (options.FirstId > options.LastId)
        {
            throw new ArgumentException($"{range} is empty: FirstId is above LastId. The default is {JobIdentityOptions.DefaultFirstId}-{JobIdentityOptions.DefaultLastId}.", nameof(options));
        }

        if (options.FirstId == 0)
        {
            throw new ArgumentException($"{range} includes uid 0 (root): jobs would run as root. Choose a range of unused ids, such as {JobIdentityOptions.DefaultFirstId}-{JobIdentityOptions.DefaultLastId}.", nameof(options));
        }

        if (options.LastId == uint.MaxValue)
        {
            throw new ArgumentException($"{range} includes {uint.MaxValue}, which is (uid_t)-1 and cannot be a uid.", nameof(options));
        }

        var clashes = accounts.InRange(options.FirstId, options.LastId).Take(4).ToList();
        if (clashes.Count > 0)
        {
            throw new ArgumentException(
                $"{range} overlaps existing accounts ({string.Join(", ", clashes)}): their files and processes would be another owner's. " +
                "Choose a range no user or group uses, and reserve it (docs/operations.md).",
                nameof(options));
        }
    }

    private static void ValidateAccounts(JobIdentityOptions options, AccountDatabase accounts)
    {
        ArgumentNullException.ThrowIfNull(options.Accounts, $"{Prefix}Accounts");
        var seen = new Dictionary<uint, string>();
        foreach (var (owner, name) in options.Accounts)
        {
            if (!IsValidOwner(owner))
            {
                throw new ArgumentException($"{Prefix}Accounts: '{Shown(owner)}' is not a valid owner name (1-64 characters from [A-Za-z0-9._-], not starting with '.' or '-').", nameof(options));
            }

            var entry = accounts.FindUser(name ?? string.Empty)
                ?? throw new ArgumentException(
                    $"{Prefix}Accounts: owner '{owner}' is mapped to the account '{Shown(name ?? string.Empty)}', which does not exist in /etc/passwd. " +
                    "Create the account or remove the mapping.",
                    nameof(options));
            if (entry.Uid == 0)
            {
                throw new ArgumentException($"{Prefix}Accounts: owner '{owner}' is mapped to '{name}', which is root (uid 0); jobs never run as root.", nameof(options));
            }

            if (!seen.TryAdd(entry.Uid, owner))
            {
                throw new ArgumentException($"{Prefix}Accounts: owners '{seen[entry.Uid]}' and '{owner}' are mapped to the same uid {entry.Uid}; each owner needs an account of its own, or their jobs could signal each other.", nameof(options));
            }
        }
    }

    private static void PrepareRoot(JobIdentityOptions options, string stateDirectory)
    {
        var root = options.UserDirectoryRoot;
        var name = $"{Prefix}UserDirectoryRoot";
        if (string.IsNullOrWhiteSpace(root) || !Path.IsPathFullyQualified(root))
        {
            throw new ArgumentException($"{name} must be an absolute path, not '{root}'.", nameof(options));
        }

        root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        var state = Path.TrimEndingDirectorySeparator(Path.GetFullPath(stateDirectory));
        if (IsSameOrUnder(root, "/tmp"))
        {
            throw new ArgumentException($"{name} ({root}) is under /tmp: jobs with mount isolation get a private /tmp and could not enter their directories. Choose a directory such as /var/lib/jobworker-users.", nameof(options));
        }

        if (IsSameOrUnder(root, state) || IsSameOrUnder(state, root))
        {
            throw new ArgumentException($"{name} ({root}) and the state directory ({state}) must not contain each other: the state directory is private to the server and hidden from mount-isolated jobs.", nameof(options));
        }

        if (!Directory.Exists(root))
        {
            Directory.CreateDirectory(root, (UnixFileMode)RootMode);
            File.SetUnixFileMode(root, (UnixFileMode)RootMode);
        }

        Interop.CheckIo(Interop.Locks.StatxPath(Interop.Locks.AT_FDCWD, root, Interop.Locks.AT_SYMLINK_NOFOLLOW, Interop.Locks.STATX_BASIC_STATS, out var st), "statx", root);
        if ((st.Mode & 0xf000) != 0x4000)
        {
            throw new ArgumentException($"{name} ({root}) is not a directory (a symbolic link is not accepted).", nameof(options));
        }

        if (st.Uid != 0 || (st.Mode & 0b_000_010_010) != 0)
        {
            throw new ArgumentException(
                $"{name} ({root}) must be owned by root and writable by no one else (it is uid {st.Uid}, mode {Convert.ToString(st.Mode & 0xfff, 8)}): " +
                $"a user who can write it could replace another user's directory. chown root {root}; chmod go-w {root}.",
                nameof(options));
        }

        for (var dir = root; dir is not null; dir = Path.GetDirectoryName(dir))
        {
            var mode = (int)File.GetUnixFileMode(dir);
            if ((mode & 0b_000_000_001) == 0)
            {
                throw new ArgumentException(
                    $"{name} ({root}) is not reachable by the jobs' users: {dir} has mode {Convert.ToString(mode, 8)}, without search (x) permission " +
                    $"for others. chmod o+x {dir}, or choose another directory.",
                    nameof(options));
            }
        }
    }

    private static bool IsSameOrUnder(string path, string directory)
        => path == directory || path.StartsWith(directory.EndsWith('/') ? directory : directory + "/", StringComparison.Ordinal);

    private static bool IsValidOwner(string owner) => OwnerPattern().IsMatch(owner);

    private static string Shown(string text) => text.Length > 64 ? text[..64] + "..." : new string([.. text.Select(c => char.IsControl(c) ? '?' : c)]);

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex OwnerPattern();

    /// <summary>The users and groups of <c>/etc/passwd</c> and <c>/etc/group</c> at one moment.</summary>
    private sealed class AccountDatabase
    {
        private const string PasswdPath = "/etc/passwd";
        private const string GroupPath = "/etc/group";

        private readonly List<PasswdEntry> _users = [];
        private readonly List<(string Name, uint Gid)> _groups = [];
        private readonly DateTime _passwdTime;
        private readonly DateTime _groupTime;

        private AccountDatabase(DateTime passwdTime, DateTime groupTime)
        {
            _passwdTime = passwdTime;
            _groupTime = groupTime;
        }

        public static AccountDatabase Read()
        {
            var database = new AccountDatabase(File.GetLastWriteTimeUtc(PasswdPath), File.GetLastWriteTimeUtc(GroupPath));
            foreach (var fields in Lines(PasswdPath))
            {
                if (fields.Length >= 7 && uint.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
                    && uint.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
                {
                    database._users.Add(new PasswdEntry(fields[0], uid, gid, fields[5].StartsWith('/') ? fields[5] : "/"));
                }
            }

            foreach (var fields in Lines(GroupPath))
            {
                if (fields.Length >= 3 && uint.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var gid))
                {
                    database._groups.Add((fields[0], gid));
                }
            }

            return database;
        }

        public bool IsCurrent() => File.GetLastWriteTimeUtc(PasswdPath) == _passwdTime && File.GetLastWriteTimeUtc(GroupPath) == _groupTime;

        public PasswdEntry? FindUser(string name) => _users.FirstOrDefault(u => u.Name == name);

        /// <summary>What uses <paramref name="id"/> as a uid or gid ("user foo (uid 1000)"), or null.</summary>
        public string? Describe(uint id)
            => _users.Where(u => u.Uid == id).Select(u => $"user {u.Name} (uid {id})")
                .Concat(_groups.Where(g => g.Gid == id).Select(g => $"group {g.Name} (gid {id})"))
                .FirstOrDefault();

        public IEnumerable<string> InRange(uint first, uint last)
            => _users.Where(u => u.Uid >= first && u.Uid <= last).Select(u => $"user {u.Name} (uid {u.Uid})")
                .Concat(_groups.Where(g => g.Gid >= first && g.Gid <= last).Select(g => $"group {g.Name} (gid {g.Gid})"));

        private static IEnumerable<string[]> Lines(string path)
            => File.ReadLines(path).Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split(':'));
    }

    private sealed record PasswdEntry(string Name, uint Uid, uint Gid, string Home);
}
