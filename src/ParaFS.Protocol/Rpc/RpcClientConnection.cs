using System.Collections.Concurrent;
using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Protocol.Framing;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// The calling side of one connection: many calls in flight, matched to their replies by call id
/// in whatever order the server answers; per-call deadlines and cancellation; server pushes.
/// </summary>
public sealed class RpcClientConnection : RpcChannel
{
    /// <summary>How long a reply may stall mid-payload past its deadline before the connection is given up.</summary>
    private static readonly TimeSpan StallGrace = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<ulong, PendingCall> _pending = new();
    private readonly RpcClientOptions _options;
    private readonly Timer _deadlineTimer;
    private long _lastCallId;

    /// <summary>1 while the deadline timer runs: only while calls are pending, so an idle connection wakes no thread.</summary>
    private int _deadlineTimerArmed;

    private RpcClientConnection(Socket socket, RpcEndpoint endpoint, RpcClientOptions options, ILogger logger)
        : base(socket, options.Limits, logger, endpoint.Text)
    {
        Endpoint = endpoint;
        _options = options;
        _deadlineTimer = new Timer(static s => ((RpcClientConnection)s!).CheckDeadlines(), this, Timeout.Infinite, Timeout.Infinite);
    }

    /// <summary>How often pending calls are checked against their deadlines.</summary>
    private const int DeadlineCheckMs = 100;

    public RpcEndpoint Endpoint { get; }

    /// <summary>What the server said of itself in the handshake.</summary>
    public HelloReply ServerInfo { get; private set; } = new();

    public int PendingCalls => _pending.Count;

    /// <summary>Whether the deadline checks run now (tests: they stop once no call is pending).</summary>
    internal bool DeadlineChecksRunning => Volatile.Read(ref _deadlineTimerArmed) == 1;

    /// <summary>Connects, shakes hands, and returns a connection ready for calls.</summary>
    public static async Task<RpcClientConnection> ConnectAsync(
        RpcEndpoint endpoint, RpcClientOptions options, ILogger logger, CancellationToken cancellationToken = default) =>
        (await ConnectFirstAnsweringAsync(endpoint, 0, options, logger, bulk: false, cancellationToken).ConfigureAwait(false)).Connection;

    /// <summary>
    /// Connects to the first address of <paramref name="endpoint"/> that answers, starting at
    /// index <paramref name="first"/> (the one that answered last time); returns the index too.
    /// An address that is down, or a standby MDS that does not listen yet, is passed over; a
    /// server that answers and refuses (another file system) is not. A <paramref name="bulk"/>
    /// connection runs on threads of its own (<see cref="RpcChannel.IsDedicated"/>) and says so in
    /// its handshake, so the server does the same on its side.
    /// </summary>
    public static async Task<(RpcClientConnection Connection, int Index)> ConnectFirstAnsweringAsync(
        RpcEndpoint endpoint, int first, RpcClientOptions options, ILogger logger, bool bulk = false, CancellationToken cancellationToken = default)
    {
        var addresses = endpoint.Addresses;
        if (addresses.Count == 1)
        {
            return (await ConnectOneAsync(endpoint, options, logger, bulk, cancellationToken).ConfigureAwait(false), 0);
        }

        var failures = new List<string>();
        for (var i = 0; i < addresses.Count; i++)
        {
            var index = (first + i) % addresses.Count;
            try
            {
                return (await ConnectOneAsync(addresses[index], options, logger, bulk, cancellationToken).ConfigureAwait(false), index);
            }
            catch (RpcException e) when (e.Errno is Errno.ECONNREFUSED or Errno.ETIMEDOUT or Errno.EHOSTUNREACH or Errno.ECONNRESET)
            {
                failures.Add(e.Message);
            }
        }

        throw new RpcException(Errno.ECONNREFUSED, $"no server of {endpoint} answered: {string.Join("; ", failures)}");
    }

