using System.Collections.Concurrent;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Tests;

/// <summary>
/// A stand-in for the MDS's target registry, speaking the real protocol: it answers
/// RegisterTarget (assigning ids from 1 to new targets) and TargetHeartbeat, and records both.
/// </summary>
public sealed class MdsDouble : IAsyncDisposable
{
    private readonly ConcurrentQueue<RegisterTargetRequest> _registrations = new();
    private readonly ConcurrentQueue<TargetHeartbeatRequest> _heartbeats = new();
    private readonly RpcServer _server;
    private int _lastTargetId;

    private MdsDouble(string listen, string fsId, string fsName, uint heartbeatMs, int lastTargetId)
    {
        FsId = fsId;
        FsName = fsName;
        _lastTargetId = lastTargetId;
        var dispatcher = new RpcDispatcher();
        dispatcher.Register(Methods.RegisterTarget, RegisterTargetRequest.Parser, (request, _) =>
        {
            _registrations.Enqueue(request);
            var id = request.TargetId != 0 ? request.TargetId : (uint)Interlocked.Increment(ref _lastTargetId);
            return ValueTask.FromResult(new RpcResult(new RegisterTargetReply
            {
                TargetId = id,
                FsId = FsId,
                FsName = FsName,
                HeartbeatIntervalMs = heartbeatMs,
                State = TargetState.Up,
            }));
        });
        dispatcher.Register(Methods.TargetHeartbeat, TargetHeartbeatRequest.Parser, (request, _) =>
        {
            _heartbeats.Enqueue(request);
            return ValueTask.FromResult(new RpcResult(new TargetHeartbeatReply { State = TargetState.Up }));
        });
        _server = new RpcServer(
            new RpcServerOptions { Listen = RpcEndpoint.Parse(listen), Role = PeerRole.Mds, ServerName = "mds-double", FileSystemId = fsId, FileSystemName = fsName },
            dispatcher);
    }

    public string FsId { get; }

    public string FsName { get; }

    public RpcEndpoint Endpoint => _server.Endpoint;

    public IReadOnlyList<RegisterTargetRequest> Registrations => [.. _registrations];

    public IReadOnlyList<TargetHeartbeatRequest> Heartbeats => [.. _heartbeats];

    /// <summary>
    /// Starts a double listening at <paramref name="listen"/> (a stopped double's endpoint brings
    /// "the same MDS" back); a new target gets the id after <paramref name="lastTargetId"/>.
    /// </summary>
    public static async Task<MdsDouble> StartAsync(
        string fsId = "fs-test-1", string fsName = "testfs", uint heartbeatMs = 100, string listen = "127.0.0.1:0", int lastTargetId = 0)
    {
        var mds = new MdsDouble(listen, fsId, fsName, heartbeatMs, lastTargetId);
        await mds._server.StartAsync();
        return mds;
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
