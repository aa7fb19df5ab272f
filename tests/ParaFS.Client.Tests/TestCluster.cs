using ParaFS.Mds;
using ParaFS.Ost;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Client.Tests;

/// <summary>
/// An in-process cluster for client tests: a real MDS on SQLite and real OSTs with the dir backend
/// on temporary directories, all over TCP loopback. OSTs and the MDS can be stopped and started
/// again on the same data and the same port.
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    private readonly List<OstServer?> _osts = [];
    private readonly List<(string Data, string Listen, string Pool)> _ostSpecs = [];

    private TestCluster(string root, MdsServer mds)
    {
        Root = root;
        Mds = mds;
    }

    public string Root { get; }

    public MdsServer Mds { get; private set; }

    public RpcEndpoint MdsEndpoint => Mds.Endpoint;

    public static readonly Caller RootCaller = new();

    /// <summary>
    /// Starts an MDS and <paramref name="targets"/> OSTs, in pool "default" unless <paramref name="poolOf"/>
    /// names each one's pool. <paramref name="lease"/> is the MDS's session lease, also its recovery
    /// window after a restart (30 s unless given). <paramref name="loseReply"/> is the MDS's test hook
    /// <see cref="MdsOptions.LoseReply"/> (not kept across <see cref="RestartMdsAsync"/>).
    /// </summary>
    public static async Task<TestCluster> StartAsync(int targets = 4, Func<int, string>? poolOf = null, TimeSpan? lease = null, Func<uint, bool>? loseReply = null)
    {
        var root = Path.Combine(Path.GetTempPath(), $"parafs-cluster-{Guid.NewGuid():N}");
        var mds = await MdsServer.StartAsync(new MdsOptions
        {
            DataDirectory = Path.Combine(root, "mds"),
            Listen = RpcEndpoint.Parse($"127.0.0.1:{ParafsProcess.FreePort()}"),
            HeartbeatInterval = TimeSpan.FromMilliseconds(500),
            SessionLease = lease ?? TimeSpan.FromSeconds(30),
            LoseReply = loseReply,
        });
        var cluster = new TestCluster(root, mds);
        for (var i = 0; i < targets; i++)
        {
            cluster._ostSpecs.Add((Path.Combine(root, $"ost{i}"), $"127.0.0.1:{ParafsProcess.FreePort()}", poolOf?.Invoke(i) ?? "default"));
            cluster._osts.Add(null);
            await cluster.StartOstAsync(i);
        }

        return cluster;
    }

    public async Task StartOstAsync(int index)
    {
        var (data, listen, pool) = _ostSpecs[index];
        var ost = new OstServer(new OstOptions
        {
            DataDirectory = data,
            Listen = RpcEndpoint.Parse(listen),
            Mds = MdsEndpoint,
            Pool = pool,
        });
        await ost.StartAsync();
        _osts[index] = ost;
    }

    /// <summary>Stops an OST as a crash would look to clients: its connections close and it answers nothing.</summary>
    public async Task StopOstAsync(int index)
    {
        if (_osts[index] is { } ost)
        {
            await ost.DisposeAsync();
            _osts[index] = null;
        }
    }

    public async Task RestartMdsAsync(TimeSpan? downFor = null)
    {
        var listen = Mds.Endpoint.Text;
        var lease = Mds.Sessions.Lease;
        await Mds.DisposeAsync();
        if (downFor is { } pause)
        {
            await Task.Delay(pause);
        }

        Mds = await MdsServer.StartAsync(new MdsOptions
        {
            DataDirectory = Path.Combine(Root, "mds"),
            Listen = RpcEndpoint.Parse(listen),
            HeartbeatInterval = TimeSpan.FromMilliseconds(500),
            SessionLease = lease,
        });
    }

    public string OstDataDirectory(int index) => _ostSpecs[index].Data;

    public Task<ParaFsClient> ClientAsync(ClientOptions? options = null) => ParaFsClient.ConnectAsync(MdsEndpoint, options);

    public async ValueTask DisposeAsync()
    {
        for (var i = 0; i < _osts.Count; i++)
        {
            await StopOstAsync(i);
        }

        await Mds.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
