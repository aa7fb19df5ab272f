namespace ParaFS.Fuse.Protocol;

/// <summary>
/// The INIT capability bits of linux/fuse.h as one 64-bit set: <c>flags | flags2 &lt;&lt; 32</c>
/// (flags2 counts only with FUSE_INIT_EXT). Reference section 2.2.
/// </summary>
internal static class InitFlags
{
    public const ulong AsyncRead = 1UL << 0;
    public const ulong PosixLocks = 1UL << 1;
    public const ulong AtomicOTrunc = 1UL << 3;
    public const ulong ExportSupport = 1UL << 4;
    public const ulong BigWrites = 1UL << 5;
    public const ulong DontMask = 1UL << 6;
    public const ulong FlockLocks = 1UL << 10;
    public const ulong AutoInvalData = 1UL << 12;
    public const ulong DoReaddirplus = 1UL << 13;
    public const ulong ReaddirplusAuto = 1UL << 14;
    public const ulong AsyncDio = 1UL << 15;
    public const ulong WritebackCache = 1UL << 16;
    public const ulong ParallelDirops = 1UL << 18;
    public const ulong MaxPages = 1UL << 22;
    public const ulong HandleKillprivV2 = 1UL << 28;
    public const ulong InitExt = 1UL << 30;

    /// <summary>The protocol version this library implements.</summary>
    public const uint KernelVersion = 7;
    public const uint KernelMinorVersion = 45;
}

/// <summary>Bits of the smaller flag words (linux/fuse.h).</summary>
internal static class RequestFlags
{
    /// <summary>fuse_getattr_in.getattr_flags: fh is valid.</summary>
    public const uint GetAttrFh = 1;

    /// <summary>fuse_setattr_in.valid: fh is valid.</summary>
    public const uint FAttrFh = 1 << 6;

    /// <summary>fuse_lk_in.lk_flags: the lock is flock(2), not an fcntl record lock.</summary>
    public const uint LkFlock = 1;

    /// <summary>fuse_fsync_in.fsync_flags: fdatasync.</summary>
    public const uint FsyncDataSync = 1;

    /// <summary>fuse_open_out.open_flags.</summary>
    public const uint FOpenDirectIo = 1 << 0;
    public const uint FOpenKeepCache = 1 << 1;
}
