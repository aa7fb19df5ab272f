using System.Runtime.InteropServices;

// The structs of linux/fuse.h (protocol 7.45, Linux 6.18), field for field in the header's order.
// Sizes are asserted by KernelStructSizeTests against the reference's compiled table (section 1.5.1);
// the C name of each struct is in its summary.

namespace ParaFS.Fuse.Protocol;

/// <summary>fuse_in_header (40).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseInHeader
{
    public uint Len;
    public uint Opcode;
    public ulong Unique;
    public ulong NodeId;
    public uint Uid;
    public uint Gid;
    public uint Pid;
    public ushort TotalExtLen;
    public ushort Padding;
}

/// <summary>fuse_out_header (16). For a notification unique is 0 and error carries the notify code.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseOutHeader
{
    public uint Len;
    public int Error;
    public ulong Unique;
}

/// <summary>fuse_init_in (64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct FuseInitIn
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    public uint Flags2;
    public fixed uint Unused[11];
}

/// <summary>fuse_init_out (64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct FuseInitOut
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    public ushort MaxBackground;
    public ushort CongestionThreshold;
    public uint MaxWrite;
    public uint TimeGran;
    public ushort MaxPages;
    public ushort MapAlignment;
    public uint Flags2;
    public uint MaxStackDepth;
    public ushort RequestTimeout;
    public fixed ushort Unused[11];
}

/// <summary>fuse_attr (88).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseAttrOut
{
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong Atime;
    public ulong Mtime;
    public ulong Ctime;
    public uint AtimeNsec;
    public uint MtimeNsec;
    public uint CtimeNsec;
    public uint Mode;
    public uint Nlink;
    public uint Uid;
    public uint Gid;
    public uint Rdev;
    public uint BlkSize;
    public uint Flags;
}

/// <summary>fuse_entry_out (128).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseEntryOut
{
    public ulong NodeId;
    public ulong Generation;
    public ulong EntryValid;
    public ulong AttrValid;
    public uint EntryValidNsec;
    public uint AttrValidNsec;
    public FuseAttrOut Attr;
}

/// <summary>fuse_attr_out (104).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseAttrReply
{
    public ulong AttrValid;
    public uint AttrValidNsec;
    public uint Dummy;
    public FuseAttrOut Attr;
}

/// <summary>fuse_getattr_in (16).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseGetAttrIn
{
    public uint GetAttrFlags;
    public uint Dummy;
    public ulong Fh;
}

/// <summary>fuse_setattr_in (88).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseSetAttrIn
{
    public uint Valid;
    public uint Padding;
    public ulong Fh;
    public ulong Size;
    public ulong LockOwner;
    public ulong Atime;
    public ulong Mtime;
    public ulong Ctime;
    public uint AtimeNsec;
    public uint MtimeNsec;
    public uint CtimeNsec;
    public uint Mode;
    public uint Unused4;
    public uint Uid;
    public uint Gid;
    public uint Unused5;
}

/// <summary>fuse_open_in (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseOpenIn
{
    public uint Flags;
    public uint OpenFlags;
}

/// <summary>fuse_open_out (16).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseOpenOut
{
    public ulong Fh;
    public uint OpenFlags;
    public int BackingId;
}

/// <summary>fuse_create_in (16).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseCreateIn
{
    public uint Flags;
    public uint Mode;
    public uint Umask;
    public uint OpenFlags;
}

/// <summary>The CREATE reply: fuse_entry_out then fuse_open_out (144).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseCreateOut
{
    public FuseEntryOut Entry;
    public FuseOpenOut Open;
}

/// <summary>fuse_read_in (40).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseReadIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Size;
    public uint ReadFlags;
    public ulong LockOwner;
    public uint Flags;
    public uint Padding;
}

/// <summary>fuse_write_in (40); the data follows it.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseWriteIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Size;
    public uint WriteFlags;
    public ulong LockOwner;
    public uint Flags;
    public uint Padding;
}

/// <summary>fuse_write_out (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseWriteOut
{
    public uint Size;
    public uint Padding;
}

/// <summary>fuse_release_in (24), for RELEASE and RELEASEDIR.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseReleaseIn
{
    public ulong Fh;
    public uint Flags;
    public uint ReleaseFlags;
    public ulong LockOwner;
}

/// <summary>fuse_flush_in (24).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseFlushIn
{
    public ulong Fh;
    public uint Unused;
    public uint Padding;
    public ulong LockOwner;
}

/// <summary>fuse_fsync_in (16), for FSYNC and FSYNCDIR.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseFsyncIn
{
    public ulong Fh;
    public uint FsyncFlags;
    public uint Padding;
}

/// <summary>fuse_mknod_in (16).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseMknodIn
{
    public uint Mode;
    public uint Rdev;
    public uint Umask;
    public uint Padding;
}

/// <summary>fuse_mkdir_in (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseMkdirIn
{
    public uint Mode;
    public uint Umask;
}

/// <summary>fuse_rename_in (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseRenameIn
{
    public ulong NewDir;
}

/// <summary>fuse_rename2_in (16).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseRename2In
{
    public ulong NewDir;
    public uint Flags;
    public uint Padding;
}

/// <summary>fuse_link_in (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseLinkIn
{
    public ulong OldNodeId;
}

