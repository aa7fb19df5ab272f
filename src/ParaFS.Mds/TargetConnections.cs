using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Mds.Namespace;
using ParaFS.Mds.Targets;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds;

/// <summary>
/// The MDS's own connections to OSTs: it cuts objects when a file shrinks and deletes the objects
/// of removed files. Calls are retried with backoff a few times before they fail with EIO.
/// </summary>
public sealed class TargetConnections(TargetRegistry registry, Func<string> fileSystemId, ILoggerFactory loggerFactory) : IObjectTruncator, IAsyncDisposable
{
    private static readonly TimeSpan[] Backoff = [TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(1)];

    private readonly ConcurrentDictionary<int, RpcClient> _clients = new();

    public async Task TruncateAsync(StripeObject stripeObject, long size, CancellationToken cancellationToken)
    {
        var request = new TruncateRequest { ObjectId = stripeObject.ObjectId, Size = (ulong)size };
        await CallWithRetryAsync((int)stripeObject.TargetId, Methods.OstTruncate, request, $"truncate object {stripeObject.ObjectId} to {size} bytes", cancellationToken).ConfigureAwait(false);
    }

    public Task DeleteAsync(int targetId, long objectId, CancellationToken cancellationToken) =>
        CallOnceAsync(targetId, Methods.OstDelete, new ObjectRequest { ObjectId = (ulong)objectId }, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients.Values)
        {
            await client.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task CallWithRetryAsync(int targetId, uint method, Google.Protobuf.IMessage request, string what, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await CallOnceAsync(targetId, method, request, cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (RpcException e) when (e.IsConnectionFailure && attempt < Backoff.Length)
            {
                await Task.Delay(Backoff[attempt], cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.IsConnectionFailure)
            {
                var target = registry.Find(targetId);
                throw new ParaFsException(Errno.EIO,
                    $"target {targetId} ({target?.Address ?? "unknown address"}, pool {target?.Pool}) did not answer: {what}: {e.Message}", e);
            }
        }
    }

    private async Task CallOnceAsync(int targetId, uint method, Google.Protobuf.IMessage request, CancellationToken cancellationToken)
    {
        var client = Client(targetId);
        using var reply = await client.CallAsync(method, request, timeout: TimeSpan.FromSeconds(10), cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    private RpcClient Client(int targetId)
    {
        var target = registry.Find(targetId) ?? throw new ParaFsException(Errno.EIO, $"target {targetId} is not registered");
        var client = _clients.GetOrAdd(targetId, _ => NewClient(target.Address));
        if (client.Endpoint.Text != target.Address)
        {
            // The OST came back on another address: replace the pool.
            var fresh = NewClient(target.Address);
            if (_clients.TryUpdate(targetId, fresh, client))
            {
                _ = client.DisposeAsync().AsTask();
                return fresh;
            }

            _ = fresh.DisposeAsync().AsTask();
            return _clients[targetId];
        }

        return client;
    }

    private RpcClient NewClient(string address) => new(
        RpcEndpoint.Parse(address),
        new RpcClientOptions { ConnectionsPerServer = 1, Role = PeerRole.Mds, PeerName = "mds", FileSystemId = fileSystemId(), ConnectTimeout = TimeSpan.FromSeconds(3) },
        loggerFactory);
}
