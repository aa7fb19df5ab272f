namespace ParaFS.Fuse;

/// <summary>Who is asking (fuse_in_header) and a token cancelled by FUSE_INTERRUPT or session end.</summary>
public readonly record struct FuseContext(ulong Unique, uint Uid, uint Gid, uint Pid, CancellationToken Cancellation);

/// <summary>fuse_attr in managed form. Mode includes the file type bits (S_IFREG etc.). Times in ns since epoch.</summary>
public readonly record struct FuseAttr(ulong Ino, ulong Size, ulong Blocks, long AtimeNs, long MtimeNs, long CtimeNs, uint Mode, uint Nlink, uint Uid, uint Gid, uint Rdev, uint BlockSize);

/// <summary>
/// fuse_entry_out in managed form. NodeId 0 with a positive EntryTimeout, returned from lookup,
/// caches a negative entry.
/// </summary>
public readonly record struct FuseEntry(ulong NodeId, ulong Generation, FuseAttr Attr, TimeSpan EntryTimeout, TimeSpan AttrTimeout);

/// <summary>fuse_open_out: the handle the kernel passes back, and FOPEN_DIRECT_IO / FOPEN_KEEP_CACHE.</summary>
public readonly record struct FuseOpen(ulong FileHandle, bool DirectIo = false, bool KeepCache = false);

/// <summary>fuse_kstatfs in managed form.</summary>
public readonly record struct FuseStatFs(ulong Blocks, ulong BlocksFree, ulong BlocksAvailable, ulong Files, ulong FilesFree, uint BlockSize, uint NameLength, uint FragmentSize);

/// <summary>
/// fuse_setattr_in: Valid is the FATTR_* mask (FATTR_MODE 1, UID 2, GID 4, SIZE 8, ATIME 16,
/// MTIME 32, FH 64, ATIME_NOW 128, MTIME_NOW 256, LOCKOWNER 512, CTIME 1024, KILL_SUIDGID 2048).
/// </summary>
public readonly record struct FuseSetAttr(uint Valid, ulong? FileHandle, ulong Size, long AtimeNs, long MtimeNs, long CtimeNs, uint Mode, uint Uid, uint Gid);
