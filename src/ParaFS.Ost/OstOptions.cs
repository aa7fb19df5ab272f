using ParaFS.Protocol.Framing;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost;

/// <summary>How an OST is run: <c>parafs ost</c>'s settings.</summary>
public sealed record OstOptions
{
    /// <summary>The data directory (superblock and objects) of the dir backend; for block and nvme-tcp, the device (used in messages).</summary>
    public required string DataDirectory { get; init; }

    public required RpcEndpoint Listen { get; init; }

    public required RpcEndpoint Mds { get; init; }

    public required string Pool { get; init; }

    /// <summary>dir, dir:PATH, block:PATH or nvme-tcp://HOST:PORT/NQN[/NSID] (<see cref="Backends.BackendSpec"/>).</summary>
    public string Backend { get; init; } = Backends.Dir.DirBackend.BackendName;

    /// <summary>The HOST:PORT clients are told to use; by default the listen address (with the port it got).</summary>
    public string? Advertise { get; init; }

    /// <summary>Object files kept open at once.</summary>
    public int OpenObjectLimit { get; init; } = 1024;

    /// <summary>
    /// Client bulk connections served on a thread of their own at once (<see cref="RpcServerOptions.MaxBulkThreads"/>);
    /// past this they are served like any other; 0 serves all of them that way.
    /// </summary>
    public int BulkThreads { get; init; } = 512;

    /// <summary>How often an unreachable MDS is tried again.</summary>
    public TimeSpan RetryInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How often a first start that cannot reach the MDS says it is waiting.</summary>
    public TimeSpan WaitingLogInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The heartbeat interval when the MDS names none.</summary>
    public TimeSpan DefaultHeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    public FrameLimits Limits { get; init; } = FrameLimits.Default;

    public string ServerName { get; init; } = Environment.MachineName;
}
