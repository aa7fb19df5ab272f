using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.FuseAdapter;
using ParaFS.Mds;
using ParaFS.Mds.Namespace;
using ParaFS.Ost;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Cli;

/// <summary>
/// parafs up: the embedded cluster on one machine. An MDS (SQLite, or PostgreSQL), N OSTs (one data directory
/// each) and the mount run in this one process on loopback; SIGINT or SIGTERM unmounts and stops
/// them all. Everything lives under one data directory, so running it again brings back what
/// was written.
/// </summary>
internal static class UpCommand
{
    public const string Help = """
        usage: parafs up [--targets N | --pools A:2,B:2] [--data DIR] [--mount DIR]
                         [--stripe-count N] [--stripe-size SIZE] [--store sqlite|postgres|POSTGRES]
                         [--backend dir|block|nvme-tcp://HOST:PORT/NQN] [--device-size SIZE] [--verbose]

        Starts a whole ParaFS on this machine and mounts it; Ctrl-C (or SIGTERM) unmounts and
        stops everything. Run it again on the same --data and everything written is there.

          --targets N         object storage targets to run (default 4), in pool "default"
          --pools A:2,B:2     targets per pool instead (new files go to the first pool)
          --data DIR          where the MDS and OSTs keep their data (default ./.parafs)
          --mount DIR         where to mount (default ./mnt; created if missing)
          --stripe-count N    default stripes per new file (-1: all targets; default 4)
          --stripe-size SIZE  default stripe size, a multiple of 4K (default 1M)
          --store sqlite      the MDS keeps its metadata in SQLite under DIR/mds (the default)
          --store postgres    ... in a PostgreSQL server that up runs for you: a cluster in
                              DIR/postgres on a loopback port, stopped when up stops
          --store POSTGRES    ... in an existing PostgreSQL database: a connection string
                              (Host=...;Database=...) or postgres://USER@HOST:PORT/NAME
          --backend dir       the OSTs keep objects as files under DIR/ost-POOL-N (the default)
          --backend block     ... in ParaFS's block store on image files DIR/ost-POOL-N.img
                              (sparse, --device-size each, default 4G), with O_DIRECT
          --backend nvme-tcp://HOST:PORT/NQN
                              ... in the block store on the namespaces of an NVMe/TCP target,
                              through ParaFS's own NVMe/TCP host: target N uses namespace N
                              (1, 2, ...); each namespace must be blank or this file system's
          -o OPTIONS          mount options, as for parafs mount -o (e.g. readprio=off)
          --verbose           log every daemon's lines, not just warnings
        """;

    /// <summary>What the first run of up on a data directory fixed (up.json).</summary>
    /// <param name="MdsPort">The MDS's port, kept so mounts and tools find it again.</param>
    /// <param name="Pools">POOL:COUNT pairs.</param>
    /// <param name="Backend">Where the OSTs keep objects (null in files written before it was recorded: dir).</param>
    private sealed record UpState(int MdsPort, List<string> Pools, string? Backend = null);

    /// <summary>Where target number <paramref name="number"/> (1, 2, ...) keeps its objects under <paramref name="backend"/>.</summary>
    private static (string Where, string Backend) OstStorage(string backend, string directory, int number, long deviceSize)
    {
        switch (backend)
        {
            case "dir":
                return (directory, "dir");
            case "block":
                var image = directory + ".img";
                if (!File.Exists(image))
                {
                    using var file = File.Create(image);
                    file.SetLength(deviceSize);
                }

                return (image, $"block:{image}");
            default:
                if (!backend.StartsWith("nvme-tcp://", StringComparison.Ordinal) || backend.TrimEnd('/').Count(c => c == '/') != 3)
                {
                    throw new UsageException($"parafs up: --backend {backend} is not dir, block or nvme-tcp://HOST:PORT/NQN (up gives target N namespace N)");
                }

                var url = $"{backend.TrimEnd('/')}/{number}";
                return (url, url);
        }
    }

