using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds;

public sealed record MdsOptions
{
    /// <summary>Where the SQLite database lives (DATA/mds.db); unused with a PostgreSQL <see cref="Store"/>.</summary>
    public string DataDirectory { get; init; } = "";

    /// <summary>
    /// The metadata store: null or "sqlite" for SQLite under <see cref="DataDirectory"/>, or a
    /// PostgreSQL connection string (Host=...;Database=...) or postgres:// URL.
    /// </summary>
    public string? Store { get; init; }

    public required RpcEndpoint Listen { get; init; }

    /// <summary>The file system's name, given at format time.</summary>
    public string FileSystemName { get; init; } = "parafs";

    /// <summary>Refuse a store that holds a file system of another name (the name was given explicitly, not defaulted).</summary>
    public bool RequireFileSystemName { get; init; }

    /// <summary>With PostgreSQL: how often a standby asks for the leader lock, and the leader checks it still holds it.</summary>
    public TimeSpan LeaderPoll { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Pool of the root's default layout, given at format time.</summary>
    public string RootPool { get; init; } = "default";

    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>How long a client may be gone before its session and opens are released.</summary>
    public TimeSpan SessionLease { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// For tests: asked after a call that carries a replay tag has run and committed (not after a
    /// replay); true closes the caller's connection instead of sending the reply, as a network
    /// break or an MDS crash right after the commit would.
    /// </summary>
    internal Func<uint, bool>? LoseReply { get; init; }

    /// <summary>For tests: wraps the opened store (e.g. one that runs every write's work twice, as a retrying store may).</summary>
    internal Func<Store.IMetadataStore, Store.IMetadataStore>? WrapStore { get; init; }
}
