namespace ParaFS.Protocol.Rpc;

/// <summary>
/// Thrown by a handler that must not answer its call at all: the server drops the caller's
/// connection instead, so the caller sees a failed connection and retries, elsewhere or later. An
/// MDS that finds another MDS has taken over its store throws it: any answer it gave would be
/// wrong, an error the call does not deserve or a result it may no longer give.
/// </summary>
public class UnansweredCallException : Exception
{
    public UnansweredCallException(string message)
        : base(message)
    {
    }

    public UnansweredCallException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public UnansweredCallException()
    {
    }
}
