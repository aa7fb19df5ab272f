using System.Runtime.InteropServices;

namespace ParaFS.Fuse.Interop;

/// <summary>
/// Every libc call the FUSE library makes, in one place (x86_64 Linux constants). Each returns
/// what libc returns; the errno of a failed call is <see cref="LastErrno"/>, which the
/// marshaller saved before the runtime could overwrite the thread's errno.
/// </summary>
internal static unsafe partial class Libc
{
    public const int ORdWr = 0x2;
    public const int ONonBlock = 0x800;
    public const int OCloExec = 0x80000;

    public const int FGetFd = 1;
    public const int FSetFd = 2;
    public const int FGetFl = 3;
    public const int FSetFl = 4;
    public const int FdCloExec = 1;

    /// <summary>sys/mount.h: libfuse mounts with MS_NOSUID | MS_NODEV by default.</summary>
    public const ulong MsNoSuid = 0x2;
    public const ulong MsNoDev = 0x4;

    public const int MntDetach = 2;
    public const int UmountNoFollow = 8;

    public const uint EpollIn = 0x1;
    public const uint EpollExclusive = 1u << 28;
    public const int EpollCloExec = 0x80000;
    public const int EpollCtlAdd = 1;

    public const int EfdCloExec = 0x80000;
    public const int EfdNonBlock = 0x800;

    public const int AfUnix = 1;
    public const int SockStream = 1;
    public const int SolSocket = 1;
    public const int ScmRights = 1;

    public const int AtFdCwd = -100;
    public const int AtSymlinkNoFollow = 0x100;
    public const uint StatxType = 0x1;

    /// <summary>linux/fuse.h: FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t).</summary>
    public const uint FuseDevIocClone = 0x8004E500;

    private const string Library = "libc";

    /// <summary>The errno of the most recent failed call made through this class on this thread.</summary>
    public static int LastErrno => Marshal.GetLastPInvokeError();

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport(Library, EntryPoint = "writev", SetLastError = true)]
    public static partial nint Writev(int fd, Iovec* iov, int count);

    /// <summary>ioctl(2) with a pointer argument (FUSE_DEV_IOC_CLONE takes a pointer to the mounted fd).</summary>
    [LibraryImport(Library, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, uint* argument);

    [LibraryImport(Library, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport(Library, EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate1(int flags);

    [LibraryImport(Library, EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epfd, int op, int fd, EpollEvent* ev);

    [LibraryImport(Library, EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epfd, EpollEvent* events, int maxEvents, int timeoutMs);

    [LibraryImport(Library, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initialValue, int flags);

    [LibraryImport(Library, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mount(string source, string target, string fileSystemType, ulong flags, string data);

    [LibraryImport(Library, EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Umount2(string target, int flags);

    [LibraryImport(Library, EntryPoint = "socketpair", SetLastError = true)]
    public static partial int SocketPair(int domain, int type, int protocol, int* fds);

    [LibraryImport(Library, EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Library, EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    [LibraryImport(Library, EntryPoint = "getuid")]
    public static partial uint GetUid();

    [LibraryImport(Library, EntryPoint = "getgid")]
    public static partial uint GetGid();

    /// <summary>statx(2) into a 256-byte struct statx; only stx_mode (u16 at 28) is read here.</summary>
    [LibraryImport(Library, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Statx(int directoryFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport(Library, EntryPoint = "strerror")]
    private static partial nint StrError(int errno);

    /// <summary>The C library's text for an errno ("No such file or directory").</summary>
    public static string Describe(int errno) => Marshal.PtrToStringUTF8(StrError(errno)) ?? $"errno {errno}";

    /// <summary>struct iovec (16 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Iovec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>struct epoll_event (12 bytes: packed on x86_64): events @0, data @4.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    /// <summary>struct msghdr (56 bytes on x86_64): name @0, namelen @8, iov @16, iovlen @24, control @32, controllen @40, flags @48.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public Iovec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>struct cmsghdr (16 bytes): CMSG_SPACE(4) = 24, the fd is at CMSG_DATA = offset 16.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CmsgHdr
    {
        public nuint Length;
        public int Level;
        public int Type;
    }
}
