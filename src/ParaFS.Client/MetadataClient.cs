using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Client;

/// <summary>
/// The client's side of the MDS: one session, kept across reconnects. Every new connection
/// (after a network break or an MDS restart) re-attaches the session and brings back the
/// handles this client holds open and the advisory locks it holds. Calls that cannot reach the
/// MDS are retried with backoff up to a limit. A call cut off after it was sent is retried when
/// repeating it is harmless, or when it carries a replay tag and the MDS keeps replies: then the
/// MDS answers a call it already ran from the record of its reply instead of running it again.
/// </summary>
internal sealed class MetadataClient : IAsyncDisposable
{
    private readonly ClientOptions _options;
    private readonly RpcClient _rpc;
    private readonly SemaphoreSlim _sessionGate = new(1, 1);
    private readonly Func<IEnumerable<OpenHandle>> _openHandles;
    private readonly Func<IEnumerable<LockRequest>> _heldLocks;
    private readonly Action<IReadOnlyList<LockRequest>> _locksLost;
    private readonly ulong _instance = NewInstanceId();
    private readonly System.Collections.Concurrent.ConcurrentStack<uint> _freeSlots = new();
    private ulong _sessionId;
    private long _lastXid;
    private int _slots;

    /// <summary>
    /// <paramref name="openHandles"/> and <paramref name="heldLocks"/> are what a re-attach brings
    /// back; <paramref name="locksLost"/> hears of the locks the MDS did not take back;
    /// <paramref name="connectionLost"/> hears of every connection to the MDS that ended (the
    /// callbacks on it may be lost).
    /// </summary>
    public MetadataClient(
        RpcEndpoint mds,
        ClientOptions options,
        Func<IEnumerable<OpenHandle>> openHandles,
        Func<IEnumerable<LockRequest>> heldLocks,
        Action<IReadOnlyList<LockRequest>> locksLost,
        Func<RpcPush, ValueTask> onPush,
        Action connectionLost,
        ILoggerFactory loggerFactory)
    {
        _options = options;
        _openHandles = openHandles;
        _heldLocks = heldLocks;
        _locksLost = locksLost;
        _rpc = new RpcClient(mds, new RpcClientOptions
        {
            ConnectionsPerServer = 2,
            Role = PeerRole.Client,
            PeerName = options.ClientName,
            Connected = AttachSessionAsync,
            PushHandler = (push, _) => onPush(push),
            Lost = (_, _) => connectionLost(),
        }, loggerFactory);
    }

    public ulong SessionId => Volatile.Read(ref _sessionId);

    public string FileSystemId => _rpc.ServerInfo?.FsId ?? "";

    public string FileSystemName => _rpc.ServerInfo?.FsName ?? "";

    public RpcEndpoint Endpoint => _rpc.Endpoint;

    /// <summary>
    /// Calls the MDS and parses the reply. A call that is not <paramref name="idempotent"/> carries
    /// a replay tag; both kinds are retried after a connection broke mid-call, the tagged kind only
    /// while the MDS keeps replies (an older MDS does not: the call then fails with EIO).
    /// </summary>
    public async Task<T> CallAsync<T>(uint method, IMessage request, MessageParser<T> parser, bool idempotent, CancellationToken cancellationToken = default)
        where T : IMessage<T>
    {
        var deadline = Environment.TickCount64 + (long)_options.MdsRetryLimit.TotalMilliseconds;
        var tag = idempotent ? null : new ReplayTag { Client = _instance, Slot = TakeSlot(), Xid = (ulong)Interlocked.Increment(ref _lastXid) };
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    return await _rpc.CallAsync(method, request, parser, replay: tag, cancellationToken: cancellationToken).ConfigureAwait(false);
                }
                catch (RpcException e) when (Retryable(e, idempotent || RetriesTagged) && Environment.TickCount64 < deadline)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 50 << Math.Min(attempt, 6))), cancellationToken).ConfigureAwait(false);
                    if (tag is { Resent: false })
                    {
                        tag = new ReplayTag(tag) { Resent = true };
                    }
                }
                catch (RpcException e) when (Retryable(e, idempotent || RetriesTagged) || e.Errno == Errno.ECONNRESET)
                {
                    throw new ParaFsException(Errno.EIO, $"the MDS at {_rpc.Endpoint} did not answer: {e.Message}", e);
                }
            }
        }
        finally
        {
            if (tag is not null)
            {
                _freeSlots.Push(tag.Slot);
            }
        }
    }

    /// <summary>The MDS answers a retried tagged call from its record (an MDS older than that does not).</summary>
    private bool RetriesTagged => _rpc.ServerInfo?.KeepsReplies == true;

    /// <summary>True while at least one connection to the MDS is open.</summary>
    public bool IsConnected => _rpc.OpenConnections > 0;

    /// <summary>One attempt to connect (which re-attaches the session); an MDS that does not answer is tried again later.</summary>
    public async Task TryReconnectAsync()
    {
        try
        {
            await _rpc.CallAsync(Methods.Ping, new StatFsRequest(), StatFsRequest.Parser).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or ObjectDisposedException or OperationCanceledException)
        {
            // Still away: the next check tries again.
        }
    }

    public Task ConnectAsync(CancellationToken cancellationToken) =>
        CallAsync(Methods.Ping, new StatFsRequest(), StatFsRequest.Parser, idempotent: true, cancellationToken);

    public ValueTask DisposeAsync()
    {
        _sessionGate.Dispose();
        return _rpc.DisposeAsync();
    }

    private static ulong NewInstanceId()
    {
        Span<byte> bytes = stackalloc byte[8];
        ulong id;
        do
        {
            System.Security.Cryptography.RandomNumberGenerator.Fill(bytes);
            id = BitConverter.ToUInt64(bytes);
        }
        while (id == 0);
        return id;
    }

    /// <summary>A slot for one tagged call: one free since its last call ended, or a new one (as many as calls ever ran at once).</summary>
    private uint TakeSlot() => _freeSlots.TryPop(out var slot) ? slot : (uint)Interlocked.Increment(ref _slots);

    /// <summary>Never reached the MDS (safe to retry), or reached it and the call is harmless to repeat.</summary>
    private static bool Retryable(RpcException e, bool idempotent) =>
        e.Errno is Errno.ECONNREFUSED or Errno.ENOTCONN or Errno.EHOSTUNREACH
        || (idempotent && e.Errno is Errno.ECONNRESET or Errno.ETIMEDOUT);

    private async ValueTask AttachSessionAsync(RpcClientConnection connection, CancellationToken cancellationToken)
    {
        await _sessionGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var request = new SessionRequest { SessionId = SessionId, ClientName = _options.ClientName };
            request.OpenHandles.AddRange(_openHandles());
            request.HeldLocks.AddRange(_heldLocks());
            var reply = await connection.CallAsync(Methods.MdsSession, request, SessionReply.Parser, cancellationToken: cancellationToken).ConfigureAwait(false);
            Volatile.Write(ref _sessionId, reply.SessionId);
            if (reply.LostLocks.Count > 0)
            {
                _locksLost(reply.LostLocks);
            }
        }
        finally
        {
            _sessionGate.Release();
        }
    }
}
