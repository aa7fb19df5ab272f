using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Client;

/// <summary>
/// Connection pools to the OSTs, by target id, with the addresses the MDS gives. A call that does
/// not get through is retried with backoff a bounded number of times and then fails with EIO:
/// never an endless hang. Every OST call is idempotent (writes carry their offset).
/// </summary>
internal sealed class ObjectClients(ClientOptions options, Func<CancellationToken, Task<IReadOnlyList<TargetInfo>>> listTargets, string fileSystemId, ILoggerFactory loggerFactory) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<uint, RpcClient> _clients = new();

    /// <summary>Bulk connections with threads of their own (two threads each), over all OSTs; more run the asynchronous way.</summary>
    private readonly BulkThreadBudget _bulkThreads = new(options.BulkThreadConnections);
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private volatile IReadOnlyDictionary<uint, TargetInfo> _targets = new Dictionary<uint, TargetInfo>();

    public async Task<RpcReply> CallAsync(uint targetId, uint method, IMessage request, ReadOnlyMemory<byte> payload, Memory<byte> replyDestination, CancellationToken cancellationToken)
    {
        RpcException? last = null;
        for (var attempt = 0; attempt < options.OstAttempts; attempt++)
        {
            if (attempt > 0)
            {
                // 100 ms, 400 ms, 1.6 s, ...: long enough for an OST to restart, bounded in total.
                await Task.Delay(TimeSpan.FromMilliseconds(100 * Math.Pow(4, attempt - 1)), cancellationToken).ConfigureAwait(false);

                // The target may have come back elsewhere.
                await RefreshAsync(cancellationToken).ConfigureAwait(false);
            }

            try
            {
                var client = await ClientAsync(targetId, cancellationToken).ConfigureAwait(false);
                return await client.CallAsync(method, request, payload, replyDestination, options.OstCallTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.IsConnectionFailure || e.Errno == Errno.EAGAIN)
            {
                // EAGAIN: a restarted OST that has not re-registered with its MDS yet.
                last = e;
            }
        }

        var address = _targets.GetValueOrDefault(targetId)?.Address ?? "unknown address";
        throw new ParaFsException(Errno.EIO, $"target {targetId} ({address}) did not answer after {options.OstAttempts} tries: {last?.Message}", last!);
    }

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        await _refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var targets = await listTargets(cancellationToken).ConfigureAwait(false);
            _targets = targets.ToDictionary(t => t.TargetId);
            foreach (var (id, client) in _clients)
            {
                if (_targets.TryGetValue(id, out var target) && target.Address != client.Endpoint.Text && _clients.TryRemove(id, out var stale))
                {
                    await stale.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        catch (ParaFsException)
        {
            // The MDS is unreachable too; keep what we knew.
        }
        finally
        {
            _refresh.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients.Values)
        {
            await client.DisposeAsync().ConfigureAwait(false);
        }

        _refresh.Dispose();
    }

    private async ValueTask<RpcClient> ClientAsync(uint targetId, CancellationToken cancellationToken)
    {
        if (_clients.TryGetValue(targetId, out var client))
        {
            return client;
        }

        if (!_targets.ContainsKey(targetId))
        {
            await RefreshAsync(cancellationToken).ConfigureAwait(false);
        }

        var target = _targets.GetValueOrDefault(targetId)
            ?? throw new ParaFsException(Errno.EIO, $"target {targetId} is not known to the MDS");
        return _clients.GetOrAdd(targetId, _ => new RpcClient(
            RpcEndpoint.Parse(target.Address),
            new RpcClientOptions { ConnectionsPerServer = 1, BulkConnectionsPerServer = 2, BulkThreads = options.BulkThreadConnections > 0, BulkThreadBudget = _bulkThreads, Role = PeerRole.Client, FileSystemId = fileSystemId, PeerName = options.ClientName, ConnectTimeout = TimeSpan.FromSeconds(3) },
            loggerFactory));
    }
}
