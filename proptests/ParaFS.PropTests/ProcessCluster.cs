using System.Net;
using System.Net.Sockets;
using ParaFS.Client;
using ParaFS.Protocol.Rpc;

namespace ParaFS.PropTests;

/// <summary>
/// A cluster of real daemons in child processes (`parafs mds`, `parafs ost`), so a fault is a real
/// kill -9: no shutdown code runs. Each restarts on the same data directory and port.
/// </summary>
public sealed class ProcessCluster : IAsyncDisposable
{
    private readonly string _root;
    private readonly int _mdsPort;
    private readonly List<int> _ostPorts = [];
    private readonly ParafsProcess?[] _osts;
    private ParafsProcess? _mds;
    private int _replayedByKilledMds;

    private ProcessCluster(string root, int targets)
    {
        _root = root;
        _mdsPort = ParafsProcess.FreePort();
        _osts = new ParafsProcess?[targets];
        for (var i = 0; i < targets; i++)
        {
            _ostPorts.Add(ParafsProcess.FreePort());
        }
    }

    public RpcEndpoint Mds => RpcEndpoint.Parse($"127.0.0.1:{_mdsPort}");

    public int Targets => _osts.Length;

    public static async Task<ProcessCluster> StartAsync(int targets = 4)
    {
        var cluster = new ProcessCluster(Path.Combine(Path.GetTempPath(), $"parafs-prop-{Guid.NewGuid():N}"), targets);
        await cluster.StartMdsAsync();
        for (var i = 0; i < targets; i++)
        {
            await cluster.StartOstAsync(i);
        }

        return cluster;
    }

    public Task<ParaFsClient> ClientAsync() =>
        ParaFsClient.ConnectAsync(Mds, new ClientOptions { OstAttempts = 8, MdsRetryLimit = TimeSpan.FromSeconds(60) });

    public async Task StartMdsAsync()
    {
        // A 5 s lease: after each kill -9 of the MDS, cut-overs wait one lease for the client to come back.
        _mds = ParafsProcess.Start("mds", "--data", Path.Combine(_root, "mds"), "--listen", $"127.0.0.1:{_mdsPort}", "--heartbeat-ms", "500", "--lease-ms", "5000");
        await WaitForPortAsync(_mdsPort, _mds);
    }

    public async Task StartOstAsync(int index)
    {
        var ost = ParafsProcess.Start("ost", "--data", Path.Combine(_root, $"ost{index}"), "--listen", $"127.0.0.1:{_ostPorts[index]}", "--mds", $"127.0.0.1:{_mdsPort}", "--pool", "default");
        _osts[index] = ost;
        await WaitForPortAsync(_ostPorts[index], ost);

        // Serving starts once it has registered: wait for a real answer, not just a listening port.
        await using var probe = new RpcClient(RpcEndpoint.Parse($"127.0.0.1:{_ostPorts[index]}"), new RpcClientOptions { ConnectionsPerServer = 1 });
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                using var reply = await probe.CallAsync(Protocol.Methods.OstStatFs, new Protocol.Ost.Empty());
                return;
            }
            catch (Common.ParaFsException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>kill -9 and start again on the same data.</summary>
    public async Task KillAndRestartOstAsync(int index)
    {
        await KillAsync(_osts[index]);
        await StartOstAsync(index);
    }

    /// <summary>Calls the MDS answered from the record of their first run's reply (its log says so), over all its restarts.</summary>
    public int MdsCallsReplayed => _replayedByKilledMds + Replayed(_mds);

    public async Task KillAndRestartMdsAsync()
    {
        await KillAsync(_mds);
        _replayedByKilledMds += Replayed(_mds);
        await StartMdsAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync(_mds);
        foreach (var ost in _osts)
        {
            await KillAsync(ost);
        }

        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static int Replayed(ParafsProcess? mds) =>
        mds?.Output.Split('\n').Count(line => line.Contains("was sent again", StringComparison.Ordinal)) ?? 0;

    private static async Task KillAsync(ParafsProcess? process)
    {
        if (process is not null)
        {
            await process.DisposeAsync();
        }
    }

    private static async Task WaitForPortAsync(int port, ParafsProcess process)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the daemon for port {port} exited:\n{process.Output}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        throw new TimeoutException($"nothing listened on port {port} within 60 s");
    }
}
