namespace ParaFS.Fuse;

/// <summary>
/// A file system served by <see cref="FuseSession"/>. Node ids are the kernel's handles for
/// inodes (1 is the root); every method may be called concurrently from several threads.
/// A method answers an error by throwing <see cref="FuseException"/>; an
/// <see cref="OperationCanceledException"/> after <see cref="FuseContext.Cancellation"/> fired is
/// answered EINTR; any other exception is answered EIO and logged (the session goes on).
/// Memory arguments (write data, read destinations, xattr values) point into the session's
/// request buffers and are valid only until the returned task completes.
/// A method runs on a reader thread until its first incomplete await, so it should await rather
/// than block. <see cref="Forget"/> and <see cref="Destroy"/> are synchronous and must be quick.
/// </summary>
public interface IFuseFileSystem
{
    /// <summary>LOOKUP: a successful reply adds one to the kernel's lookup count of the node.</summary>
    ValueTask<FuseEntry> LookupAsync(FuseContext context, ulong parent, string name);

    /// <summary>FORGET / BATCH_FORGET: the kernel drops <paramref name="lookups"/> lookups of the node. Never answered.</summary>
    void Forget(ulong nodeId, ulong lookups);

    ValueTask<(FuseAttr Attr, TimeSpan Timeout)> GetAttrAsync(FuseContext context, ulong nodeId, ulong? fileHandle);

    ValueTask<(FuseAttr Attr, TimeSpan Timeout)> SetAttrAsync(FuseContext context, ulong nodeId, FuseSetAttr changes);

    ValueTask<string> ReadLinkAsync(FuseContext context, ulong nodeId);

    ValueTask<FuseEntry> MknodAsync(FuseContext context, ulong parent, string name, uint mode, uint rdev, uint umask);

    ValueTask<FuseEntry> MkdirAsync(FuseContext context, ulong parent, string name, uint mode, uint umask);

    ValueTask<FuseEntry> SymlinkAsync(FuseContext context, ulong parent, string name, string target);

    ValueTask UnlinkAsync(FuseContext context, ulong parent, string name);

    ValueTask RmdirAsync(FuseContext context, ulong parent, string name);

    /// <summary>RENAME (flags 0) and RENAME2 (RENAME_NOREPLACE 1, RENAME_EXCHANGE 2, RENAME_WHITEOUT 4).</summary>
    ValueTask RenameAsync(FuseContext context, ulong parent, string name, ulong newParent, string newName, uint flags);

    ValueTask<FuseEntry> LinkAsync(FuseContext context, ulong nodeId, ulong newParent, string newName);

    /// <summary>OPEN: <paramref name="flags"/> are the open(2) flags (O_TRUNC included: ATOMIC_O_TRUNC is negotiated).</summary>
    ValueTask<FuseOpen> OpenAsync(FuseContext context, ulong nodeId, int flags);

    ValueTask<(FuseEntry Entry, FuseOpen Open)> CreateAsync(FuseContext context, ulong parent, string name, uint mode, int flags, uint umask);

    /// <summary>Fills destination (at most its length) and returns the byte count; the library sends header + bytes in one writev.</summary>
    ValueTask<int> ReadAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, Memory<byte> destination);

    /// <summary>Returns the number of bytes written. <paramref name="writeFlags"/>: FUSE_WRITE_CACHE 1, LOCKOWNER 2, KILL_SUIDGID 4.</summary>
    ValueTask<int> WriteAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, ReadOnlyMemory<byte> data, uint writeFlags);

    ValueTask FlushAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong lockOwner);

    ValueTask ReleaseAsync(FuseContext context, ulong nodeId, ulong fileHandle, int flags);

    ValueTask FsyncAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly);

    ValueTask<FuseOpen> OpenDirAsync(FuseContext context, ulong nodeId, int flags);

    /// <summary>offset is 0 or the nextOffset of the last entry the kernel got; plus = READDIRPLUS.</summary>
    ValueTask ReadDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, FuseDirectoryBuffer buffer, bool plus);

    ValueTask ReleaseDirAsync(FuseContext context, ulong nodeId, ulong fileHandle);

    ValueTask FsyncDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly);

    ValueTask<FuseStatFs> StatFsAsync(FuseContext context, ulong nodeId);

    /// <summary>ACCESS: not sent when the mount uses default_permissions (the default of <see cref="FuseMountOptions"/>).</summary>
    ValueTask AccessAsync(FuseContext context, ulong nodeId, int mask);

    ValueTask SetXattrAsync(FuseContext context, ulong nodeId, string name, ReadOnlyMemory<byte> value, int flags);

    /// <summary>destination.Length == 0 asks for the size; return the value's size; throw FuseException(ERANGE=34) if destination is too small.</summary>
    ValueTask<int> GetXattrAsync(FuseContext context, ulong nodeId, string name, Memory<byte> destination);

    /// <summary>NUL-terminated names back to back; same size rules as GetXattrAsync.</summary>
    ValueTask<int> ListXattrAsync(FuseContext context, ulong nodeId, Memory<byte> destination);

    ValueTask RemoveXattrAsync(FuseContext context, ulong nodeId, string name);

    ValueTask FallocateAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, long length, int mode);

    /// <summary>LSEEK for SEEK_DATA (3) / SEEK_HOLE (4); returns the resulting offset.</summary>
    ValueTask<long> LseekAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, int whence);

    /// <summary>
    /// GETLK (sent only with <see cref="FuseMountOptions.Locks"/>): the lock of another owner
    /// that would stand in the way of <paramref name="request"/>, or it back with type F_UNLCK.
    /// <paramref name="owner"/> is the kernel's lock owner (a process's files, or an open file
    /// description for flock and OFD locks).
    /// </summary>
    ValueTask<FuseLock> GetLockAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong owner, FuseLock request, bool flock) =>
        throw new FuseException(38, "this file system keeps no locks");

    /// <summary>
    /// SETLK and SETLKW (<paramref name="wait"/>), and flock(2) when <paramref name="flock"/>:
    /// take or give back (F_UNLCK) the range for <paramref name="owner"/>. Without
    /// <paramref name="wait"/> a conflict is EAGAIN; with it the call waits (interruptible).
    /// Record locks end at FLUSH (its lock owner), flock and OFD locks at RELEASE: the file
    /// system gives them back there.
    /// </summary>
    ValueTask SetLockAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong owner, FuseLock request, bool flock, bool wait) =>
        throw new FuseException(38, "this file system keeps no locks");

    /// <summary>Called once when the session ends (after the last request completed), if INIT had been answered.</summary>
    void Destroy();
}
