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

    public FrameLimits Limits { get; init; } = FrameLimits.Default;

    /// <summary>
    /// Calls one connection may have in the server at once. Past this the server stops reading
    /// from that connection, so a flooding peer is slowed by TCP and nobody else is.
    /// </summary>
    public int MaxConcurrentCallsPerConnection { get; init; } = 256;
}
