using ParaFS.Protocol.Framing;

namespace ParaFS.Protocol.Rpc;

public sealed record RpcClientOptions
{
    /// <summary>Connections kept to one server; calls spread over them.</summary>
    public int ConnectionsPerServer { get; init; } = 4;

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

    /// <summary>Called after each new connection's handshake (the MDS client re-establishes its session here).</summary>
    public Func<RpcClientConnection, CancellationToken, ValueTask>? Connected { get; init; }
}
