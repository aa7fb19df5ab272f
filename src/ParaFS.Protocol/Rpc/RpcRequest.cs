using Google.Protobuf;
using Microsoft.Win32.SafeHandles;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// An incoming call as a handler sees it. The message and payload live in pooled buffers that are
/// returned once the reply has been sent: a handler must not keep them past that.
/// </summary>
public sealed class RpcRequest : IDisposable
{
    private readonly RpcBuffer _message;
    private readonly RpcBuffer _payload;

    internal RpcRequest(RpcServerConnection connection, CallHeader header, RpcBuffer message, RpcBuffer payload)
    {
        Connection = connection;
        CallId = header.CallId;
        Method = header.Method;
        Timeout = header.TimeoutMs == 0 ? System.Threading.Timeout.InfiniteTimeSpan : TimeSpan.FromMilliseconds(header.TimeoutMs);
        Replay = header.Replay;
        _message = message;
        _payload = payload;
    }

    public RpcServerConnection Connection { get; }

    public ulong CallId { get; }

    public uint Method { get; }

    /// <summary>How long the caller waits; work past this is wasted.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>The call's identity across retries, when the caller gave one (see <see cref="ReplayTag"/>).</summary>
    public ReplayTag? Replay { get; }

    public ReadOnlyMemory<byte> Message => _message.Memory;

    public ReadOnlyMemory<byte> Payload => _payload.Memory;

    /// <summary>Cancelled when the caller's connection closes.</summary>
    public CancellationToken Aborted => Connection.Closed;

    internal Memory<byte> PayloadDestination => _payload.Memory;

    /// <summary>Parses the request message; one that does not parse is answered EBADMSG by the server.</summary>
    public T ParseMessage<T>(MessageParser<T> parser)
        where T : IMessage<T> => parser.ParseFrom(_message.Span);

    public void Dispose()
    {
        _message.Dispose();
        _payload.Dispose();
    }
}

/// <summary>
/// A handler's answer: a reply message and an optional payload whose owner is disposed once it is
/// sent. The payload is either bytes in memory or a <see cref="PayloadFile"/> (never both).
/// </summary>
public readonly record struct RpcResult(IMessage? Message, ReadOnlyMemory<byte> Payload = default, IDisposable? PayloadOwner = null, FilePayload? PayloadFile = null)
{
    public static RpcResult Empty => default;
}

/// <summary>
/// A reply payload that is a range of an open file, read when the reply is sent. On a bulk
/// connection it goes from the file's cached pages to the socket inside the kernel (sendfile(2)),
/// without the two copies through user memory that reading it into a buffer and sending that
/// would cost. The range must lie within the file when the handler returns it; should the file
/// shrink before it is sent, the missing end goes as zeros (a read racing a truncate may see
/// either). Disposing it disposes <paramref name="owner"/>, which keeps <paramref name="file"/> open.
/// </summary>
public sealed class FilePayload(SafeFileHandle file, long offset, int length, IDisposable? owner) : IDisposable
{
    public SafeFileHandle File => file;

    public long Offset => offset;

    public int Length => length;

    public void Dispose() => owner?.Dispose();
}

public delegate ValueTask<RpcResult> RpcHandler(RpcRequest request);
