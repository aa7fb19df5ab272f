using System.Runtime.CompilerServices;
using ParaFS.Fuse.Interop;
using ParaFS.Fuse.Protocol;

namespace ParaFS.Fuse.Tests;

/// <summary>Every wire struct has the size gcc printed for linux/fuse.h 7.45 (reference 1.5.1, 3.3).</summary>
public sealed class KernelStructSizeTests
{
    [Fact] public void Fuse_in_header_is_40_bytes() => Assert.Equal(40, Unsafe.SizeOf<FuseInHeader>());
    [Fact] public void Fuse_out_header_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseOutHeader>());
    [Fact] public void Fuse_init_in_is_64_bytes() => Assert.Equal(64, Unsafe.SizeOf<FuseInitIn>());
    [Fact] public void Fuse_init_out_is_64_bytes() => Assert.Equal(64, Unsafe.SizeOf<FuseInitOut>());
    [Fact] public void Fuse_attr_is_88_bytes() => Assert.Equal(88, Unsafe.SizeOf<FuseAttrOut>());
    [Fact] public void Fuse_entry_out_is_128_bytes() => Assert.Equal(128, Unsafe.SizeOf<FuseEntryOut>());
    [Fact] public void Fuse_attr_out_is_104_bytes() => Assert.Equal(104, Unsafe.SizeOf<FuseAttrReply>());
    [Fact] public void Fuse_getattr_in_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseGetAttrIn>());
    [Fact] public void Fuse_setattr_in_is_88_bytes() => Assert.Equal(88, Unsafe.SizeOf<FuseSetAttrIn>());
    [Fact] public void Fuse_open_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseOpenIn>());
    [Fact] public void Fuse_open_out_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseOpenOut>());
    [Fact] public void Fuse_create_in_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseCreateIn>());
    [Fact] public void Create_reply_is_144_bytes() => Assert.Equal(144, Unsafe.SizeOf<FuseCreateOut>());
    [Fact] public void Fuse_read_in_is_40_bytes() => Assert.Equal(40, Unsafe.SizeOf<FuseReadIn>());
    [Fact] public void Fuse_write_in_is_40_bytes() => Assert.Equal(40, Unsafe.SizeOf<FuseWriteIn>());
    [Fact] public void Fuse_write_out_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseWriteOut>());
    [Fact] public void Fuse_release_in_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseReleaseIn>());
    [Fact] public void Fuse_flush_in_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseFlushIn>());
    [Fact] public void Fuse_fsync_in_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseFsyncIn>());
    [Fact] public void Fuse_mknod_in_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseMknodIn>());
    [Fact] public void Fuse_mkdir_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseMkdirIn>());
    [Fact] public void Fuse_rename_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseRenameIn>());
    [Fact] public void Fuse_rename2_in_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseRename2In>());
    [Fact] public void Fuse_link_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseLinkIn>());

    [Fact]
    public void Fuse_setxattr_in_is_16_bytes_and_8_without_setxattr_ext()
    {
        Assert.Equal(16, Unsafe.SizeOf<FuseSetXattrIn>());
        Assert.Equal(8, FuseSetXattrIn.CompatSize);
    }

    [Fact] public void Fuse_getxattr_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseGetXattrIn>());
    [Fact] public void Fuse_getxattr_out_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseGetXattrOut>());
    [Fact] public void Fuse_access_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseAccessIn>());
    [Fact] public void Fuse_forget_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseForgetIn>());
    [Fact] public void Fuse_forget_one_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseForgetOne>());
    [Fact] public void Fuse_batch_forget_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseBatchForgetIn>());
    [Fact] public void Fuse_interrupt_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseInterruptIn>());
    [Fact] public void Fuse_kstatfs_is_80_bytes() => Assert.Equal(80, Unsafe.SizeOf<FuseKStatFs>());
    [Fact] public void Fuse_statfs_out_is_80_bytes() => Assert.Equal(80, Unsafe.SizeOf<FuseStatFsOut>());
    [Fact] public void Fuse_dirent_is_24_bytes_without_name() => Assert.Equal(24, Unsafe.SizeOf<FuseDirent>());
    [Fact] public void Fuse_direntplus_is_152_bytes_without_name() => Assert.Equal(152, Unsafe.SizeOf<FuseDirentPlus>());
    [Fact] public void Fuse_fallocate_in_is_32_bytes() => Assert.Equal(32, Unsafe.SizeOf<FuseFallocateIn>());
    [Fact] public void Fuse_lseek_in_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseLseekIn>());
    [Fact] public void Fuse_lseek_out_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseLseekOut>());
    [Fact] public void Fuse_file_lock_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseFileLock>());
    [Fact] public void Fuse_lk_in_is_48_bytes() => Assert.Equal(48, Unsafe.SizeOf<FuseLkIn>());
    [Fact] public void Fuse_lk_out_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseLkOut>());
    [Fact] public void Fuse_copy_file_range_in_is_56_bytes() => Assert.Equal(56, Unsafe.SizeOf<FuseCopyFileRangeIn>());
    [Fact] public void Fuse_copy_file_range_out_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseCopyFileRangeOut>());
    [Fact] public void Fuse_statx_in_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseStatxIn>());
    [Fact] public void Fuse_syncfs_in_is_8_bytes() => Assert.Equal(8, Unsafe.SizeOf<FuseSyncFsIn>());
    [Fact] public void Fuse_notify_inval_inode_out_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseNotifyInvalInodeOut>());
    [Fact] public void Fuse_notify_inval_entry_out_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseNotifyInvalEntryOut>());
    [Fact] public void Fuse_notify_delete_out_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseNotifyDeleteOut>());
    [Fact] public void Fuse_notify_store_out_is_24_bytes() => Assert.Equal(24, Unsafe.SizeOf<FuseNotifyStoreOut>());
    [Fact] public void Fuse_notify_retrieve_out_is_32_bytes() => Assert.Equal(32, Unsafe.SizeOf<FuseNotifyRetrieveOut>());
    [Fact] public void Fuse_backing_map_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<FuseBackingMap>());
    [Fact] public void Iovec_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<Libc.Iovec>());
    [Fact] public void Epoll_event_is_12_bytes() => Assert.Equal(12, Unsafe.SizeOf<Libc.EpollEvent>());
    [Fact] public void Msghdr_is_56_bytes() => Assert.Equal(56, Unsafe.SizeOf<Libc.MsgHdr>());
    [Fact] public void Cmsghdr_is_16_bytes() => Assert.Equal(16, Unsafe.SizeOf<Libc.CmsgHdr>());

    [Fact]
    public void Field_offsets_match_the_reference()
    {
        Assert.Equal(36, FieldOffset<FuseInHeader>(nameof(FuseInHeader.TotalExtLen)));
        Assert.Equal(60, FieldOffset<FuseAttrOut>(nameof(FuseAttrOut.Mode)));
        Assert.Equal(40, FieldOffset<FuseEntryOut>(nameof(FuseEntryOut.Attr)));
        Assert.Equal(16, FieldOffset<FuseAttrReply>(nameof(FuseAttrReply.Attr)));
        Assert.Equal(28, FieldOffset<FuseInitOut>(nameof(FuseInitOut.MaxPages)));
        Assert.Equal(32, FieldOffset<FuseInitOut>(nameof(FuseInitOut.Flags2)));
        Assert.Equal(40, FieldOffset<FuseInitOut>(nameof(FuseInitOut.RequestTimeout)));
        Assert.Equal(68, FieldOffset<FuseSetAttrIn>(nameof(FuseSetAttrIn.Mode)));
        Assert.Equal(40, FieldOffset<FuseKStatFs>(nameof(FuseKStatFs.BlockSize)));
        Assert.Equal(128, FieldOffset<FuseDirentPlus>(nameof(FuseDirentPlus.Dirent)));
        Assert.Equal(48, FieldOffset<Libc.MsgHdr>(nameof(Libc.MsgHdr.Flags)));
    }

    private static int FieldOffset<T>(string field) => (int)System.Runtime.InteropServices.Marshal.OffsetOf<T>(field);
}
