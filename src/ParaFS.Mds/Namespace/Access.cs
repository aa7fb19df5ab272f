using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

/// <summary>POSIX permission checks from the caller's uid, gid and groups. Root (uid 0) bypasses, as CAP_DAC_OVERRIDE does.</summary>
public static class Access
{
    public const int Read = PosixPermissions.Read;
    public const int Write = PosixPermissions.Write;
    public const int Execute = PosixPermissions.Execute;

    public static bool IsRoot(Caller caller) => caller.Uid == 0;

    public static bool InGroup(Caller caller, uint gid) => caller.Gid == gid || caller.Groups.Contains(gid);

    public static bool Allowed(Caller caller, InodeRecord inode, int want) =>
        PosixPermissions.Allows(inode.Mode, inode.Type == FileType.Directory, inode.Uid, inode.Gid, caller.Uid, gid => InGroup(caller, gid), want);

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
