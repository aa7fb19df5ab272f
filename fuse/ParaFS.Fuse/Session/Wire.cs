using ParaFS.Fuse.Protocol;

namespace ParaFS.Fuse.Session;

/// <summary>Managed records to and from the kernel structs.</summary>
internal static class Wire
{
    private const long NanosPerSecond = 1_000_000_000;

    public static FuseEntryOut EntryOut(in FuseEntry entry)
    {
        var (entrySeconds, entryNanos) = Split(entry.EntryTimeout);
        var (attrSeconds, attrNanos) = Split(entry.AttrTimeout);
        return new FuseEntryOut
        {
            NodeId = entry.NodeId,
            Generation = entry.Generation,
            EntryValid = entrySeconds,
            EntryValidNsec = entryNanos,
            AttrValid = attrSeconds,
            AttrValidNsec = attrNanos,
            Attr = AttrOut(entry.Attr),
        };
    }

    public static FuseAttrReply AttrReply(in FuseAttr attr, TimeSpan timeout)
    {
        var (seconds, nanos) = Split(timeout);
        return new FuseAttrReply { AttrValid = seconds, AttrValidNsec = nanos, Attr = AttrOut(attr) };
    }

    public static FuseAttrOut AttrOut(in FuseAttr attr)
    {
        var (atime, atimeNanos) = SplitTime(attr.AtimeNs);
        var (mtime, mtimeNanos) = SplitTime(attr.MtimeNs);
        var (ctime, ctimeNanos) = SplitTime(attr.CtimeNs);
        return new FuseAttrOut
        {
            Ino = attr.Ino,
            Size = attr.Size,
            Blocks = attr.Blocks,
            Atime = atime,
            Mtime = mtime,
            Ctime = ctime,
            AtimeNsec = atimeNanos,
            MtimeNsec = mtimeNanos,
            CtimeNsec = ctimeNanos,
            Mode = attr.Mode,
            Nlink = attr.Nlink,
            Uid = attr.Uid,
            Gid = attr.Gid,
            Rdev = attr.Rdev,
            BlkSize = attr.BlockSize,
        };
    }

    public static FuseSetAttr SetAttr(in FuseSetAttrIn arg) => new(
        arg.Valid,
        (arg.Valid & RequestFlags.FAttrFh) != 0 ? arg.Fh : null,
        arg.Size,
        JoinTime(arg.Atime, arg.AtimeNsec),
        JoinTime(arg.Mtime, arg.MtimeNsec),
        JoinTime(arg.Ctime, arg.CtimeNsec),
        arg.Mode,
        arg.Uid,
        arg.Gid);

    public static FuseKStatFs StatFs(in FuseStatFs s) => new()
    {
        Blocks = s.Blocks,
        BlocksFree = s.BlocksFree,
        BlocksAvailable = s.BlocksAvailable,
        Files = s.Files,
        FilesFree = s.FilesFree,
        BlockSize = s.BlockSize,
        NameLength = s.NameLength,
        FragmentSize = s.FragmentSize,
    };

    public static FuseOpenOut OpenOut(in FuseOpen open) => new()
    {
        Fh = open.FileHandle,
        OpenFlags = (open.DirectIo ? RequestFlags.FOpenDirectIo : 0) | (open.KeepCache ? RequestFlags.FOpenKeepCache : 0),
    };

    /// <summary>A timeout as whole seconds + nanoseconds; negative is 0.</summary>
    public static (ulong Seconds, uint Nanos) Split(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
        {
            return (0, 0);
        }

        var ticks = timeout.Ticks;
        return ((ulong)(ticks / TimeSpan.TicksPerSecond), (uint)(ticks % TimeSpan.TicksPerSecond * 100));
    }

    /// <summary>ns since the epoch as the kernel's (s64 seconds, u32 nanoseconds 0..999999999).</summary>
    public static (ulong Seconds, uint Nanos) SplitTime(long nanos)
    {
        var seconds = Math.DivRem(nanos, NanosPerSecond, out var rest);
        if (rest < 0)
        {
            seconds--;
            rest += NanosPerSecond;
        }

        return ((ulong)seconds, (uint)rest);
    }

    public static long JoinTime(ulong seconds, uint nanos) => ((long)seconds * NanosPerSecond) + nanos;
}
