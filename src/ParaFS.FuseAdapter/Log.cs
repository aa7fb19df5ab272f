using Microsoft.Extensions.Logging;

namespace ParaFS.FuseAdapter;

/// <summary>The mount's log lines, with fixed event ids (800-899).</summary>
internal static partial class Log
{
    [LoggerMessage(800, LogLevel.Warning, "could not set the read-ahead of {MountPoint} to {Kb} KiB ({Reason}); sequential reads will be slower")]
    public static partial void ReadAheadNotSet(ILogger logger, string mountPoint, int kb, string reason);
}
