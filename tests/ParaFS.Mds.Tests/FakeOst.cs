using System.Collections.Concurrent;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

/// <summary>
/// Stands in for an OST below the MDS in MDS tests (never in an end-to-end test): it registers
/// like one, heartbeats on request, and records the truncates and deletes the MDS sends it.
/// </summary>
public sealed class FakeOst : IAsyncDisposable
{
    private readonly RpcServer _server;
    private readonly RpcClient _mds;

    private FakeOst(RpcServer server, RpcClient mds, uint targetId, string pool)
    {
        _server = server;
        _mds = mds;
        TargetId = targetId;
        Pool = pool;
    }

    public uint TargetId { get; }

    public string Pool { get; }

    public ConcurrentQueue<(ulong Object, ulong Size)> Truncates { get; } = new();

    public ConcurrentQueue<ulong> Deletes { get; } = new();

    public string Address => _server.Endpoint.Text;

    public static async Task<FakeOst> StartAsync(MdsServer mds, string pool, long freeBytes)
    {
        var dispatcher = new RpcDispatcher();
        FakeOst? self = null;
        dispatcher.Register(Methods.OstTruncate, TruncateRequest.Parser, (r, _) =>
        {
            self!.Truncates.Enqueue((r.ObjectId, r.Size));
            return ValueTask.FromResult(new RpcResult(new Empty()));
        });
        dispatcher.Register(Methods.OstDelete, ObjectRequest.Parser, (r, _) =>
        {
            self!.Deletes.Enqueue(r.ObjectId);
            return ValueTask.FromResult(new RpcResult(new Empty()));
        });
        var server = new RpcServer(new RpcServerOptions { Listen = RpcEndpoint.Parse("127.0.0.1:0"), Role = PeerRole.Ost, FileSystemId = mds.FileSystemId }, dispatcher);
        await server.StartAsync();
        var client = new RpcClient(mds.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1, Role = PeerRole.Ost, FileSystemId = mds.FileSystemId });
        var reply = await client.CallAsync(Methods.RegisterTarget, new RegisterTargetRequest
        {
            Pool = pool,
            Address = server.Endpoint.Text,
            Backend = "fake",
            Usage = new TargetUsage { CapacityBytes = (ulong)freeBytes * 2, FreeBytes = (ulong)freeBytes },
        }, RegisterTargetReply.Parser);
        self = new FakeOst(server, client, reply.TargetId, pool);
        return self;
    }

    public Task<TargetHeartbeatReply> HeartbeatAsync() =>
        _mds.CallAsync(Methods.TargetHeartbeat, new TargetHeartbeatRequest { TargetId = TargetId, Address = Address, Usage = new TargetUsage { CapacityBytes = 1 << 30, FreeBytes = 1 << 29 } }, TargetHeartbeatReply.Parser);

    public Task StopServingAsync() => _server.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _mds.DisposeAsync();
        await _server.DisposeAsync();
    }
}
