using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ParaFS.Common.Interop;

/// <summary>
/// Every call ParaFS makes into the C library, in one place. Each returns what libc returns; the
/// errno of a failed call is read with <see cref="LastErrno"/> (the marshaller saves it, since
/// the runtime may overwrite the thread's errno before managed code runs again).
/// </summary>
public static partial class Libc
{
    /// <summary>linux/falloc.h: deallocate the range; reads of it return zeros.</summary>
    public const int FallocFlPunchHole = 0x02;

    /// <summary>linux/falloc.h: leave the file size alone (required with PUNCH_HOLE).</summary>
    public const int FallocFlKeepSize = 0x01;

    /// <summary>linux/falloc.h: the range reads as zeros afterwards (the file system may keep it allocated).</summary>
    public const int FallocFlZeroRange = 0x10;

    /// <summary>fcntl.h: resolve the path relative to the current directory.</summary>
    public const int AtFdCwd = -100;

    /// <summary>fcntl.h: with an empty path, stat the descriptor itself.</summary>
    public const int AtEmptyPath = 0x1000;

    /// <summary>linux/stat.h: want stx_mode's file type and permission bits.</summary>
    public const uint StatxTypeAndMode = 0x003;

    /// <summary>linux/stat.h: want stx_ino.</summary>
    public const uint StatxIno = 0x100;

    /// <summary>linux/stat.h: want stx_size.</summary>
    public const uint StatxSize = 0x200;

    /// <summary>linux/stat.h: want stx_blocks.</summary>
    public const uint StatxBlocks = 0x400;

    private const string Library = "libc";
    private const int ORdOnly = 0;
    private const int ODirectory = 0x10000;
    private const int OCloExec = 0x80000;
    private const int ORdWr = 2;
    private const int ODirect = 0x4000;
    private const int SeekEnd = 2;

    /// <summary>lseek(2) whence values from linux/fs.h (Linux 3.1+): the next data, the next hole.</summary>
    public const int SeekDataWhence = 3;
    public const int SeekHoleWhence = 4;
    private const int OCreat = 0x40;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;

