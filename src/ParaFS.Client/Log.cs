using Microsoft.Extensions.Logging;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Client;

/// <summary>The client core's log lines, with fixed event ids (500-599).</summary>
internal static partial class Log
{
    [LoggerMessage(500, LogLevel.Warning, "switching inode {Ino} to its new layout failed, will retry on the next callback or I/O: {Reason}")]
    public static partial void LayoutSwitchFailed(ILogger logger, ulong ino, string reason);

    [LoggerMessage(501, LogLevel.Warning, "no connection to the MDS at {Mds}: trying again every second; files held open ({Open}) are kept and re-attached when it answers, metadata calls wait for it up to their retry time")]
    public static partial void MdsAway(ILogger logger, RpcEndpoint mds, int open);

    [LoggerMessage(502, LogLevel.Warning, "still no connection to the MDS at {Mds} after {Seconds} s; is it running (parafs mds), and reachable from this machine?")]
    public static partial void MdsStillAway(ILogger logger, RpcEndpoint mds, long seconds);

    [LoggerMessage(503, LogLevel.Information, "connected to the MDS at {Mds} again after {Seconds:0.0} s; the session and its open files are re-attached")]
    public static partial void MdsBack(ILogger logger, RpcEndpoint mds, double seconds);

    [LoggerMessage(504, LogLevel.Error, "the MDS at {Mds} did not take back the {Kind} lock on inode {Ino}, bytes {Start}-{End}, that this client held: another client holds one in its way, or this client was away longer than its lease and the MDS ended its session. The process that took it still thinks it holds it; check what the lock guards")]
    public static partial void LockLost(ILogger logger, RpcEndpoint mds, string kind, ulong ino, ulong start, ulong end);

    [LoggerMessage(505, LogLevel.Information, "the MDS at {Mds} is in its recovery window ({Seconds:0.0} s left): lock requests wait until clients that held locks before its restart have come back for them")]
    public static partial void LockWaitsForRecovery(ILogger logger, RpcEndpoint mds, double seconds);
}
