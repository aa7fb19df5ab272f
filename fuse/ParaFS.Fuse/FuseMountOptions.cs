using Microsoft.Extensions.Logging;

namespace ParaFS.Fuse;

/// <summary>How <see cref="FuseSession.Mount"/> mounts and how the session negotiates INIT.</summary>
public sealed class FuseMountOptions
{
    /// <summary>An existing, empty directory that is not already a mount point.</summary>
    public required string MountPoint { get; init; }

    /// <summary>The mount's source string, shown as the device in /proc/mounts (libfuse's fsname).</summary>
    public string FsName { get; init; } = "fuse";

    /// <summary>The subtype: the file system type is "fuse.&lt;Subtype&gt;" (e.g. fuse.parafs); null or empty gives plain "fuse".</summary>
    public string? Subtype { get; init; }

    /// <summary>allow_other: let users other than the mounting one use the mount.</summary>
    public bool AllowOther { get; init; }

    /// <summary>
    /// default_permissions: the kernel checks access from mode, uid and gid (and ACCESS is never
    /// sent). On by default; turn it off only if the file system enforces permissions itself.
    /// </summary>
    public bool DefaultPermissions { get; init; } = true;

    /// <summary>Mount read-only (MS_RDONLY).</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Reader threads, each blocked in read(2) on its own cloned /dev/fuse descriptor.</summary>
    public int ReaderThreads { get; init; } = 4;

    /// <summary>
    /// FUSE_WRITEBACK_CACHE: writes land in the page cache and reach the file system later, in
    /// large pieces. The kernel then owns size and mtime, and data must not change outside the mount.
    /// </summary>
    public bool WritebackCache { get; init; }

    /// <summary>
    /// FUSE_HANDLE_KILLPRIV_V2: the file system clears suid/sgid itself (FUSE_WRITE_KILL_SUIDGID,
    /// FATTR_KILL_SUIDGID), which spares a GETXATTR("security.capability") before each write.
    /// </summary>
    public bool HandleKillPriv { get; init; }

    /// <summary>
    /// FUSE_POSIX_LOCKS and FUSE_FLOCK_LOCKS: fcntl record locks and flock(2) go to the file
    /// system (GETLK, SETLK, SETLKW), which can make them hold across machines. Off: the kernel
    /// keeps them itself, seen only on this machine.
    /// </summary>
    public bool Locks { get; init; }

    /// <summary>Largest WRITE payload in bytes (a multiple of 4096, at most 1 MiB with the default max_pages_limit of 256).</summary>
    public int MaxWrite { get; init; } = 1024 * 1024;

    /// <summary>
    /// The mount's read-ahead in KiB, set through /sys/class/bdi/MAJ:MIN/read_ahead_kb once INIT is
    /// answered (the kernel caps the read-ahead at INIT, so an earlier setting is lost). FUSE starts
    /// a mount at 128 KiB. 0 leaves the kernel's value. Needs root; otherwise logged and left.
    /// </summary>
    public int ReadAheadKb { get; init; }

    /// <summary>max_background: how many background requests (readahead, async direct I/O) the kernel keeps in flight.</summary>
    public int MaxBackground { get; init; } = 64;

    /// <summary>Mount through fusermount3 even when running as root (normally only ordinary users do).</summary>
    public bool UseFusermount { get; init; }

    /// <summary>Where failures are logged; null writes one line per failure to standard error.</summary>
    public ILogger? Logger { get; init; }
}
