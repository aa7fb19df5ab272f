using Microsoft.Extensions.Logging;

namespace ParaFS.Client;

/// <summary>The client core's log lines, with fixed event ids (500-599).</summary>
internal static partial class Log
{
    [LoggerMessage(500, LogLevel.Warning, "switching inode {Ino} to its new layout failed, will retry on the next callback or I/O: {Reason}")]
    public static partial void LayoutSwitchFailed(ILogger logger, ulong ino, string reason);
}
