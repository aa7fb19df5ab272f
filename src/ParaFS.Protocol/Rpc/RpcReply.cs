using Google.Protobuf;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// A successful call's answer: the method's reply message and the payload. The payload is either
/// in the destination the caller gave (<see cref="PayloadInDestination"/>) or in a pooled buffer
/// that <see cref="Dispose"/> returns.
/// </summary>
public sealed class RpcReply : IDisposable
{
    private readonly RpcBuffer _message;
    private readonly RpcBuffer? _payloadBuffer;
    private readonly ReadOnlyMemory<byte> _payload;

    internal RpcReply(RpcBuffer message, RpcBuffer? payloadBuffer, ReadOnlyMemory<byte> payload)
    {
        _message = message;
        _payloadBuffer = payloadBuffer;
        _payload = payload;
    }

    public ReadOnlyMemory<byte> Message => _message.Memory;

    public ReadOnlyMemory<byte> Payload => _payload;

    public bool PayloadInDestination => _payloadBuffer is null;

    public T ParseMessage<T>(MessageParser<T> parser)
        where T : IMessage<T> => parser.ParseFrom(_message.Span);

    public void Dispose()
    {
        _message.Dispose();
        _payloadBuffer?.Dispose();
    }
}

/// <summary>A message the server pushed (a callback); valid until the push handler returns.</summary>
public sealed class RpcPush : IDisposable
{
    private readonly RpcBuffer _message;
    private readonly RpcBuffer _payload;

    internal RpcPush(uint method, RpcBuffer message, RpcBuffer payload)
    {
        Method = method;
        _message = message;
        _payload = payload;
    }

    public uint Method { get; }

    public ReadOnlyMemory<byte> Message => _message.Memory;

    public ReadOnlyMemory<byte> Payload => _payload.Memory;

    public T ParseMessage<T>(MessageParser<T> parser)
        where T : IMessage<T> => parser.ParseFrom(_message.Span);

    public void Dispose()
    {
        _message.Dispose();
        _payload.Dispose();
    }
}
