namespace ParaFS.Fuse.Interop;

/// <summary>The errno values (asm-generic/errno-base.h, errno.h) the library itself produces or reacts to.</summary>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int EBUSY = 16;
    public const int ENODEV = 19;
    public const int ENOTDIR = 20;
    public const int EINVAL = 22;
    public const int ERANGE = 34;
    public const int ENOSYS = 38;
    public const int EPROTO = 71;
    public const int ECONNABORTED = 103;
    public const int ENOTCONN = 107;
}
