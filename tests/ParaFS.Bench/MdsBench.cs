using System.Diagnostics;
using ParaFS.Mds;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Bench;

/// <summary>
/// Metadata operations per second: create, stat and unlink of N files from 8 concurrent callers
/// over RPC to a real MDS (SQLite, synchronous=FULL, on the disk under --dir), beside the same
/// operations on a local tmpfs directory (/dev/shm), in one run.
/// </summary>
internal static class MdsBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var files = args.SkipWhile(a => a != "--files").Skip(1).Select(int.Parse).FirstOrDefault(10_000);
        var callers = args.SkipWhile(a => a != "--callers").Skip(1).Select(int.Parse).FirstOrDefault(8);
        var dir = args.SkipWhile(a => a != "--dir").Skip(1).FirstOrDefault() ?? Path.GetTempPath();
        var data = Path.Combine(dir, $"parafs-bench-mds-{Guid.NewGuid():N}");

        // Objects are deleted on OSTs after unlink: a minimal OST that acknowledges deletes.
        var ostDispatcher = new RpcDispatcher();
        ostDispatcher.Register(Methods.OstDelete, _ => ValueTask.FromResult(new RpcResult(new Empty())));
        await using var mds = await MdsServer.StartAsync(new MdsOptions { DataDirectory = data, Listen = RpcEndpoint.Parse("127.0.0.1:0") });
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
        var parafs = new Dictionary<string, double>();
        var dirIno = (await clients[0].CallAsync(Methods.MdsCreate, new CreateRequest { Caller = caller, Parent = 1, Name = "bench", Type = FileType.Directory, Mode = 0x1ED }, EntryReply.Parser)).Attr.Ino;
        var inodes = new ulong[files];
        parafs["create"] = await TimeAsync(files, callers, async (c, i) =>
            inodes[i] = (await clients[c].CallAsync(Methods.MdsCreate, new CreateRequest { Caller = caller, Parent = dirIno, Name = $"f{i}", Type = FileType.Regular, Mode = 0x1A4, Exclusive = true }, EntryReply.Parser)).Attr.Ino);
        parafs["stat"] = await TimeAsync(files, callers, async (c, i) =>
            await clients[c].CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Caller = caller, Ino = inodes[i] }, AttrReply.Parser));
        parafs["unlink"] = await TimeAsync(files, callers, async (c, i) =>
        {
            using var reply = await clients[c].CallAsync(Methods.MdsRemove, new RemoveRequest { Caller = caller, Parent = dirIno, Name = $"f{i}" });
        });

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

        Console.WriteLine($"# MDS metadata operations: {files} files, {callers} concurrent callers, {Environment.ProcessorCount} cores");
        Console.WriteLine($"# MDS store: SQLite (WAL, synchronous=FULL) under {dir}; local: tmpfs /dev/shm");
        Console.WriteLine();
        Console.WriteLine("| operation | ParaFS MDS over RPC | local tmpfs | ratio |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var op in new[] { "create", "stat", "unlink" })
        {
            Console.WriteLine($"| {op} | {parafs[op]:N0} ops/s | {local[op]:N0} ops/s | {parafs[op] / local[op]:0.000} |");
        }

        foreach (var c in clients)
        {
            await c.DisposeAsync();
        }

        Directory.Delete(data, recursive: true);
        return 0;
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
