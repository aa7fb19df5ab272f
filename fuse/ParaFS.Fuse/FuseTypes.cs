namespace ParaFS.Fuse;

/// <summary>Who is asking (fuse_in_header) and a token cancelled by FUSE_INTERRUPT or session end.</summary>
public readonly record struct FuseContext(ulong Unique, uint Uid, uint Gid, uint Pid, CancellationToken Cancellation)
{
    /// <summary>The request this context belongs to; null for a context made outside a session.</summary>
    internal Session.Request? Request { get; init; }

    /// <summary>
    /// Keeps the request's buffer, which the handler's Memory arguments (WRITE data, xattr
    /// values) point into, valid after the handler has returned and its reply is sent, until the
    /// returned lease is disposed: a file system that sends written bytes on in the background
    /// keeps them there instead of copying them. Null where there is no request buffer (a context
    /// made outside a session); the caller then copies what it keeps.
    /// </summary>
    public IDisposable? RetainRequest() => Request?.Retain();
}

/// <summary>fuse_attr in managed form. Mode includes the file type bits (S_IFREG etc.). Times in ns since epoch.</summary>
public readonly record struct FuseAttr(ulong Ino, ulong Size, ulong Blocks, long AtimeNs, long MtimeNs, long CtimeNs, uint Mode, uint Nlink, uint Uid, uint Gid, uint Rdev, uint BlockSize);

/// <summary>
/// fuse_entry_out in managed form. NodeId 0 with a positive EntryTimeout, returned from lookup,
/// caches a negative entry.
/// </summary>
public readonly record struct FuseEntry(ulong NodeId, ulong Generation, FuseAttr Attr, TimeSpan EntryTimeout, TimeSpan AttrTimeout);

/// <summary>fuse_open_out: the handle the kernel passes back, and FOPEN_DIRECT_IO / FOPEN_KEEP_CACHE.</summary>
/// <summary>
/// An advisory lock as fcntl describes it (fuse_file_lock): bytes <see cref="Start"/> to
/// <see cref="End"/> inclusive (<see cref="ToEnd"/>: to the end of the file), type F_RDLCK 0,
/// F_WRLCK 1 or F_UNLCK 2, and the holder's pid (0 when it is not a process of this machine).
/// </summary>
public readonly record struct FuseLock(ulong Start, ulong End, int Type, uint Pid)
{
    public const int ReadLock = 0;
    public const int WriteLock = 1;
    public const int Unlock = 2;

    /// <summary>The kernel's OFFSET_MAX: a lock to the end of the file, however long it grows.</summary>
    public const ulong ToEnd = long.MaxValue;
}

public readonly record struct FuseOpen(ulong FileHandle, bool DirectIo = false, bool KeepCache = false);

/// <summary>fuse_kstatfs in managed form.</summary>
public readonly record struct FuseStatFs(ulong Blocks, ulong BlocksFree, ulong BlocksAvailable, ulong Files, ulong FilesFree, uint BlockSize, uint NameLength, uint FragmentSize);

/// <summary>
/// fuse_setattr_in: Valid is the FATTR_* mask (FATTR_MODE 1, UID 2, GID 4, SIZE 8, ATIME 16,
/// MTIME 32, FH 64, ATIME_NOW 128, MTIME_NOW 256, LOCKOWNER 512, CTIME 1024, KILL_SUIDGID 2048).
/// </summary>
public readonly record struct FuseSetAttr(uint Valid, ulong? FileHandle, ulong Size, long AtimeNs, long MtimeNs, long CtimeNs, uint Mode, uint Uid, uint Gid);
