using ParaFS.Common;

namespace ParaFS.Protocol.Rpc;

/// <summary>A call that failed: the errno the server (or the connection) decided, and why.</summary>
public sealed class RpcException : ParaFsException
{
    public RpcException(Errno errno, string message)
        : base(errno, message)
    {
    }

    public RpcException(Errno errno, string message, Exception innerException)
        : base(errno, message, innerException)
    {
    }

    public RpcException()
    {
    }

    public RpcException(string message)
        : base(message)
    {
    }

    public RpcException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>True when the call never reached a server that answered it, so retrying elsewhere or later is safe for idempotent calls.</summary>
    public bool IsConnectionFailure => Errno is Errno.ECONNREFUSED or Errno.ECONNRESET or Errno.ENOTCONN or Errno.ETIMEDOUT or Errno.EHOSTUNREACH;
}
