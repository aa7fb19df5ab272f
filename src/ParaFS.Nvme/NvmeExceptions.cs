using ParaFS.Common;

namespace ParaFS.Nvme;

/// <summary>The transport failed: the connection closed or broke, a PDU was malformed or truncated,
/// a digest did not match, or a command timed out (which drops its connection). EIO, or ETIMEDOUT
/// for a timeout.</summary>
public sealed class NvmeTransportException : ParaFsException
{
    public NvmeTransportException(Errno errno, string message, Exception? innerException = null)
        : base(errno, message, innerException ?? new IOException(message))
    {
    }
}

/// <summary>The controller completed a command with an error status (EIO).</summary>
public sealed class NvmeStatusException : ParaFsException
{
    public NvmeStatusException(string message, NvmeCompletion completion)
        : base(Errno.EIO, message)
    {
        Completion = completion;
    }

    public NvmeCompletion Completion { get; }
}