    public static async Task<int> RunAsync(string[] argv)
    {
        if (argv.Any(a => a is "--help" or "-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }

        try
        {
            return await UpAsync(new Tools.ToolArgs("up", argv, ["--targets", "--pools", "--data", "--mount", "--stripe-count", "--stripe-size", "--store", "--backend", "--device-size", "-o"], ["--verbose"])).ConfigureAwait(false);
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 2;
        }
        catch (Exception e) when (e is StartupException or ParaFsException or IOException)
        {
            await Console.Error.WriteLineAsync($"parafs up: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    private static async Task<int> UpAsync(Tools.ToolArgs args)
    {
        var data = Path.GetFullPath(args.Value("--data") ?? ".parafs");
        var mountPoint = Path.GetFullPath(args.Value("--mount") ?? "mnt");
        var mountSettings = MountCommand.Settings(args.Value("-o") ?? "");
        var pools = Pools(args);
        Directory.CreateDirectory(data);
        var state = LoadState(data, pools, args.Value("--pools") is not null || args.Value("--targets") is not null, args.Value("--backend"));
        using var loggerFactory = LoggerFactory.Create(b => b
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            })
            .SetMinimumLevel(args.Has("--verbose") ? LogLevel.Information : LogLevel.Warning));

        using var stop = new StopSignals();

        var storeArg = args.Value("--store") ?? "sqlite";
        await using var postgres = storeArg == "postgres" ? await UpPostgres.StartAsync(Path.Combine(data, "postgres"), stop.Token).ConfigureAwait(false) : null;

        // Picked after PostgreSQL started, which takes a while: a port found free earlier may be taken by then.
        var mdsPort = PortIsFree(state.MdsPort) ? state.MdsPort : FreePort();
        File.WriteAllText(Path.Combine(data, "up.json"), JsonSerializer.Serialize(state with { MdsPort = mdsPort }));
        var store = storeArg switch
        {
            "sqlite" => null,
            "postgres" => postgres!.ConnectionString,
            _ when Mds.Store.PostgresMetadataStore.IsConnectionString(storeArg) => storeArg,
            _ => throw new UsageException($"parafs up: --store {storeArg} is not sqlite, postgres, or a PostgreSQL connection string or postgres:// URL"),
        };
        if (postgres is not null)
        {
            Console.WriteLine($"started PostgreSQL on 127.0.0.1:{postgres.Port} (data {postgres.Directory})");
        }

        Console.WriteLine($"starting the MDS on 127.0.0.1:{mdsPort} (store {(store is null ? Path.Combine(data, "mds") : storeArg == "postgres" ? $"PostgreSQL database parafs on 127.0.0.1:{postgres!.Port}" : "PostgreSQL")})");
        await using var mds = await MdsServer.StartAsync(
            new MdsOptions { DataDirectory = Path.Combine(data, "mds"), Store = store, Listen = RpcEndpoint.Parse($"127.0.0.1:{mdsPort}"), RootPool = state.Pools[0].Split(':')[0] },
            loggerFactory,
            stop.Token).ConfigureAwait(false);

        var osts = new List<OstServer>();
        var backend = state.Backend ?? "dir";
        var deviceSize = args.Value("--device-size") is { } size ? Tools.Sizes.Parse(size, "parafs up --device-size") : 4L << 30;
        try
        {
            var targetNumber = 0;
            foreach (var (pool, index) in state.Pools.SelectMany(p => Enumerable.Range(0, int.Parse(p.Split(':')[1], CultureInfo.InvariantCulture)).Select(i => (p.Split(':')[0], i))))
            {
                targetNumber++;
                var (where, ostBackend) = OstStorage(backend, Path.Combine(data, $"ost-{pool}-{index}"), targetNumber, deviceSize);
                var ost = new OstServer(
                    new OstOptions { DataDirectory = where, Backend = ostBackend, Listen = RpcEndpoint.Parse("127.0.0.1:0"), Mds = mds.Endpoint, Pool = pool },
                    loggerFactory);
                await ost.StartAsync(stop.Token).ConfigureAwait(false);
                osts.Add(ost);
                Console.WriteLine($"started OST target {ost.Superblock!.TargetId} (pool {pool}) on {ost.Endpoint} ({(ostBackend == "dir" ? "data" : ostBackend.Split(':')[0])} {where})");
            }

            await ApplyStripeFlagsAsync(mds, args).ConfigureAwait(false);
            Directory.CreateDirectory(mountPoint);
            await using var mount = await ParaFsMount.MountAsync(mds.Endpoint, mountPoint, mountSettings, loggerFactory, stop.Token).ConfigureAwait(false);
            Console.WriteLine($"ParaFS {mds.FileSystemName} ({mds.FileSystemId}) is mounted at {mountPoint}: {osts.Count} targets, MDS {mds.Endpoint}.");
            Console.WriteLine($"Try: dd if=/dev/urandom of={mountPoint}/a bs=1M count=256; parafs getstripe {mountPoint}/a; parafs df {mountPoint}");
            Console.WriteLine($"Stop with Ctrl-C (or kill -TERM {Environment.ProcessId}): it unmounts and stops everything.");
            await Task.WhenAny(mount.Completion, stop.WhenRequested).ConfigureAwait(false);
            Console.WriteLine(stop.Requested ? "stopping: unmounting, then stopping the OSTs and the MDS" : $"{mountPoint} was unmounted; stopping");
        }
        finally
        {
            foreach (var ost in osts)
            {
                await ost.DisposeAsync().ConfigureAwait(false);
            }
        }

        Console.WriteLine("stopped");
        return 0;
    }

    private static async Task ApplyStripeFlagsAsync(MdsServer mds, Tools.ToolArgs args)
    {
        var policy = new LayoutPolicy();
        if (args.Value("--stripe-count") is { } count)
        {
            policy.StripeCount = int.TryParse(count, out var c) && c is >= -1 and not 0 ? c : throw new UsageException($"parafs up: --stripe-count {count} is not a positive number or -1");
        }

        if (args.Value("--stripe-size") is { } size)
        {
            var bytes = Tools.Sizes.Parse(size, "parafs up --stripe-size");
            policy.StripeSize = bytes is > 0 and <= uint.MaxValue && bytes % 4096 == 0 ? (uint)bytes : throw new UsageException($"parafs up: --stripe-size {size} is not a multiple of 4K");
        }

        if (policy.StripeCount != 0 || policy.StripeSize != 0)
        {
            await mds.Namespace.SetStripeAsync(new RequestContext(new Caller()), MdsNamespace.RootIno, policy).ConfigureAwait(false);
        }
    }

    private static List<string> Pools(Tools.ToolArgs args)
    {
        if (args.Value("--pools") is { } pools)
        {
            if (args.Value("--targets") is not null)
            {
                throw new UsageException("parafs up: give --targets or --pools, not both");
            }

            var list = pools.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            foreach (var p in list)
            {
                var parts = p.Split(':');
                if (parts.Length != 2 || parts[0].Length == 0 || !int.TryParse(parts[1], out var n) || n < 1)
                {
                    throw new UsageException($"parafs up: --pools {pools}: write POOL:COUNT pairs, e.g. vendorA:2,vendorB:2");
                }
            }

            return list;
        }

        var targets = args.Value("--targets") ?? "4";
        return int.TryParse(targets, out var count) && count is >= 1 and <= 64
            ? [$"default:{count}"]
            : throw new UsageException($"parafs up: --targets {targets} is not a number from 1 to 64");
    }

    /// <summary>The first run fixes the pools; a later run with other ones is refused rather than leaving targets behind.</summary>
    private static UpState LoadState(string data, List<string> pools, bool explicitPools, string? backend)
    {
        var file = Path.Combine(data, "up.json");
        if (!File.Exists(file))
        {
            return new UpState(FreePort(), pools, backend ?? "dir");
        }

        var saved = JsonSerializer.Deserialize<UpState>(File.ReadAllText(file)) ?? throw new StartupException($"{file} is unreadable; remove it to start afresh");
        if (explicitPools && !saved.Pools.SequenceEqual(pools))
        {
            throw new UsageException($"parafs up: {data} was set up with {string.Join(",", saved.Pools)}, not {string.Join(",", pools)}; run without --targets/--pools, or use another --data");
        }

        var savedBackend = saved.Backend ?? "dir";
        if (backend is not null && backend != savedBackend)
        {
            throw new UsageException($"parafs up: {data} was set up with --backend {savedBackend}, not {backend}; run without --backend, or use another --data");
        }

        return saved with { Backend = savedBackend };
    }

    private static bool PortIsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
