using System.Collections.Concurrent;
using Google.Protobuf;

namespace ParaFS.Protocol.Rpc;

/// <summary>Maps method ids to handlers. A service registers its methods before the server starts.</summary>
public sealed class RpcDispatcher
{
    private readonly ConcurrentDictionary<uint, RpcHandler> _handlers = new();

    public RpcDispatcher()
    {
        Register(Methods.Ping, static _ => ValueTask.FromResult(RpcResult.Empty));
    }

    public void Register(uint method, RpcHandler handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (method == Methods.Handshake)
        {
            throw new ArgumentException("method 0 is the handshake, answered by the RPC layer", nameof(method));
        }

        if (!_handlers.TryAdd(method, handler))
        {
            throw new InvalidOperationException($"method {method} already has a handler");
        }
    }

    /// <summary>Registers a handler whose request message is parsed for it.</summary>
    public void Register<TRequest>(uint method, MessageParser<TRequest> parser, Func<TRequest, RpcRequest, ValueTask<RpcResult>> handler)
        where TRequest : IMessage<TRequest>
    {
        ArgumentNullException.ThrowIfNull(parser);
        ArgumentNullException.ThrowIfNull(handler);
        Register(method, request => handler(request.ParseMessage(parser), request));
    }

    public RpcHandler? Find(uint method) => _handlers.GetValueOrDefault(method);
}
