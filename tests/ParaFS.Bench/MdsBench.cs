using System.Diagnostics;
using Npgsql;
using ParaFS.Mds;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Bench;

/// <summary>
/// Metadata operations per second: create, stat and unlink of N files (one directory) from 8
/// concurrent callers over RPC to a real MDS, on the SQLite store (synchronous=FULL, on the disk
/// under --dir) and on the PostgreSQL store (a database on --postgres or PARAFS_BENCH_PG; the
/// script starts a throwaway server), beside the same operations on a local tmpfs directory
/// (/dev/shm), in one run.
/// </summary>
internal static class MdsBench
{
    /// <summary>The bench's targets never heartbeat: a long interval keeps them up for the whole run.</summary>
    private static readonly TimeSpan FakeTargetsStayUp = TimeSpan.FromHours(1);

    public static async Task<int> RunAsync(string[] args)
    {
        var files = args.SkipWhile(a => a != "--files").Skip(1).Select(int.Parse).FirstOrDefault(10_000);
        var callers = args.SkipWhile(a => a != "--callers").Skip(1).Select(int.Parse).FirstOrDefault(8);
        var dir = args.SkipWhile(a => a != "--dir").Skip(1).FirstOrDefault() ?? Path.GetTempPath();
        var postgres = args.SkipWhile(a => a != "--postgres").Skip(1).FirstOrDefault() ?? Environment.GetEnvironmentVariable("PARAFS_BENCH_PG");
        var data = Path.Combine(dir, $"parafs-bench-mds-{Guid.NewGuid():N}");

        var sqlite = await MeasureMdsAsync(new MdsOptions { DataDirectory = data, Listen = RpcEndpoint.Parse("127.0.0.1:0"), HeartbeatInterval = FakeTargetsStayUp }, files, callers);
        Directory.Delete(data, recursive: true);

        Dictionary<string, double>? pg = null;
        if (!string.IsNullOrEmpty(postgres))
        {
            var database = $"parafs_bench_{Guid.NewGuid():N}";
            await AdminAsync(postgres, $"CREATE DATABASE {database}");
            try
            {
                var store = new NpgsqlConnectionStringBuilder(postgres) { Database = database }.ConnectionString;
                pg = await MeasureMdsAsync(new MdsOptions { Store = store, Listen = RpcEndpoint.Parse("127.0.0.1:0"), HeartbeatInterval = FakeTargetsStayUp }, files, callers);
            }
            finally
            {
                await AdminAsync(postgres, $"DROP DATABASE {database} WITH (FORCE)");
            }
        }

        var shm = Path.Combine("/dev/shm", $"parafs-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(shm);
        var local = new Dictionary<string, double>
        {
            ["create"] = await TimeAsync(files, callers, (_, i) =>
            {
                using var f = new FileStream(Path.Combine(shm, $"f{i}"), FileMode.CreateNew);
                return Task.CompletedTask;
            }),
            ["stat"] = await TimeAsync(files, callers, (_, i) =>
            {
                // File.Exists is one stat(2).
                return File.Exists(Path.Combine(shm, $"f{i}")) ? Task.CompletedTask : throw new FileNotFoundException($"f{i}");
            }),
            ["unlink"] = await TimeAsync(files, callers, (_, i) =>
            {
                File.Delete(Path.Combine(shm, $"f{i}"));
                return Task.CompletedTask;
            }),
        };
        Directory.Delete(shm, recursive: true);

        Console.WriteLine($"# MDS metadata operations: {files} files in one directory, {callers} concurrent callers, {Environment.ProcessorCount} cores");
        Console.WriteLine($"# SQLite store: WAL, synchronous=FULL, under {dir}");
        Console.WriteLine(pg is null
            ? "# PostgreSQL store: not measured (give --postgres CONNECTION or PARAFS_BENCH_PG; scripts/bench-mds starts a server)"
            : $"# PostgreSQL store: {Describe(postgres!)}, SERIALIZABLE, synchronous_commit on, same machine");
        Console.WriteLine("# local: tmpfs /dev/shm");
        Console.WriteLine();
        Console.WriteLine("| operation | MDS on SQLite | MDS on PostgreSQL | local tmpfs | SQLite / tmpfs | PostgreSQL / SQLite |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var op in new[] { "create", "stat", "unlink", "create, reply recorded", "unlink, reply recorded" })
        {
            var pgText = pg is null ? "-" : $"{pg[op]:N0} ops/s";
            var pgRatio = pg is null ? "-" : $"{pg[op] / sqlite[op]:0.00}";
            var localOp = op.Split(',')[0];
            Console.WriteLine($"| {op} | {sqlite[op]:N0} ops/s | {pgText} | {local[localOp]:N0} ops/s | {sqlite[op] / local[localOp]:0.000} | {pgRatio} |");
        }

        Console.WriteLine();
        Console.WriteLine("\"reply recorded\": the calls carry a replay tag, as the client sends them, and the MDS records each reply in the call's transaction (a second directory, after the untagged rounds)");

        if (pg is not null)
        {
            Console.WriteLine();
            Console.WriteLine($"PostgreSQL: {pg["retries"]:N0} transactions ran again after a serialization failure or deadlock");
        }

        return 0;
    }

    private static async Task<Dictionary<string, double>> MeasureMdsAsync(MdsOptions options, int files, int callers)
    {
        // Objects are deleted on OSTs after unlink: a minimal OST that acknowledges deletes.
        var ostDispatcher = new RpcDispatcher();
        ostDispatcher.Register(Methods.OstDelete, _ => ValueTask.FromResult(new RpcResult(new Empty())));
        await using var mds = await MdsServer.StartAsync(options);
        await using var ost = new RpcServer(new RpcServerOptions { Listen = RpcEndpoint.Parse("127.0.0.1:0"), Role = PeerRole.Ost, FileSystemId = mds.FileSystemId }, ostDispatcher);
        await ost.StartAsync();
        await using (var registrar = new RpcClient(mds.Endpoint, new RpcClientOptions { Role = PeerRole.Ost }))
        {
            for (var i = 0; i < 4; i++)
            {
                await registrar.CallAsync(Methods.RegisterTarget, new RegisterTargetRequest { Pool = "default", Address = ost.Endpoint.Text, Backend = "bench" }, RegisterTargetReply.Parser);
            }
        }

        var clients = Enumerable.Range(0, callers).Select(_ => new RpcClient(mds.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 })).ToArray();
        var caller = new Caller();
        var result = new Dictionary<string, double>();
        var dirIno = (await clients[0].CallAsync(Methods.MdsCreate, new CreateRequest { Caller = caller, Parent = 1, Name = "bench", Type = FileType.Directory, Mode = 0x1ED }, EntryReply.Parser)).Attr.Ino;
        var inodes = new ulong[files];
        result["create"] = await TimeAsync(files, callers, async (c, i) =>
            inodes[i] = (await clients[c].CallAsync(Methods.MdsCreate, new CreateRequest { Caller = caller, Parent = dirIno, Name = $"f{i}", Type = FileType.Regular, Mode = 0x1A4, Exclusive = true }, EntryReply.Parser)).Attr.Ino);
        result["stat"] = await TimeAsync(files, callers, async (c, i) =>
            await clients[c].CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Caller = caller, Ino = inodes[i] }, AttrReply.Parser));
        result["unlink"] = await TimeAsync(files, callers, async (c, i) =>
        {
            using var reply = await clients[c].CallAsync(Methods.MdsRemove, new RemoveRequest { Caller = caller, Parent = dirIno, Name = $"f{i}" });
        });

