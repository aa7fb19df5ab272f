using Microsoft.Extensions.Logging;

namespace ParaFS.Protocol;

/// <summary>The RPC layer's log lines, with fixed event ids (1-99).</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "RPC server listening on {Endpoint}")]
    public static partial void Listening(ILogger logger, string endpoint);

    [LoggerMessage(2, LogLevel.Debug, "connection from {Peer} accepted")]
    public static partial void ConnectionAccepted(ILogger logger, string peer);

    [LoggerMessage(3, LogLevel.Debug, "connection with {Peer} closed: {Reason}")]
    public static partial void ConnectionClosed(ILogger logger, string peer, string reason);

    [LoggerMessage(4, LogLevel.Warning, "closing connection with {Peer}: {Reason}")]
    public static partial void FrameRejected(ILogger logger, string peer, string reason);

    [LoggerMessage(5, LogLevel.Warning, "{Peer} called unknown method id {Method}; answered ENOSYS")]
    public static partial void UnknownMethod(ILogger logger, string peer, uint method);

    [LoggerMessage(6, LogLevel.Warning, "{Peer} sent method {Method} a request message that does not parse: {Reason}")]
    public static partial void BadRequestMessage(ILogger logger, string peer, uint method, string reason);

    [LoggerMessage(7, LogLevel.Error, "method {Method} called by {Peer} failed")]
    public static partial void HandlerFailed(ILogger logger, uint method, string peer, Exception exception);

    [LoggerMessage(8, LogLevel.Warning, "handshake from {Peer} refused: {Reason}")]
    public static partial void HandshakeRejected(ILogger logger, string peer, string reason);

    [LoggerMessage(9, LogLevel.Warning, "push {Method} from {Peer} failed in its handler")]
    public static partial void PushHandlerFailed(ILogger logger, uint method, string peer, Exception exception);

    [LoggerMessage(10, LogLevel.Warning, "a reply from {Peer} stalled mid-payload past its deadline; closing the connection")]
    public static partial void ReplyStalled(ILogger logger, string peer);

    [LoggerMessage(11, LogLevel.Error, "receive loop for {Peer} failed")]
    public static partial void ReceiveLoopFailed(ILogger logger, string peer, Exception exception);

    [LoggerMessage(12, LogLevel.Warning, "a cancellation callback for {Peer} failed")]
    public static partial void CallbackFailed(ILogger logger, string peer, Exception exception);

    [LoggerMessage(13, LogLevel.Warning, "accepting a connection on {Endpoint} failed: {Reason}")]
    public static partial void AcceptFailed(ILogger logger, string endpoint, string reason);

    [LoggerMessage(14, LogLevel.Error, "sending a reply from a file to {Peer} failed; the connection closes: {Reason}")]
    public static partial void SendfileFailed(ILogger logger, string peer, string reason);
}
