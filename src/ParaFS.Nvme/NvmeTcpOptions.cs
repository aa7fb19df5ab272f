namespace ParaFS.Nvme;

/// <summary>How the host attaches a controller. Every field has a default that works against
/// Linux nvmet; a URL's query string can override them (<see cref="NvmeTcpAddress"/>).</summary>
public sealed record NvmeTcpOptions
{
    /// <summary>I/O queues (one TCP connection each); the controller may grant fewer.</summary>
    public int IoQueues { get; init; } = 2;

    /// <summary>Commands in flight per I/O queue; capped by CAP.MQES.</summary>
    public int QueueDepth { get; init; } = 128;

    public bool HeaderDigest { get; init; }

    public bool DataDigest { get; init; }

    /// <summary>TCP connect plus ICReq/ICResp plus Connect, per queue (the first ICReq after a
    /// TCG guest boots takes 50-90 ms; the Linux host waits 10 s).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A command not completed in this time fails with ETIMEDOUT and drops its connection
    /// (its CID cannot be reused safely while the controller may still answer it).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>KATO sent in the admin Connect; zero turns keep-alive off.</summary>
    public TimeSpan KeepAliveTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often Keep Alive is sent; null = half of <see cref="KeepAliveTimeout"/> (as the Linux host).</summary>
    public TimeSpan? KeepAliveInterval { get; init; }

    /// <summary>The largest single Read or Write the device sends; MDTS lowers it further.</summary>
    public int MaxTransferBytes { get; init; } = 1 << 20;

    /// <summary>Connect CATTR bit 2: the controller may then end a read with a C2HData carrying
    /// SUCCESS and no CapsuleResp (one PDU fewer per read).</summary>
    public bool DisableSqFlowControl { get; init; } = true;

    /// <summary>Opening a namespace smaller than this fails with ENOSPC (0: any size).</summary>
    public long MinimumSizeBytes { get; init; }

    /// <summary>Attempts to bring a dropped controller back before an I/O fails.</summary>
    public int ReconnectAttempts { get; init; } = 3;

    /// <summary>Null: derived from the host id (nqn.2014-08.org.nvmexpress:uuid:...).</summary>
    public string? HostNqn { get; init; }

    /// <summary>Null: a stable id derived from /etc/machine-id (random if there is none).</summary>
    public Guid? HostId { get; init; }

    internal Guid EffectiveHostId => HostId ?? DefaultHostId.Value;

    internal string EffectiveHostNqn => HostNqn ?? $"nqn.2014-08.org.nvmexpress:uuid:{EffectiveHostId}";

    private static readonly Lazy<Guid> DefaultHostId = new(() =>
    {
        try
        {
            var machineId = File.ReadAllText("/etc/machine-id").Trim();
            if (machineId.Length > 0)
            {
                var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes("parafs-nvme:" + machineId));
                return new Guid(hash.AsSpan(0, 16));
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return Guid.NewGuid();
    });

    public void Validate()
    {
        if (IoQueues < 1 || IoQueues > 128)
        {
            throw new ArgumentException($"I/O queues must be 1..128, not {IoQueues}");
        }
        if (QueueDepth < 1 || QueueDepth > 4096)
        {
            throw new ArgumentException($"queue depth must be 1..4096, not {QueueDepth}");
        }
        if (MaxTransferBytes < 4096)
        {
            throw new ArgumentException($"max transfer must be at least 4096 bytes, not {MaxTransferBytes}");
        }
        if (CommandTimeout <= TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException("timeouts must be positive");
        }
    }
}
