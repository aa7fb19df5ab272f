namespace ParaFS.Protocol;

/// <summary>
/// Every method id of the ParaFS protocol, declared once. An id is never reused: a retired method
/// keeps its number, commented out. Ranges: 0-99 the RPC layer, 100-299 the MDS, 300-399 the OSTs,
/// 400-499 pushes from the MDS to clients.
/// </summary>
public static class Methods
{
    /// <summary>The first call on every connection: <see cref="Rpc.Hello"/> -> <see cref="Rpc.HelloReply"/>.</summary>
    public const uint Handshake = 0;

    /// <summary>An empty call answered by the RPC layer itself: liveness and round-trip time.</summary>
    public const uint Ping = 1;
}