    private static async Task<RpcClientConnection> ConnectOneAsync(
        RpcEndpoint endpoint, RpcClientOptions options, ILogger logger, bool bulk, CancellationToken cancellationToken)
    {
        var address = await endpoint.ResolveAsync(cancellationToken).ConfigureAwait(false);
        var socket = endpoint.IsUnix
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(options.ConnectTimeout);
            try
            {
                if (bulk)
                {
                    // A blocking connect, on a thread of its own: an asynchronous one would leave
                    // the descriptor non-blocking, and the bulk threads need it blocking.
                    var connecting = Task.Factory.StartNew(() => socket.Connect(address), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                    _ = connecting.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                    await connecting.WaitAsync(timeout.Token).ConfigureAwait(false);
                }
                else
                {
                    await socket.ConnectAsync(address, timeout.Token).ConfigureAwait(false);
                }
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new RpcException(Errno.ECONNREFUSED, $"cannot connect to {endpoint}: {e.Message}; is the server running and listening there?", e);
            }
            catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                socket.Dispose();
                throw new RpcException(Errno.ETIMEDOUT, $"connecting to {endpoint} timed out after {options.ConnectTimeout.TotalSeconds:0.#} s", e);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        var connection = new RpcClientConnection(socket, endpoint, options, logger);
        if (bulk && (options.BulkThreadBudget is not { } budget || budget.TryTake()))
        {
            connection.UseDedicatedThreads(options.BulkThreadBudget);
        }

        connection.StartReceiving();
        try
        {
            await connection.HandshakeAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return connection;
    }

    /// <summary>
    /// Sends one call and waits for its reply. When <paramref name="replyDestination"/> is large
    /// enough, the reply payload is received straight into it. A failed call throws
    /// <see cref="RpcException"/> with the errno the server (or the connection) decided.
    /// </summary>
    public async Task<RpcReply> CallAsync(
        uint method,
        IMessage? request,
        ReadOnlyMemory<byte> payload = default,
        Memory<byte> replyDestination = default,
        TimeSpan? timeout = null,
        ReplayTag? replay = null,
        CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ThrowIfClosed();
        var limit = timeout ?? _options.CallTimeout;
        var id = (ulong)Interlocked.Increment(ref _lastCallId);
        var call = new PendingCall(id, method, replyDestination, limit);
        _pending[id] = call;
        ArmDeadlineTimer();
        var registration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static (s, token) => ((PendingCall)s!).TryFail(new OperationCanceledException(token)), call)
            : default;
        try
        {
            var header = new CallHeader
            {
                Kind = FrameKind.Request,
                CallId = id,
                Method = method,
                TimeoutMs = limit == Timeout.InfiniteTimeSpan ? 0 : (uint)Math.Min(uint.MaxValue, limit.TotalMilliseconds),
                Replay = replay,
            };
            await SendAsync(header, request, payload).ConfigureAwait(false);
            return await call.Task.ConfigureAwait(false);
        }
        catch (RpcException e) when (!call.Task.IsCompleted)
        {
            call.TryFail(e);
            throw;
        }
        finally
        {
            await registration.DisposeAsync().ConfigureAwait(false);
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Calls a method that answers with a message and no payload.</summary>
    public async Task<TReply> CallAsync<TReply>(
        uint method, IMessage? request, MessageParser<TReply> parser, TimeSpan? timeout = null, ReplayTag? replay = null, CancellationToken cancellationToken = default)
        where TReply : IMessage<TReply>
    {
        using var reply = await CallAsync(method, request, default, default, timeout, replay, cancellationToken).ConfigureAwait(false);
        return reply.ParseMessage(parser);
    }

    public override async ValueTask DisposeAsync()
    {
        await _deadlineTimer.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override ValueTask<FrameSink> OnFrameHeadAsync(FrameHead head)
    {
        var length = head.Preamble.PayloadLength;
        switch (head.Header.Kind)
        {
            case FrameKind.Response when _pending.TryGetValue(head.Header.CallId, out var call) && call.TryBeginReceive():
                var message = RpcBuffer.CopyOf(head.Message);
                if (length <= call.Destination.Length)
                {
                    return ValueTask.FromResult(new FrameSink(call.Destination[..length], new Receiving(call, message, null)));
                }

                var buffer = RpcBuffer.Rent(length);
                return ValueTask.FromResult(new FrameSink(buffer.Memory, new Receiving(call, message, buffer)));

            case FrameKind.Response:
                // A reply to a call that timed out or was cancelled: read past it.
                var discard = RpcBuffer.Rent(length);
                return ValueTask.FromResult(new FrameSink(discard.Memory, discard));

            case FrameKind.Push:
                var pushPayload = RpcBuffer.Rent(length);
                var push = new RpcPush(head.Header.Method, RpcBuffer.CopyOf(head.Message), pushPayload);
                return ValueTask.FromResult(new FrameSink(pushPayload.Memory, push));

            default:
                throw new InvalidDataException($"the server sent a {head.Header.Kind} frame, which only clients send");
        }
    }

    protected override void OnFrameComplete(CallHeader header, FrameSink sink)
    {
        switch (sink.State)
        {
            case Receiving receiving:
                if (header.Error is { } error)
                {
                    receiving.Message.Dispose();
                    receiving.Buffer?.Dispose();
                    receiving.Call.EndReceive(null, new RpcException((Errno)error.Errno, error.Message), IsDedicated);
                }
                else
                {
                    receiving.Call.EndReceive(new RpcReply(receiving.Message, receiving.Buffer, sink.Payload), null, IsDedicated);
                }

                break;

            case RpcPush push:
                ThreadPool.UnsafeQueueUserWorkItem(static s => _ = s.Connection.DeliverPushAsync(s.Push), (Connection: this, Push: push), preferLocal: false);
                break;

            case RpcBuffer discarded:
                discarded.Dispose();
                break;
        }
    }

    protected override void OnReceiveEnded(FrameSink? unfinished, string reason)
    {
        var failure = new RpcException(Errno.ECONNRESET, $"connection to {Peer} lost: {reason}");
        switch (unfinished?.State)
        {
            case Receiving receiving:
                receiving.Message.Dispose();
                receiving.Buffer?.Dispose();
                receiving.Call.EndReceive(null, failure, IsDedicated);
                break;
            case IDisposable other:
                other.Dispose();
                break;
        }

        FailAll(failure);
        Log.ConnectionClosed(Logger, Peer, reason);
        _options.Lost?.Invoke(this, reason);
    }

    protected override void OnClosed(string reason) =>
        FailAll(new RpcException(Errno.ECONNRESET, $"connection to {Peer} lost: {reason}"));

    private void FailAll(RpcException failure)
    {
        foreach (var call in _pending.Values)
        {
            call.TryFail(failure);
        }
    }

    private async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        var hello = new Hello
        {
            ProtocolVersion = ProtocolVersion.Current,
            MinProtocolVersion = ProtocolVersion.MinimumSupported,
            FsId = _options.FileSystemId,
            Role = _options.Role,
            PeerName = _options.PeerName,
            Bulk = IsDedicated,
        };
        var reply = await CallAsync(Methods.Handshake, hello, HelloReply.Parser, _options.ConnectTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
        if (_options.FileSystemId.Length > 0 && reply.FsId.Length > 0 && reply.FsId != _options.FileSystemId)
        {
            throw new RpcException(Errno.EPROTO,
                $"{Endpoint} ({Handshake.RoleName(reply.Role)} {reply.ServerName}) belongs to file system {reply.FsId} ({reply.FsName}), not {_options.FileSystemId}; check the address");
        }

        ServerInfo = reply;
        Peer = $"{Handshake.RoleName(reply.Role)} {reply.ServerName} at {Endpoint}";
        if (_options.Connected is { } connected)
        {
            await connected(this, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task DeliverPushAsync(RpcPush push)
    {
        try
        {
            if (_options.PushHandler is { } handler)
            {
                await handler(push, this).ConfigureAwait(false);
            }
        }
        catch (Exception e)
        {
            Log.PushHandlerFailed(Logger, push.Method, Peer, e);
        }
        finally
        {
            push.Dispose();
        }
    }

    /// <summary>Starts the deadline checks unless they run (a call was just added to <see cref="_pending"/>).</summary>
    private void ArmDeadlineTimer()
    {
        if (Volatile.Read(ref _deadlineTimerArmed) == 0 && Interlocked.Exchange(ref _deadlineTimerArmed, 1) == 0)
        {
            ChangeDeadlineTimer(DeadlineCheckMs);
        }
    }

    private void ChangeDeadlineTimer(int period)
    {
        try
        {
            _deadlineTimer.Change(period, period);
        }
        catch (ObjectDisposedException)
        {
            // The connection is being disposed; its pending calls fail with it.
        }
    }

    private void CheckDeadlines()
    {
        if (_pending.IsEmpty)
        {
            // Stop, then look again: a call added before the flag fell found the timer armed and
            // left it to this check, so the check re-arms for it.
            ChangeDeadlineTimer(Timeout.Infinite);
            Volatile.Write(ref _deadlineTimerArmed, 0);
            if (!_pending.IsEmpty)
            {
                ArmDeadlineTimer();
            }

            return;
        }

        var now = Environment.TickCount64;
        foreach (var call in _pending.Values)
        {
            if (now < call.Deadline)
            {
                continue;
            }

            if (call.TryFail(new RpcException(Errno.ETIMEDOUT,
                $"call to method {call.Method} on {Peer} timed out after {call.Timeout.TotalSeconds:0.###} s")))
            {
                continue;
            }

            if (call.IsReceiving && now >= call.Deadline + (long)StallGrace.TotalMilliseconds)
            {
                Log.ReplyStalled(Logger, Peer);
                Abort("a reply stalled mid-payload past its deadline");
                return;
            }
        }
    }

    private sealed record Receiving(PendingCall Call, RpcBuffer Message, RpcBuffer? Buffer);

    /// <summary>
    /// One call awaiting its reply. States: waiting -> receiving (the receive loop is writing into
    /// the destination) -> done. A call that fails while receiving finishes only when the receive
    /// loop is done with its destination, so no byte lands in a caller's buffer after it returned.
    /// </summary>
    private sealed class PendingCall
    {
        private const int InlineReplyBytes = 16 * 1024;

        private const int Waiting = 0;
        private const int ReceivingState = 1;
        private const int Done = 2;

        private readonly TaskCompletionSource<RpcReply> _completion = new();
        private Exception? _deferredFailure;
        private int _state;

        public PendingCall(ulong id, uint method, Memory<byte> destination, TimeSpan timeout)
        {
            Id = id;
            Method = method;
            Destination = destination;
            Timeout = timeout;
            Deadline = timeout == System.Threading.Timeout.InfiniteTimeSpan
                ? long.MaxValue
                : Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        }

        public ulong Id { get; }

        public uint Method { get; }

        public Memory<byte> Destination { get; }

        public TimeSpan Timeout { get; }

        public long Deadline { get; }

        public Task<RpcReply> Task => _completion.Task;

        public bool IsReceiving => Volatile.Read(ref _state) == ReceivingState;

        public bool TryBeginReceive() => Interlocked.CompareExchange(ref _state, ReceivingState, Waiting) == Waiting;

        public bool TryFail(Exception failure)
        {
            if (Interlocked.CompareExchange(ref _state, Done, Waiting) == Waiting)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static s => s.Completion.TrySetException(s.Failure), (Completion: _completion, Failure: failure), preferLocal: false);
                return true;
            }

            Interlocked.CompareExchange(ref _deferredFailure, failure, null);
            return false;
        }

        /// <summary>Finishes the call; <paramref name="neverInline"/> keeps the caller's code off a bulk connection's receiving thread.</summary>
        public void EndReceive(RpcReply? reply, Exception? failure, bool neverInline)
        {
            Volatile.Write(ref _state, Done);
            var deferred = Volatile.Read(ref _deferredFailure);
            if (reply is not null && deferred is null)
            {
                if (reply.Payload.Length <= InlineReplyBytes && !neverInline)
                {
                    // A small reply resumes its caller right here on the receive loop: one thread
                    // hop fewer on the latency path of small reads and metadata calls.
                    _completion.TrySetResult(reply);
                }
                else
                {
                    ThreadPool.UnsafeQueueUserWorkItem(static s => s.Completion.TrySetResult(s.Reply), (Completion: _completion, Reply: reply), preferLocal: false);
                }

                return;
            }

            reply?.Dispose();
            ThreadPool.UnsafeQueueUserWorkItem(static s => s.Completion.TrySetException(s.Failure), (Completion: _completion, Failure: deferred ?? failure!), preferLocal: false);
        }
    }
}
