using ParaFS.Protocol.Framing;

namespace ParaFS.Protocol.Rpc;

public sealed record RpcClientOptions
{
    /// <summary>Connections kept to one server; calls spread over them.</summary>
    public int ConnectionsPerServer { get; init; } = 4;

    /// <summary>
    /// Further connections for bulk calls only: a call whose payload or reply destination is at
    /// least <see cref="BulkThresholdBytes"/> goes to one of these, so a small call (a 4 KiB read,
    /// a sync) never queues behind megabytes of writes on the same socket. 0: one pool for all.
    /// </summary>
    public int BulkConnectionsPerServer { get; init; }

    /// <summary>The size from which a call counts as bulk (payload sent or reply room given).</summary>
    public int BulkThresholdBytes { get; init; } = 64 * 1024;

    /// <summary>
    /// Runs each bulk connection on threads of its own (a receiving and a sending one) with
    /// blocking socket calls, and says so in its handshake; false runs it like any other.
    /// </summary>
    public bool BulkThreads { get; init; } = true;

    /// <summary>
    /// Places for bulk connections with threads of their own, shared with other clients handed
    /// the same budget (a client's pools to all its OSTs); null: no limit. A bulk connection that
    /// finds none left runs the asynchronous way.
    /// </summary>
    public BulkThreadBudget? BulkThreadBudget { get; init; }

    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a call waits for its reply unless the call says otherwise.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public FrameLimits Limits { get; init; } = FrameLimits.Default;

    /// <summary>The file system this side belongs to; empty to accept (and learn) the server's.</summary>
    public string FileSystemId { get; init; } = "";

    public PeerRole Role { get; init; } = PeerRole.Client;

    public string PeerName { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}";

    /// <summary>Receives the server's pushes (callbacks). Runs off the receive loop; the push is disposed when it returns.</summary>
    public Func<RpcPush, RpcClientConnection, ValueTask>? PushHandler { get; init; }

    /// <summary>
    /// Called once when a connection's receive side ends (the peer closed it, a frame was bad, or
    /// it was disposed): pushes the server sent on it may have been lost with it.
    /// </summary>
    public Action<RpcClientConnection, string>? Lost { get; init; }

    /// <summary>Called after each new connection's handshake (the MDS client re-establishes its session here).</summary>
    public Func<RpcClientConnection, CancellationToken, ValueTask>? Connected { get; init; }
}
