namespace ParaFS.Client;

public sealed record ClientOptions
{
    /// <summary>How long attributes and directory entries are trusted without asking the MDS (callbacks revoke them sooner).</summary>
    public TimeSpan CacheLifetime { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Tries per OST call before it fails with EIO (with backoff between them).</summary>
    public int OstAttempts { get; init; } = 4;

    /// <summary>How long one OST call may take before it counts as a failed try.</summary>
    public TimeSpan OstCallTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long metadata calls keep retrying while the MDS is unreachable (it may be restarting).</summary>
    public TimeSpan MdsRetryLimit { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>OST requests in flight for one open file.</summary>
    public int PerFileRequests { get; init; } = 32;

    /// <summary>OST requests in flight for the whole client.</summary>
    public int GlobalRequests { get; init; } = 256;

    /// <summary>
    /// Accept writes once their bytes are copied and send them to the OSTs in the background (as
    /// Lustre's client does); errors come back from the next write, flush, fsync or close. Off:
    /// every write waits for its OSTs.
    /// </summary>
    public bool WriteBehind { get; init; } = true;

    /// <summary>Bytes of accepted, unsent writes one open file may hold.</summary>
    public int WriteBehindPerFileBytes { get; init; } = 64 * 1024 * 1024;

    /// <summary>Bytes of accepted, unsent writes the whole client may hold.</summary>
    public int WriteBehindBytes { get; init; } = 256 * 1024 * 1024;

    /// <summary>How soon a size extension is reported to the MDS when nothing else reports it.</summary>
    public TimeSpan SizeReportInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Read-ahead window per sequential reader, in stripes of the whole layout (stripe size x count).</summary>
    public int ReadAheadRows { get; init; } = 2;

    /// <summary>Bytes all read-ahead buffers of the client may hold at once.</summary>
    public long ReadAheadMemory { get; init; } = 256L * 1024 * 1024;

    /// <summary>
    /// Bulk connections to OSTs (2 per OST) that run on threads of their own, a receiving and a
    /// sending one, at once; past this they run on the thread pool; 0: none do.
    /// </summary>
    public int BulkThreadConnections { get; init; } = 256;

    public string ClientName { get; init; } = $"{Environment.MachineName}:{Environment.ProcessId}";
}
