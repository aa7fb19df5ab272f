using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Store;

/// <summary>
/// A write refused because another MDS has claimed the store since this one did (a newer leader
/// epoch): it changed nothing. The call it served gets no answer; its connection is dropped, so the
/// client retries and finds the MDS that serves now.
/// </summary>
public sealed class LeadershipLostException : UnansweredCallException
{
    public LeadershipLostException(string message)
        : base(message)
    {
    }

    public LeadershipLostException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public LeadershipLostException()
    {
    }
}
