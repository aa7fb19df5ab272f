using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds;

public sealed record MdsOptions
{
    /// <summary>Where the SQLite database lives (DATA/mds.db).</summary>
    public required string DataDirectory { get; init; }

    public required RpcEndpoint Listen { get; init; }

    /// <summary>The file system's name, given at format time.</summary>
    public string FileSystemName { get; init; } = "parafs";

    /// <summary>Pool of the root's default layout, given at format time.</summary>
    public string RootPool { get; init; } = "default";

    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How long a client may be gone before its session and opens are released.</summary>
    public TimeSpan SessionLease { get; init; } = TimeSpan.FromSeconds(30);
}
