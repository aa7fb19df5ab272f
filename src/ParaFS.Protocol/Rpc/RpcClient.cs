using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// A pool of connections to one server. Calls spread over the connections; a connection that
/// broke has failed its own pending calls and is replaced on the next call that picks it.
/// Given several addresses (an active MDS and its standbys), a new connection goes to the one
/// that answered last, or else to the next that answers. With bulk connections configured, large
/// calls have connections of their own (<see cref="RpcClientOptions.BulkConnectionsPerServer"/>).
/// </summary>
public sealed class RpcClient : IAsyncDisposable
{
    private readonly Slot[] _slots;
    private readonly ILogger _logger;
    private int _next;
    private int _nextBulk;
    private int _answering;
    private bool _disposed;

    public RpcClient(RpcEndpoint endpoint, RpcClientOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ConnectionsPerServer, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.BulkConnectionsPerServer);
        Endpoint = endpoint;
        Options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("ParaFS.Rpc");
        _slots = new Slot[options.ConnectionsPerServer + options.BulkConnectionsPerServer];
        for (var i = 0; i < _slots.Length; i++)
        {
            _slots[i] = new Slot(Bulk: i >= options.ConnectionsPerServer && options.BulkThreads);
        }
    }

    public RpcEndpoint Endpoint { get; }

    public RpcClientOptions Options { get; }

    /// <summary>The handshake answer of the most recent connection, or null before the first.</summary>
    public HelloReply? ServerInfo { get; private set; }

    /// <summary>Open connections right now.</summary>
    public int OpenConnections => _slots.Count(s => s.Connection is { IsClosed: false });

    /// <summary>Returns an open connection, connecting when its slot has none.</summary>
    public ValueTask<RpcClientConnection> GetConnectionAsync(CancellationToken cancellationToken = default) => GetConnectionAsync(bulk: false, cancellationToken);

    /// <summary>Returns an open connection of the bulk pool (when there is one) or of the general pool.</summary>
    public ValueTask<RpcClientConnection> GetConnectionAsync(bool bulk, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var general = Options.ConnectionsPerServer;
        var bulkCount = Options.BulkConnectionsPerServer;
        var slot = bulk && bulkCount > 0
            ? _slots[general + (int)((uint)Interlocked.Increment(ref _nextBulk) % (uint)bulkCount)]
            : _slots[(int)((uint)Interlocked.Increment(ref _next) % (uint)general)];
        var current = slot.Connection;
        return current is { IsClosed: false } ? ValueTask.FromResult(current) : ConnectSlotAsync(slot, cancellationToken);
    }

    /// <inheritdoc cref="RpcClientConnection.CallAsync(uint, IMessage?, ReadOnlyMemory{byte}, Memory{byte}, TimeSpan?, ReplayTag?, CancellationToken)"/>
    public async Task<RpcReply> CallAsync(
        uint method,
        IMessage? request,
        ReadOnlyMemory<byte> payload = default,
        Memory<byte> replyDestination = default,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default)
    {
        var bulk = Math.Max(payload.Length, replyDestination.Length) >= Options.BulkThresholdBytes;
        var connection = await GetConnectionAsync(bulk, cancellationToken).ConfigureAwait(false);
        return await connection.CallAsync(method, request, payload, replyDestination, timeout, cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    public async Task<TReply> CallAsync<TReply>(
        uint method, IMessage? request, MessageParser<TReply> parser, TimeSpan? timeout = null, ReplayTag? replay = null, CancellationToken cancellationToken = default)
        where TReply : IMessage<TReply>
    {
        var connection = await GetConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await connection.CallAsync(method, request, parser, timeout, replay, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        foreach (var slot in _slots)
        {
            if (slot.Connection is { } connection)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }

            slot.Gate.Dispose();
        }
    }

    private async ValueTask<RpcClientConnection> ConnectSlotAsync(Slot slot, CancellationToken cancellationToken)
    {
        await slot.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (slot.Connection is { IsClosed: false } raced)
            {
                return raced;
            }

            if (slot.Connection is { } broken)
            {
                await broken.DisposeAsync().ConfigureAwait(false);
            }

            var connection = await ConnectAnyAsync(slot.Bulk, cancellationToken).ConfigureAwait(false);
            ServerInfo = connection.ServerInfo;
            slot.Connection = connection;
            return connection;
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    private async Task<RpcClientConnection> ConnectAnyAsync(bool bulk, CancellationToken cancellationToken)
    {
        var (connection, index) = await RpcClientConnection.ConnectFirstAnsweringAsync(Endpoint, Volatile.Read(ref _answering), Options, _logger, bulk, cancellationToken).ConfigureAwait(false);
        Volatile.Write(ref _answering, index);
        return connection;
    }

    /// <summary>One connection's place in the pool; a bulk slot's connection runs on threads of its own (<see cref="RpcClientOptions.BulkThreads"/>).</summary>
    private sealed class Slot(bool Bulk)
    {
        public bool Bulk { get; } = Bulk;

        public SemaphoreSlim Gate { get; } = new(1, 1);

        public RpcClientConnection? Connection { get; set; }
    }
}
