using Microsoft.Extensions.Logging;

namespace ParaFS.Ost;

/// <summary>The OST's log lines, with fixed event ids (300-399).</summary>
internal static partial class Log
{
    [LoggerMessage(300, LogLevel.Information, "OST target {TargetId} (pool {Pool}, backend {Backend}) of file system {FsId} serving {DataDirectory} on {Endpoint}")]
    public static partial void Serving(ILogger logger, uint targetId, string pool, string backend, string fsId, string dataDirectory, string endpoint);

    [LoggerMessage(301, LogLevel.Information, "formatted {DataDirectory} as target {TargetId} of file system {FsId} ({FsName}), pool {Pool}")]
    public static partial void Formatted(ILogger logger, string dataDirectory, uint targetId, string fsId, string fsName, string pool);

    [LoggerMessage(302, LogLevel.Warning, "waiting for the MDS at {Mds} to register target (pool {Pool}, data {DataDirectory}): {Reason}")]
    public static partial void WaitingForMds(ILogger logger, string mds, string pool, string dataDirectory, string reason);

    [LoggerMessage(303, LogLevel.Information, "registered with the MDS at {Mds} as target {TargetId}; heartbeat every {IntervalMs} ms")]
    public static partial void Registered(ILogger logger, string mds, uint targetId, uint intervalMs);

    [LoggerMessage(304, LogLevel.Warning, "cannot reach the MDS at {Mds}: {Reason}; target {TargetId} keeps serving and retries")]
    public static partial void MdsUnreachable(ILogger logger, string mds, uint targetId, string reason);

    [LoggerMessage(305, LogLevel.Information, "the MDS at {Mds} is back; target {TargetId} registered again")]
    public static partial void MdsBack(ILogger logger, string mds, uint targetId);

    [LoggerMessage(306, LogLevel.Error, "the MDS at {Mds} answered target {TargetId} with {Answer}; the superblock of {DataDirectory} says {Expected}")]
    public static partial void RegistrationMismatch(ILogger logger, string mds, uint targetId, string answer, string dataDirectory, string expected);

    [LoggerMessage(307, LogLevel.Information, "the MDS marks target {TargetId} {State}")]
    public static partial void StateChanged(ILogger logger, uint targetId, string state);

    [LoggerMessage(308, LogLevel.Information, "OST target {TargetId} stopped")]
    public static partial void Stopped(ILogger logger, uint targetId);

    [LoggerMessage(309, LogLevel.Warning, "the file system under {DataDirectory} cannot punch holes (fallocate EOPNOTSUPP); punches write zeros instead")]
    public static partial void PunchUnsupported(ILogger logger, string dataDirectory);

    [LoggerMessage(310, LogLevel.Debug, "{Objects} objects found under {DataDirectory}")]
    public static partial void ObjectsCounted(ILogger logger, long objects, string dataDirectory);

    [LoggerMessage(312, LogLevel.Warning, "the MDS at {Mds} refused target {TargetId} ({Errno}: {Reason}); it keeps serving and retries")]
    public static partial void RegistrationRefused(ILogger logger, string mds, uint targetId, string errno, string reason);

    [LoggerMessage(311, LogLevel.Warning, "heartbeat loop of target {TargetId} failed; retrying")]
    public static partial void HeartbeatLoopFailed(ILogger logger, uint targetId, Exception exception);

    [LoggerMessage(313, LogLevel.Information, "formatted {Device} as a block store for {Label}: {Chunks} chunks of {ChunkSize} bytes")]
    public static partial void BlockFormatted(ILogger logger, string device, string label, long chunks, int chunkSize);

    [LoggerMessage(314, LogLevel.Information, "block store on {Device} ({Label}): {Objects} objects, {Used} of {Chunks} chunks in use, {Replayed} journal blocks replayed")]
    public static partial void BlockOpened(ILogger logger, string device, string label, int objects, long used, long chunks, long replayed);

    [LoggerMessage(315, LogLevel.Error, "block store on {Device}: {Problem} (run parafs ost fsck)")]
    public static partial void BlockProblem(ILogger logger, string device, string problem);

    [LoggerMessage(316, LogLevel.Error, "block store on {Device}: writing its metadata failed, will retry: {Reason}")]
    public static partial void BlockFlushFailed(ILogger logger, string device, string reason);

    [LoggerMessage(317, LogLevel.Warning, "target {Target}: its data directory refuses O_DIRECT ({Reason}); large writes go through the page cache")]
    public static partial void DirectIoUnsupported(ILogger logger, string target, string reason);
}
