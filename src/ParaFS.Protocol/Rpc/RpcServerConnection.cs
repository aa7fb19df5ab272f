using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Protocol.Framing;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// The serving side of one connection. Each call runs on the thread pool, so a slow call never
/// holds up the others on its connection; the server can push messages back on it. On a bulk
/// connection with a thread of its own, a call starts on that thread and goes to the pool only
/// when it waits, so one that blocks (a slow disk write) holds up the calls behind it on that
/// connection, and only there.
/// </summary>
public sealed class RpcServerConnection : RpcChannel
{
    private readonly RpcServer _server;
    private readonly SemaphoreSlim _slots;
    private int _handshakeState;

    internal RpcServerConnection(RpcServer server, Socket socket, long id, string address, ILogger logger)
        : base(socket, server.Options.Limits, logger, address)
    {
        _server = server;
        _slots = new SemaphoreSlim(server.Options.MaxConcurrentCallsPerConnection);
        Id = id;
        Address = address;
    }

    public long Id { get; }

    public string Address { get; }

    /// <summary>What the peer said of itself; set once the handshake is accepted.</summary>
    public Hello? PeerHello { get; private set; }

    /// <summary>A service's per-connection state (the MDS keeps the client session here).</summary>
    public object? State { get; set; }

    /// <summary>Sends a message the peer did not ask for (a callback). No reply comes back.</summary>
    public ValueTask PushAsync(uint method, IMessage? message, ReadOnlyMemory<byte> payload = default) =>
        SendAsync(new CallHeader { Kind = FrameKind.Push, Method = method }, message, payload);

    internal void Start() => StartReceivingFromFirstFrame(_server.Options.HandshakeTimeout);

    protected override async ValueTask<FrameSink> OnFrameHeadAsync(FrameHead head)
    {
        if (head.Header.Kind != FrameKind.Request)
        {
            throw new InvalidDataException($"the peer sent a {head.Header.Kind} frame, which only servers send");
        }

        await _slots.WaitAsync(Closed).ConfigureAwait(false);
        var request = new RpcRequest(this, head.Header, RpcBuffer.CopyOf(head.Message), RpcBuffer.Rent(head.Preamble.PayloadLength));
        return new FrameSink(request.PayloadDestination, request);
    }

    protected override void OnFrameComplete(CallHeader header, FrameSink sink)
    {
        var request = (RpcRequest)sink.State!;
        if (Volatile.Read(ref _handshakeState) == 0)
        {
            _handshakeState = 1;
            var (hello, refusal) = CheckHandshake(request);
            if (refusal is null && hello!.Bulk && _server.Options.BulkThreads && _server.BulkThreadPlaces.TryTake())
            {
                // Decided before the reply goes out, which is then the first frame written with
                // a blocking call; this thread goes on as the connection's receiving thread.
                UseDedicatedThreads(_server.BulkThreadPlaces);
            }

            _ = AnswerHandshakeAsync(request, hello, refusal);
            return;
        }

        if (IsDedicated)
        {
            // A bulk call starts here, on the connection's receiving thread: one that completes
            // without waiting (a disk write) also sends its reply from here, with no thread-pool
            // hop. One that waits finishes on the pool, and this thread goes back to receiving,
            // so a peer that goes away is still noticed and the waiting call cancelled.
            _ = DispatchAsync(request);
            return;
        }

        ThreadPool.UnsafeQueueUserWorkItem(static r => _ = r.Connection.DispatchAsync(r), request, preferLocal: false);
    }

    protected override void OnReceiveEnded(FrameSink? unfinished, string reason)
    {
        if (unfinished?.State is RpcRequest request)
        {
            request.Dispose();
            _slots.Release();
        }

        Log.ConnectionClosed(Logger, Peer, reason);
    }