/// <summary>
/// fuse_setxattr_in (16). Without FUSE_SETXATTR_EXT, which this library does not negotiate, only
/// the first 8 bytes (size, flags) are on the wire: FUSE_COMPAT_SETXATTR_IN_SIZE.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseSetXattrIn
{
    public const int CompatSize = 8;

    public uint Size;
    public uint Flags;
    public uint SetXattrFlags;
    public uint Padding;
}

/// <summary>fuse_getxattr_in (8), for GETXATTR and LISTXATTR.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseGetXattrIn
{
    public uint Size;
    public uint Padding;
}

/// <summary>fuse_getxattr_out (8): the size a value or name list needs.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseGetXattrOut
{
    public uint Size;
    public uint Padding;
}

/// <summary>fuse_access_in (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseAccessIn
{
    public uint Mask;
    public uint Padding;
}

/// <summary>fuse_forget_in (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseForgetIn
{
    public ulong NLookup;
}

/// <summary>fuse_forget_one (16).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseForgetOne
{
    public ulong NodeId;
    public ulong NLookup;
}

/// <summary>fuse_batch_forget_in (8); count fuse_forget_one records follow.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseBatchForgetIn
{
    public uint Count;
    public uint Dummy;
}

/// <summary>fuse_interrupt_in (8): the unique of the request to interrupt.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseInterruptIn
{
    public ulong Unique;
}

/// <summary>fuse_kstatfs (80).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct FuseKStatFs
{
    public ulong Blocks;
    public ulong BlocksFree;
    public ulong BlocksAvailable;
    public ulong Files;
    public ulong FilesFree;
    public uint BlockSize;
    public uint NameLength;
    public uint FragmentSize;
    public uint Padding;
    public fixed uint Spare[6];
}

/// <summary>fuse_statfs_out (80).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseStatFsOut
{
    public FuseKStatFs St;
}

/// <summary>fuse_dirent (24) without its name; records are padded to 8 bytes (FUSE_DIRENT_ALIGN).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseDirent
{
    public ulong Ino;
    public ulong Off;
    public uint NameLen;
    public uint Type;
}

/// <summary>fuse_direntplus (152) without its name.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseDirentPlus
{
    public FuseEntryOut EntryOut;
    public FuseDirent Dirent;
}

/// <summary>fuse_fallocate_in (32).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseFallocateIn
{
    public ulong Fh;
    public ulong Offset;
    public ulong Length;
    public uint Mode;
    public uint Padding;
}

/// <summary>fuse_lseek_in (24).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseLseekIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Whence;
    public uint Padding;
}

/// <summary>fuse_lseek_out (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseLseekOut
{
    public ulong Offset;
}

/// <summary>fuse_file_lock (24): a byte range, end inclusive (OFFSET_MAX: to the end of the file).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseFileLock
{
    public ulong Start;
    public ulong End;
    public uint Type;
    public uint Pid;
}

/// <summary>fuse_lk_in (48), for GETLK, SETLK and SETLKW; lk_flags FUSE_LK_FLOCK (1) marks flock(2).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseLkIn
{
    public ulong Fh;
    public ulong Owner;
    public FuseFileLock Lk;
    public uint LkFlags;
    public uint Padding;
}

/// <summary>fuse_lk_out (24).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseLkOut
{
    public FuseFileLock Lk;
}

/// <summary>fuse_copy_file_range_in (56). Answered ENOSYS; the kernel then copies through READ/WRITE.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseCopyFileRangeIn
{
    public ulong FhIn;
    public ulong OffIn;
    public ulong NodeIdOut;
    public ulong FhOut;
    public ulong OffOut;
    public ulong Len;
    public ulong Flags;
}

/// <summary>fuse_copy_file_range_out (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseCopyFileRangeOut
{
    public ulong BytesCopied;
}

/// <summary>fuse_statx_in (24). Answered ENOSYS; the kernel then uses GETATTR.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseStatxIn
{
    public uint GetAttrFlags;
    public uint Reserved;
    public ulong Fh;
    public uint SxFlags;
    public uint SxMask;
}

/// <summary>fuse_syncfs_in (8).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseSyncFsIn
{
    public ulong Padding;
}

/// <summary>fuse_notify_inval_inode_out (24).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseNotifyInvalInodeOut
{
    public ulong Ino;
    public long Off;
    public long Len;
}

/// <summary>fuse_notify_inval_entry_out (16); the name and a NUL follow.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseNotifyInvalEntryOut
{
    public ulong Parent;
    public uint NameLen;
    public uint Flags;
}

/// <summary>fuse_notify_delete_out (24).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseNotifyDeleteOut
{
    public ulong Parent;
    public ulong Child;
    public uint NameLen;
    public uint Padding;
}

/// <summary>fuse_notify_store_out (24).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseNotifyStoreOut
{
    public ulong NodeId;
    public ulong Offset;
    public uint Size;
    public uint Padding;
}

/// <summary>fuse_notify_retrieve_out (32).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseNotifyRetrieveOut
{
    public ulong NotifyUnique;
    public ulong NodeId;
    public ulong Offset;
    public uint Size;
    public uint Padding;
}

/// <summary>fuse_backing_map (16), for FUSE_DEV_IOC_BACKING_OPEN (passthrough; not used yet).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FuseBackingMap
{
    public int Fd;
    public uint Flags;
    public ulong Padding;
}
