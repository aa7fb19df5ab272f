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
}
