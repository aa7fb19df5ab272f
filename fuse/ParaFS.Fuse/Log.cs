using Microsoft.Extensions.Logging;

namespace ParaFS.Fuse;

/// <summary>The FUSE library's log lines, with fixed event ids (700-799). Each is one line: no stack traces.</summary>
internal static partial class Log
{
    [LoggerMessage(700, LogLevel.Error, "FUSE {Opcode} on node {NodeId} failed, answered EIO: {ExceptionType}: {Reason}")]
    public static partial void HandlerFailed(ILogger logger, string opcode, ulong nodeId, string exceptionType, string reason);

    [LoggerMessage(701, LogLevel.Warning, "writing the reply to FUSE {Opcode} (unique {Unique}) failed: {Reason}")]
    public static partial void ReplyFailed(ILogger logger, string opcode, ulong unique, string reason);

    [LoggerMessage(702, LogLevel.Error, "FUSE reader thread failed, ending the session: {Reason}")]
    public static partial void ReaderFailed(ILogger logger, string reason);

    [LoggerMessage(703, LogLevel.Warning, "cloning the /dev/fuse descriptor failed, readers share one descriptor: {Reason}")]
    public static partial void CloneFailed(ILogger logger, string reason);

    [LoggerMessage(704, LogLevel.Warning, "FUSE notification {Code} failed: {Reason}")]
    public static partial void NotifyFailed(ILogger logger, string code, string reason);

    [LoggerMessage(705, LogLevel.Error, "{What} threw and was ignored: {ExceptionType}: {Reason}")]
    public static partial void CallbackFailed(ILogger logger, string what, string exceptionType, string reason);

    [LoggerMessage(706, LogLevel.Error, "FUSE kernel protocol {Major}.{Minor} is not supported (this library speaks 7.x)")]
    public static partial void UnsupportedProtocol(ILogger logger, uint major, uint minor);

    [LoggerMessage(707, LogLevel.Warning, "malformed FUSE request of {Length} bytes ignored")]
    public static partial void Malformed(ILogger logger, int length);

    [LoggerMessage(708, LogLevel.Warning, "unmounting {MountPoint} failed: {Reason}")]
    public static partial void UnmountFailed(ILogger logger, string mountPoint, string reason);

    [LoggerMessage(709, LogLevel.Warning, "could not set the read-ahead of {MountPoint} to {Kb} KiB ({Reason}); sequential reads will be slower")]
    public static partial void ReadAheadNotSet(ILogger logger, string mountPoint, int kb, string reason);
}