    /// <summary>open(2) by path with flags and mode; returns a descriptor or -1.</summary>
    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int OpenPath(string path, int flags, uint mode);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "pread", SetLastError = true)]
    public static partial nint Pread(int fd, Span<byte> buffer, nint count, long offset);

    [LibraryImport(Library, EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint Pwrite(int fd, ReadOnlySpan<byte> buffer, nint count, long offset);

    [LibraryImport(Library, EntryPoint = "fsync", SetLastError = true)]
    public static partial int FsyncFd(int fd);

    /// <summary>lseek(2) on a raw descriptor; -1 with errno on failure.</summary>
    [LibraryImport(Library, EntryPoint = "lseek", SetLastError = true)]
    public static partial long LseekFd(int fd, long offset, int whence);

    [LibraryImport(Library, EntryPoint = "fallocate", SetLastError = true)]
    public static partial int FallocateFd(int fd, int mode, long offset, long length);

    [LibraryImport(Library, EntryPoint = "truncate", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Truncate(string path, long length);

    [LibraryImport(Library, EntryPoint = "mkdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mkdir(string path, uint mode);

    [LibraryImport(Library, EntryPoint = "rmdir", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Rmdir(string path);

    [LibraryImport(Library, EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Rename(string from, string to);

    [LibraryImport(Library, EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Link(string from, string to);

    /// <summary>setxattr(2); flags XATTR_CREATE 1, XATTR_REPLACE 2.</summary>
    [LibraryImport(Library, EntryPoint = "setxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetXattr(string path, string name, ReadOnlySpan<byte> value, nint size, int flags);

    [LibraryImport(Library, EntryPoint = "getxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint GetXattr(string path, string name, Span<byte> value, nint size);

    /// <summary>getuid(2): the real user id of this process (the tools act as it at the MDS).</summary>
    [LibraryImport(Library, EntryPoint = "getuid")]
    public static partial uint GetUid();

    /// <summary>getgid(2).</summary>
    [LibraryImport(Library, EntryPoint = "getgid")]
    public static partial uint GetGid();

    /// <summary>getgroups(2): with size 0, returns how many supplementary groups there are.</summary>
    [LibraryImport(Library, EntryPoint = "getgroups", SetLastError = true)]
    public static partial int GetGroups(int size, Span<uint> list);

    /// <summary>The supplementary groups of this process.</summary>
    public static uint[] SupplementaryGroups()
    {
        var count = GetGroups(0, []);
        if (count <= 0)
        {
            return [];
        }

        var groups = new uint[count];
        return GetGroups(count, groups) is var n && n >= 0 ? groups[..n] : [];
    }

    /// <summary>The errno of the most recent failed call made through this class on this thread.</summary>
    public static Errno LastErrno => (Errno)Marshal.GetLastPInvokeError();

    /// <summary>fallocate(2): with <see cref="FallocFlPunchHole"/> | <see cref="FallocFlKeepSize"/> it punches a hole.</summary>
    [LibraryImport(Library, EntryPoint = "fallocate", SetLastError = true)]
    public static partial int Fallocate(SafeFileHandle fd, int mode, long offset, long length);

    /// <summary>fdatasync(2): the file's data and the metadata needed to read it back (its size) are durable.</summary>
    [LibraryImport(Library, EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int Fdatasync(SafeFileHandle fd);

    /// <summary>fsync(2): on a directory, makes the entries created in it durable.</summary>
    [LibraryImport(Library, EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(SafeFileHandle fd);

    /// <summary>sync_file_range(2) flag: start writeback of the range's dirty pages, without waiting for it.</summary>
    public const uint SyncFileRangeWrite = 2;

    /// <summary>
    /// sync_file_range(2): with <see cref="SyncFileRangeWrite"/> it starts writing the range to the
    /// device early. It makes nothing durable (no metadata, no device flush); fdatasync still does.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "sync_file_range", SetLastError = true)]
    public static partial int SyncFileRange(SafeFileHandle fd, long offset, long length, uint flags);

    /// <summary>
    /// sendfile(2): copies up to <paramref name="count"/> bytes of <paramref name="file"/> from
    /// <paramref name="offset"/> (advanced by what was sent) to the socket, inside the kernel: the
    /// file's cached pages go into the socket's buffers without a copy through user memory.
    /// Returns the bytes sent, 0 at the end of the file, -1 with errno on failure.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "sendfile", SetLastError = true)]
    public static partial nint Sendfile(SafeSocketHandle socket, SafeFileHandle file, ref long offset, nuint count);

    /// <summary>syncfs(2): everything written to the file system holding <paramref name="fd"/> is durable.</summary>
    [LibraryImport(Library, EntryPoint = "syncfs", SetLastError = true)]
    public static partial int Syncfs(SafeFileHandle fd);

    /// <summary>
    /// statx(2). Its <see cref="Statx"/> buffer has one layout on every architecture, unlike
    /// struct stat, which is why ParaFS uses it for st_blocks.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int StatxPath(int dirFd, string path, int flags, uint mask, out Statx buffer);

    /// <summary>statx(2) of an open descriptor (AT_EMPTY_PATH).</summary>
    [LibraryImport(Library, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int StatxHandle(SafeFileHandle fd, string path, int flags, uint mask, out Statx buffer);

    /// <summary>unlink(2); fails with ENOENT when there is nothing to remove.</summary>
    [LibraryImport(Library, EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Unlink(string path);

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    /// <summary>pread(2) on an open handle; with O_DIRECT the buffer, offset and count must be block aligned.</summary>
    [LibraryImport(Library, EntryPoint = "pread", SetLastError = true)]
    public static partial nint PreadHandle(SafeFileHandle fd, Span<byte> buffer, nint count, long offset);

    /// <summary>pwrite(2) on an open handle; with O_DIRECT the buffer, offset and count must be block aligned.</summary>
    [LibraryImport(Library, EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint PwriteHandle(SafeFileHandle fd, ReadOnlySpan<byte> buffer, nint count, long offset);

    [LibraryImport(Library, EntryPoint = "lseek", SetLastError = true)]
    private static partial long Lseek(SafeFileHandle fd, long offset, int whence);

    /// <summary>Opens a file or block device for reading and writing with O_DIRECT (no page cache), for the block store.</summary>
    public static SafeFileHandle OpenDirect(string path)
    {
        var fd = Open(path, ORdWr | ODirect | OCloExec);
        if (fd < 0)
        {
            throw Failure(LastErrno, $"cannot open {path} for direct I/O");
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// lseek(2) with SEEK_DATA (<paramref name="hole"/> false) or SEEK_HOLE: the offset of the next
    /// data or hole at or after <paramref name="offset"/>; -1 with errno ENXIO where no data lies
    /// there (or <paramref name="offset"/> is at or past the end). A file system that does not
    /// track holes answers as if the whole file were data (the kernel's generic answer).
    /// </summary>
    public static long SeekDataOrHole(SafeFileHandle fd, long offset, bool hole) =>
        Lseek(fd, offset, hole ? SeekHoleWhence : SeekDataWhence);

    /// <summary>The size of an open file or block device (lseek to its end; works where st_size does not, on block devices).</summary>
    public static long SizeOf(SafeFileHandle fd, string what)
    {
        var size = Lseek(fd, 0, SeekEnd);
        return size >= 0 ? size : throw Failure(LastErrno, $"cannot find the size of {what}");
    }

    [LibraryImport(Library, EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(SafeFileHandle fd, int operation);

    /// <summary>
    /// Opens a file to hold an flock(2) on, creating it (mode 0644) if <paramref name="create"/>. A
    /// raw open: .NET's own FileStream takes a shared flock of its own, which would clash with it.
    /// </summary>
    public static SafeFileHandle OpenForLock(string path, bool create)
    {
        var fd = OpenPath(path, ORdWr | OCloExec | (create ? OCreat : 0), 0x1A4);
        if (fd < 0)
        {
            throw Failure(LastErrno, $"cannot open {path} to lock it");
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>
    /// flock(LOCK_EX | LOCK_NB): true when taken, false when another open file (in this process
    /// or another) holds a lock on it. The kernel drops the lock when the last descriptor of that
    /// open file closes, so a killed process leaves no lock behind.
    /// </summary>
    public static bool TryLockExclusive(SafeFileHandle fd, string what)
    {
        if (Flock(fd, LockExclusive | LockNonBlocking) == 0)
        {
            return true;
        }

        var errno = LastErrno;
        return errno == Errno.EAGAIN ? false : throw Failure(errno, $"cannot lock {what}");
    }

    /// <summary>Opens a directory read-only, for fsync; .NET's file APIs refuse directories.</summary>
    public static SafeFileHandle OpenDirectory(string path)
    {
        var fd = Open(path, ORdOnly | ODirectory | OCloExec);
        if (fd < 0)
        {
            throw Failure(LastErrno, $"cannot open directory {path}");
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>Bytes allocated to an open file (st_blocks counts 512-byte units whatever the block size).</summary>
    public static long AllocatedBytes(SafeFileHandle fd)
    {
        if (StatxHandle(fd, "", AtEmptyPath, StatxBlocks, out var stat) != 0)
        {
            throw Failure(LastErrno, "statx of an open file failed");
        }

        return checked((long)stat.Blocks * 512);
    }

    /// <summary>The exception for a failed call: a <see cref="ParaFsException"/> carrying its errno.</summary>
    public static ParaFsException Failure(Errno errno, string what) =>
        new(errno, $"{what}: {errno} ({Marshal.GetPInvokeErrorMessage((int)errno)})");

    /// <summary>struct statx from linux/stat.h (256 bytes on every architecture).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Statx
    {
        public uint Mask;
        public uint BlockSize;
        public ulong Attributes;
        public uint LinkCount;
        public uint Uid;
        public uint Gid;
        public ushort Mode;
        private readonly ushort _spare0;
        public ulong Inode;
        public ulong Size;
        public ulong Blocks;
        public ulong AttributesMask;
        public StatxTimestamp AccessTime;
        public StatxTimestamp BirthTime;
        public StatxTimestamp ChangeTime;
        public StatxTimestamp ModifyTime;
        public uint RdevMajor;
        public uint RdevMinor;
        public uint DevMajor;
        public uint DevMinor;
        public ulong MountId;
        public uint DirectIoMemoryAlign;
        public uint DirectIoOffsetAlign;
        private readonly Spare _spare3;

        [InlineArray(12)]
        private struct Spare
        {
            private ulong _element;
        }
    }

    /// <summary>struct statx_timestamp from linux/stat.h.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct StatxTimestamp
    {
        public long Seconds;
        public uint Nanoseconds;
        private readonly int _reserved;
    }
}
