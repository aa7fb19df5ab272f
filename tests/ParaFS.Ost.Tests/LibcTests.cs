using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using ParaFS.Common;
using ParaFS.Common.Interop;

namespace ParaFS.Ost.Tests;

public sealed class LibcTests
{
    [Fact]
    public void Statx_has_the_kernels_layout()
    {
        // linux/stat.h: struct statx is 256 bytes; stx_size at 40, stx_blocks at 48, stx_mnt_id at 144.
        Assert.Equal(256, Unsafe.SizeOf<Libc.Statx>());
        Assert.Equal(256, Marshal.SizeOf<Libc.Statx>());
        Assert.Equal(16, Unsafe.SizeOf<Libc.StatxTimestamp>());
        Assert.Equal(40, Marshal.OffsetOf<Libc.Statx>(nameof(Libc.Statx.Size)).ToInt32());
        Assert.Equal(48, Marshal.OffsetOf<Libc.Statx>(nameof(Libc.Statx.Blocks)).ToInt32());
        Assert.Equal(64, Marshal.OffsetOf<Libc.Statx>(nameof(Libc.Statx.AccessTime)).ToInt32());
        Assert.Equal(144, Marshal.OffsetOf<Libc.Statx>(nameof(Libc.Statx.MountId)).ToInt32());
    }

    [Fact]
    public void Statx_reads_the_size_and_blocks_of_a_file()
    {
        using var directory = new TestDirectory();
        var path = directory.Sub("f");
        File.WriteAllBytes(path, new byte[100_000]);
        Assert.Equal(0, Libc.StatxPath(Libc.AtFdCwd, path, 0, Libc.StatxSize | Libc.StatxBlocks, out var stat));
        Assert.Equal(100_000UL, stat.Size);
        Assert.True(stat.Blocks * 512 >= 100_000, $"{stat.Blocks} blocks cannot hold 100000 bytes");

        using SafeFileHandle handle = File.OpenHandle(path);
        Assert.Equal((long)stat.Blocks * 512, Libc.AllocatedBytes(handle));
    }

    [Fact]
    public void A_failed_call_reports_its_errno()
    {
        Assert.Equal(-1, Libc.StatxPath(Libc.AtFdCwd, "/nonexistent/parafs", 0, Libc.StatxSize, out _));
        Assert.Equal(Errno.ENOENT, Libc.LastErrno);
        Assert.Equal(-1, Libc.Unlink("/nonexistent/parafs"));
        Assert.Equal(Errno.ENOENT, Libc.LastErrno);
        var e = Assert.Throws<ParaFsException>(() => Libc.OpenDirectory("/nonexistent/parafs"));
        Assert.Equal(Errno.ENOENT, e.Errno);
    }
}
