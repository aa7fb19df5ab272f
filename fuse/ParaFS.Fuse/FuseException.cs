namespace ParaFS.Fuse;

/// <summary>
/// Thrown by a handler to answer with -errno (e.g. new FuseException(2) for ENOENT). An errno
/// outside 1..511, which the kernel would refuse, is answered as EIO.
/// </summary>
public sealed class FuseException : Exception
{
    private const int Eio = 5;

    public FuseException(int errno, string? message = null)
        : base(message ?? $"errno {errno}")
    {
        Errno = errno;
    }

    /// <summary>An EIO failure.</summary>
    public FuseException()
        : this(Eio)
    {
    }

    /// <summary>An EIO failure with a message.</summary>
    public FuseException(string message)
        : this(Eio, message)
    {
    }

    /// <summary>An EIO failure caused by <paramref name="innerException"/>.</summary>
    public FuseException(string message, Exception innerException)
        : base(message, innerException)
    {
        Errno = Eio;
    }

    /// <summary>The positive errno the request is answered with.</summary>
    public int Errno { get; }
}
