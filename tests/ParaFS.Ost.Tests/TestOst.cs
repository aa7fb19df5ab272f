using ParaFS.Protocol;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Tests;

/// <summary>An in-process OST on loopback over a temp data directory, and a client to it.</summary>
public sealed class TestOst : IAsyncDisposable
{
    private readonly TestDirectory? _ownDirectory;

    private TestOst(OstServer server, CapturingLoggerProvider log, RpcClient client, TestDirectory? ownDirectory)
    {
        Server = server;
        Log = log;
        Client = client;
        _ownDirectory = ownDirectory;
    }

    public OstServer Server { get; }

    public CapturingLoggerProvider Log { get; }

    public RpcClient Client { get; }

    public static OstOptions Options(RpcEndpoint mds, string dataDirectory, string pool = "fast", string listen = "127.0.0.1:0") => new()
    {
        DataDirectory = dataDirectory,
        Listen = RpcEndpoint.Parse(listen),
        Mds = mds,
        Pool = pool,
        RetryInterval = TimeSpan.FromMilliseconds(100),
        WaitingLogInterval = TimeSpan.FromMilliseconds(500),
        ServerName = "test-ost",
    };

    public static Task<TestOst> StartAsync(MdsDouble mds, string? dataDirectory = null, Func<OstOptions, OstOptions>? adjust = null) =>
        StartAsync(mds.Endpoint, mds.FsId, dataDirectory, adjust);

    /// <summary>Starts an OST registering with the MDS at <paramref name="mds"/>; its client speaks for file system <paramref name="fsId"/>.</summary>
    public static async Task<TestOst> StartAsync(RpcEndpoint mds, string fsId, string? dataDirectory = null, Func<OstOptions, OstOptions>? adjust = null)
    {
        var own = dataDirectory is null ? new TestDirectory() : null;
        var options = Options(mds, dataDirectory ?? own!.Sub("data"));
        options = adjust?.Invoke(options) ?? options;
        var log = new CapturingLoggerProvider();
        var server = new OstServer(options, log);
        try
        {
            await server.StartAsync();
        }
        catch
        {
            await server.DisposeAsync();
            own?.Dispose();
            throw;
        }

        var client = new RpcClient(server.Endpoint, new RpcClientOptions { FileSystemId = fsId, ConnectionsPerServer = 4 });
        return new TestOst(server, log, client, own);
    }

    public async Task<ulong> WriteAsync(ulong objectId, long offset, ReadOnlyMemory<byte> data)
    {
        using var reply = await Client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = objectId, Offset = (ulong)offset }, data);
        return reply.ParseMessage(WriteReply.Parser).ObjectSize;
    }

    public async Task<(byte[] Data, ReadReply Reply)> ReadAsync(ulong objectId, long offset, int length)
    {
        using var reply = await Client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = objectId, Offset = (ulong)offset, Length = (uint)length });
        return (reply.Payload.ToArray(), reply.ParseMessage(ReadReply.Parser));
    }

    public Task<ObjectAttr> GetAttrAsync(ulong objectId) =>
        Client.CallAsync(Methods.OstGetAttr, new ObjectRequest { ObjectId = objectId }, ObjectAttr.Parser);

    public Task<Empty> SyncAsync(params ulong[] objectIds)
    {
        var request = new SyncRequest();
        request.ObjectIds.AddRange(objectIds);
        return Client.CallAsync(Methods.OstSync, request, Empty.Parser);
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Server.DisposeAsync();
        _ownDirectory?.Dispose();
    }
}
