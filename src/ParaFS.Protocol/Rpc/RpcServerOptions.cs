using ParaFS.Protocol.Framing;

namespace ParaFS.Protocol.Rpc;

public sealed record RpcServerOptions
{
    /// <summary>HOST:PORT or unix:/path; port 0 picks a free one (see <see cref="RpcServer.Endpoint"/>).</summary>
    public required RpcEndpoint Listen { get; init; }

    public PeerRole Role { get; init; } = PeerRole.Unspecified;

    public string ServerName { get; init; } = Environment.MachineName;

    /// <summary>The file system this server belongs to; empty while it does not know yet.</summary>
    public string FileSystemId { get; init; } = "";

    public string FileSystemName { get; init; } = "";

    /// <summary>Told to every client in the handshake: this server answers a retried call from the record of its reply (see <see cref="ReplayTag"/>).</summary>
    public bool KeepsReplies { get; init; }

    public FrameLimits Limits { get; init; } = FrameLimits.Default;

    /// <summary>
    /// Calls one connection may have in the server at once. Past this the server stops reading
    /// from that connection, so a flooding peer is slowed by TCP and nobody else is.
    /// </summary>
    public int MaxConcurrentCallsPerConnection { get; init; } = 256;

    /// <summary>How long a new connection may take to send its handshake before it is closed.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Serves a bulk connection (one whose handshake says <c>bulk</c>) on a thread of its own with
    /// blocking socket calls: a call starts there, and one that waits finishes on the thread pool.
    /// False serves it like any other.
    /// </summary>
    public bool BulkThreads { get; init; } = true;

    /// <summary>
    /// How many bulk connections may have a thread of their own at once (an OST with many clients
    /// would otherwise run a thread per client bulk connection); past this, a bulk connection is
    /// served like any other.
    /// </summary>
    public int MaxBulkThreads { get; init; } = 512;
}