    private (Hello? Hello, RpcError? Refusal) CheckHandshake(RpcRequest request)
    {
        if (request.Method != Methods.Handshake)
        {
            return (null, new RpcError { Errno = (int)Errno.EPROTO, Message = $"the first call on a connection must be the handshake (method 0), not method {request.Method}" });
        }

        try
        {
            var hello = request.ParseMessage(Hello.Parser);
            return (hello, Handshake.Check(hello, _server.Options.Role, _server.FileSystemId, _server.Options.FileSystemName));
        }
        catch (InvalidProtocolBufferException e)
        {
            return (null, new RpcError { Errno = (int)Errno.EBADMSG, Message = $"the handshake message does not parse: {e.Message}" });
        }
    }

    private async Task AnswerHandshakeAsync(RpcRequest request, Hello? hello, RpcError? refusal)
    {
        try
        {
            var header = new CallHeader { Kind = FrameKind.Response, CallId = request.CallId, Method = request.Method, Error = refusal };
            if (refusal is not null)
            {
                Log.HandshakeRejected(Logger, Peer, refusal.Message);
                await SendAsync(header, null, default).ConfigureAwait(false);
                Abort($"handshake refused: {refusal.Message}");
                return;
            }

            PeerHello = hello;
            Peer = $"{Handshake.RoleName(hello!.Role)} {hello.PeerName} at {Address}";
            var reply = new HelloReply
            {
                ProtocolVersion = Handshake.Negotiate(hello),
                FsId = _server.FileSystemId,
                FsName = _server.Options.FileSystemName,
                Role = _server.Options.Role,
                ServerName = _server.Options.ServerName,
                KeepsReplies = _server.Options.KeepsReplies,
            };
            await SendAsync(header, reply, default).ConfigureAwait(false);
            _handshakeState = 2;
        }
        catch (RpcException)
        {
            // The connection closed under the handshake; its close is logged.
        }
        finally
        {
            request.Dispose();
            _slots.Release();
        }
    }

    private async Task DispatchAsync(RpcRequest request)
    {
        RpcResult result = default;
        RpcError? error = null;
        try
        {
            if (_handshakeState != 2)
            {
                error = new RpcError { Errno = (int)Errno.EPROTO, Message = "a call arrived before the handshake was answered" };
            }
            else if (_server.Dispatcher.Find(request.Method) is { } handler)
            {
                result = await handler(request).ConfigureAwait(false);
            }
            else
            {
                Log.UnknownMethod(Logger, Peer, request.Method);
                error = new RpcError { Errno = (int)Errno.ENOSYS, Message = $"method id {request.Method} is unknown to this {Handshake.RoleName(_server.Options.Role)}; is the peer newer than this server?" };
            }
        }
        catch (ParaFsException e)
        {
            error = new RpcError { Errno = (int)e.Errno, Message = e.Message };
        }
        catch (InvalidProtocolBufferException e)
        {
            Log.BadRequestMessage(Logger, Peer, request.Method, e.Message);
            error = new RpcError { Errno = (int)Errno.EBADMSG, Message = $"the request message for method {request.Method} does not parse: {e.Message}" };
        }
        catch (OperationCanceledException) when (Closed.IsCancellationRequested)
        {
            request.Dispose();
            _slots.Release();
            return;
        }
        catch (UnansweredCallException e)
        {
            Abort($"method {request.Method} is not answered: {e.Message}");
            request.Dispose();
            _slots.Release();
            return;
        }
        catch (Exception e)
        {
            Log.HandlerFailed(Logger, request.Method, Peer, e);
            error = new RpcError { Errno = (int)Errno.EIO, Message = $"method {request.Method} failed on {_server.Options.ServerName}: {e.GetType().Name}: {e.Message}" };
        }

        try
        {
            var header = new CallHeader { Kind = FrameKind.Response, CallId = request.CallId, Method = request.Method, Error = error };
            if (error is null && result.PayloadFile is { } file)
            {
                await SendFileAsync(header, result.Message, file).ConfigureAwait(false);
            }
            else
            {
                await SendAsync(header, error is null ? result.Message : null, error is null ? result.Payload : default).ConfigureAwait(false);
            }
        }
        catch (RpcException)
        {
            // The caller's connection is gone; its close is logged once, by the receive loop.
        }
        finally
        {
            result.PayloadOwner?.Dispose();
            result.PayloadFile?.Dispose();
            request.Dispose();
            _slots.Release();
        }
    }
}
