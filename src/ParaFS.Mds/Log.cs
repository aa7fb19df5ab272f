using Microsoft.Extensions.Logging;

namespace ParaFS.Mds;

/// <summary>The MDS's log lines, with fixed event ids (200-299).</summary>
internal static partial class Log
{
    [LoggerMessage(200, LogLevel.Information, "MDS of file system {FsName} ({FsId}) serving on {Endpoint}, store {Store} at {Path}")]
    public static partial void Serving(ILogger logger, string fsName, string fsId, string endpoint, string store, string path);

    [LoggerMessage(201, LogLevel.Information, "formatted a new file system {FsName} ({FsId}) in {Path}")]
    public static partial void Formatted(ILogger logger, string fsName, string fsId, string path);

    [LoggerMessage(202, LogLevel.Information, "target {Target} registered: pool {Pool}, address {Address}")]
    public static partial void TargetRegistered(ILogger logger, int target, string pool, string address);

    [LoggerMessage(203, LogLevel.Warning, "target {Target} at {Address} is down: no heartbeat for {Missed} intervals")]
    public static partial void TargetDown(ILogger logger, int target, string address, int missed);

    [LoggerMessage(204, LogLevel.Information, "target {Target} at {Address} is up")]
    public static partial void TargetUp(ILogger logger, int target, string address);

    [LoggerMessage(205, LogLevel.Warning, "deleting object {Object} on target {Target} failed, will retry: {Reason}")]
    public static partial void DeletionDeferred(ILogger logger, long @object, int target, string reason);

    [LoggerMessage(206, LogLevel.Warning, "callback {Method} to {Peer} failed: {Reason}")]
    public static partial void CallbackFailed(ILogger logger, uint method, string peer, string reason);

    [LoggerMessage(207, LogLevel.Information, "session {Session} of {Client} released after its lease; {Inodes} inodes lost their last open")]
    public static partial void SessionExpired(ILogger logger, string session, string client, int inodes);

    [LoggerMessage(209, LogLevel.Information, "standby: the metadata store {Store} has an active MDS; this one waits for its leader lock, then listens on {Endpoint}")]
    public static partial void Standby(ILogger logger, string store, string endpoint);

    [LoggerMessage(210, LogLevel.Information, "holding the leader lock of the metadata store {Store}: this MDS serves it, as leader epoch {Epoch}")]
    public static partial void Leader(ILogger logger, string store, long epoch);

    [LoggerMessage(214, LogLevel.Warning, "claiming the metadata store {Store}: ended {Count} write transactions of the MDS that served it before, which held it for longer than the leader poll (a paused process, or a machine that is gone)")]
    public static partial void EndedOldWrites(ILogger logger, string store, int count);

    [LoggerMessage(211, LogLevel.Critical, "lost the leader lock of the metadata store {Store} ({Reason}); stopped serving, another MDS may serve it now")]
    public static partial void LeadershipLost(ILogger logger, string store, string reason);

    [LoggerMessage(208, LogLevel.Error, "background work failed: {What}")]
    public static partial void BackgroundFailed(ILogger logger, string what, Exception exception);

    [LoggerMessage(212, LogLevel.Information, "recovering: for {Seconds} s clients may bring back files they held open and locks they held before this start; until then migrations wait before cutting over, no new advisory lock is granted, retired objects stay and files unlinked while open are kept")]
    public static partial void Recovering(ILogger logger, double seconds);

    [LoggerMessage(213, LogLevel.Information, "method {Method} from {Peer} was sent again (call {Xid} in slot {Slot}); answered with the reply of its first run, not run twice")]
    public static partial void CallReplayed(ILogger logger, uint method, string peer, ulong xid, uint slot);
}
