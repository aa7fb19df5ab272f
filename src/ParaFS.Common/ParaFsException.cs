namespace ParaFS.Common;

/// <summary>
/// A failure that carries the errno a POSIX caller should see, and a message for people that
/// names the object, the target and what to do.
/// </summary>
public class ParaFsException : Exception
{
    public ParaFsException(Errno errno, string message)
        : base(message)
    {
        Errno = errno;
    }

    public ParaFsException(Errno errno, string message, Exception innerException)
        : base(message, innerException)
    {
        Errno = errno;
    }

    public ParaFsException()
        : this(Errno.EIO, "I/O error")
    {
    }

    public ParaFsException(string message)
        : this(Errno.EIO, message)
    {
    }

    public ParaFsException(string message, Exception innerException)
        : this(Errno.EIO, message, innerException)
    {
    }

    public Errno Errno { get; }
}
