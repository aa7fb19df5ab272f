using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;
using ParaFS.Common.Interop;

namespace ParaFS.Common.Storage;

/// <summary>
/// One server process at a time on a store: an exclusive flock(2), held for as long as the server
/// runs, on the file <c>lock</c> in a data directory (the MDS's SQLite store, a dir OST) or on a
/// block store's file or device itself. Two servers on one store would each trust their own
/// memory (open handles, the block store's allocation map and journal) and corrupt it: a second
/// one started by mistake, or by a supervisor while the first still runs, is refused instead.
/// The kernel drops the lock when the holder exits, kill -9 included, so a crash leaves nothing
/// to clean up. Like Lustre's multiple-mount protection it guards one machine's processes; a
/// store shared across machines (an NVMe-oF namespace) is not covered.
/// </summary>
public sealed class ExclusiveUse : IDisposable
{
    /// <summary>The lock file's name inside a data directory.</summary>
    public const string FileName = "lock";

    private readonly SafeFileHandle _handle;

    private ExclusiveUse(SafeFileHandle handle) => _handle = handle;

    /// <summary>
    /// Takes the directory's lock file (and writes this process's id into it, for the message the
    /// next one gets), or throws a <see cref="StartupException"/> naming the process that holds it.
    /// <paramref name="server"/> says who asks ("parafs mds"), for the message.
    /// </summary>
    public static ExclusiveUse OfDirectory(string directory, string server)
    {
        var path = Path.Combine(directory, FileName);
        var handle = Open(path, create: true, server);
        if (!Libc.TryLockExclusive(handle, path))
        {
            var holder = ReadHolder(handle);
            handle.Dispose();
            throw new StartupException(
                $"{server}: {directory} is in use by another process ({(holder is null ? "a process" : $"pid {holder}")} holds {path}); " +
                "one process at a time may use a store: stop that process first, or give another directory");
        }

        var pid = Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
        if (Libc.PwriteHandle(handle, pid, pid.Length, 0) != pid.Length)
        {
            // Only the message a refused second server prints depends on it.
            pid = [];
        }

        Libc.Truncate(path, pid.Length);
        return new ExclusiveUse(handle);
    }

    /// <summary>Locks a block store's file or device itself (nothing is written to it).</summary>
    public static ExclusiveUse OfDevice(string path, string server)
    {
        var handle = Open(path, create: false, server);
        if (!Libc.TryLockExclusive(handle, path))
        {
            handle.Dispose();
            throw new StartupException(
                $"{server}: {path} is in use by another process (one holds an flock on it); " +
                "one process at a time may use a store: stop that process first (fuser -v " + path + " names it), or give another device");
        }

        return new ExclusiveUse(handle);
    }

    public void Dispose() => _handle.Dispose();

    private static SafeFileHandle Open(string path, bool create, string server)
    {
        try
        {
            return Libc.OpenForLock(path, create);
        }
        catch (ParaFsException e)
        {
            throw new StartupException($"{server}: {e.Message}", e);
        }
    }

    private static string? ReadHolder(SafeFileHandle handle)
    {
        Span<byte> buffer = stackalloc byte[32];
        var n = Libc.PreadHandle(handle, buffer, buffer.Length, 0);
        return n > 0 && int.TryParse(Encoding.ASCII.GetString(buffer[..(int)n]).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
            ? pid.ToString(CultureInfo.InvariantCulture)
            : null;
    }
}
