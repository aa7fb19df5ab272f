using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

/// <summary>POSIX permission checks from the caller's uid, gid and groups. Root (uid 0) bypasses, as CAP_DAC_OVERRIDE does.</summary>
public static class Access
{
    public const int Read = 4;
    public const int Write = 2;
    public const int Execute = 1;

    public static bool IsRoot(Caller caller) => caller.Uid == 0;

    public static bool InGroup(Caller caller, uint gid) => caller.Gid == gid || caller.Groups.Contains(gid);

    public static bool Allowed(Caller caller, InodeRecord inode, int want)
    {
        if (IsRoot(caller))
        {
            // Root may execute only what somebody may execute (or any directory).
            return (want & Execute) == 0 || inode.Type == FileType.Directory || (inode.Mode & 0b001_001_001) != 0;
        }

        var bits = caller.Uid == inode.Uid ? inode.Mode >> 6
            : InGroup(caller, inode.Gid) ? inode.Mode >> 3
            : inode.Mode;
        return (bits & want) == want;
    }

    public static void Require(Caller caller, InodeRecord inode, int want, string what)
    {
        if (!Allowed(caller, inode, want))
        {
            throw new ParaFsException(Errno.EACCES, $"permission denied: uid {caller.Uid} may not {what} (inode {inode.Ino}, mode {Convert.ToString(inode.Mode, 8)}, owner {inode.Uid}:{inode.Gid})");
        }
    }

    public static bool IsOwner(Caller caller, InodeRecord inode) => IsRoot(caller) || caller.Uid == inode.Uid;

    /// <summary>In a sticky directory only the owner of an entry, of the directory, or root may remove or rename it.</summary>
    public static void RequireStickyOwner(Caller caller, InodeRecord directory, InodeRecord victim, string name)
    {
        if ((directory.Mode & 0b001_000_000_000) != 0 && !IsRoot(caller) && caller.Uid != directory.Uid && caller.Uid != victim.Uid)
        {
            throw new ParaFsException(Errno.EPERM, $"'{name}' is in a sticky directory and uid {caller.Uid} owns neither it nor the directory");
        }
    }
}
