using ParaFS.Fuse;
using ParaFS.Protocol.Mds;

namespace ParaFS.FuseAdapter;

/// <summary>Between the MDS's attributes and the kernel's (linux/stat.h type bits, dirent DT_* values).</summary>
internal static class Conversions
{
    public const uint S_IFIFO = 0x1000;
    public const uint S_IFCHR = 0x2000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFBLK = 0x6000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFLNK = 0xA000;
    public const uint S_IFSOCK = 0xC000;
    public const uint S_IFMT = 0xF000;

    /// <summary>st_blksize: a stripe, so applications that size their I/O by it send whole stripes.</summary>
    public const uint PreferredIoSize = 1024 * 1024;

    public static uint TypeBits(FileType type) => type switch
    {
        FileType.Regular => S_IFREG,
        FileType.Directory => S_IFDIR,
        FileType.Symlink => S_IFLNK,
        FileType.Fifo => S_IFIFO,
        FileType.Socket => S_IFSOCK,
        FileType.CharDevice => S_IFCHR,
        FileType.BlockDevice => S_IFBLK,
        _ => S_IFREG,
    };

    public static FileType TypeOf(uint mode) => (mode & S_IFMT) switch
    {
        S_IFREG or 0 => FileType.Regular,
        S_IFDIR => FileType.Directory,
        S_IFLNK => FileType.Symlink,
        S_IFIFO => FileType.Fifo,
        S_IFSOCK => FileType.Socket,
        S_IFCHR => FileType.CharDevice,
        S_IFBLK => FileType.BlockDevice,
        _ => FileType.Unspecified,
    };

    /// <summary>DT_* values of dirent.h: the type bits shifted down.</summary>
    public static uint DirentType(FileType type) => TypeBits(type) >> 12;

    public static FuseAttr ToFuse(Attr a) => new(
        Ino: a.Ino,
        Size: a.Size,
        Blocks: (a.Size + 511) / 512,
        AtimeNs: a.AtimeNs,
        MtimeNs: a.MtimeNs,
        CtimeNs: a.CtimeNs,
        Mode: TypeBits(a.Type) | (a.Mode & 0xFFF),
        Nlink: a.Nlink,
        Uid: a.Uid,
        Gid: a.Gid,
        Rdev: (uint)a.Rdev,
        BlockSize: PreferredIoSize);
}