        // The same with replay tags (one slot per caller, as a client with that many calls in flight uses).
        var tagged = (await clients[0].CallAsync(Methods.MdsCreate, new CreateRequest { Caller = caller, Parent = 1, Name = "tagged", Type = FileType.Directory, Mode = 0x1ED }, EntryReply.Parser)).Attr.Ino;
        ReplayTag Tag(int c, int i, int round) => new() { Client = 0xBE_4C4E_0000_0001, Slot = (uint)c, Xid = (ulong)(round * files + i + 1) };
        result["create, reply recorded"] = await TimeAsync(files, callers, async (c, i) =>
            await clients[c].CallAsync(Methods.MdsCreate, new CreateRequest { Caller = caller, Parent = tagged, Name = $"f{i}", Type = FileType.Regular, Mode = 0x1A4, Exclusive = true }, EntryReply.Parser, replay: Tag(c, i, 0)));
        result["unlink, reply recorded"] = await TimeAsync(files, callers, async (c, i) =>
            await clients[c].CallAsync(Methods.MdsRemove, new RemoveRequest { Caller = caller, Parent = tagged, Name = $"f{i}" }, Empty.Parser, replay: Tag(c, i, 1)));
        foreach (var c in clients)
        {
            await c.DisposeAsync();
        }

        if (mds.Store is Mds.Store.PostgresMetadataStore pg)
        {
            result["retries"] = pg.Retries;
        }

        return result;
    }

    private static async Task AdminAsync(string server, string sql)
    {
        await using var connection = new NpgsqlConnection(server);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static string Describe(string server)
    {
        var b = new NpgsqlConnectionStringBuilder(server);
        return $"postgres://{b.Host}:{b.Port}";
    }

    private static async Task<double> TimeAsync(int count, int callers, Func<int, int, Task> operation)
    {
        var next = -1;
        var stopwatch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                await operation(c, i);
            }
        })));
        return count / stopwatch.Elapsed.TotalSeconds;
    }
}
