using System.Diagnostics;
using System.Globalization;
using Microsoft.Win32.SafeHandles;
using ParaFS.Common.Storage;
using ParaFS.Ost;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Bench;

/// <summary>
/// OST throughput over RPC on loopback (an in-process OST with the dir backend), beside plain
/// pwrite/pread of the same bytes to a file in the same directory, in one run: 1 MiB requests, 16
/// in flight. Writes go to fresh objects (no fsync on either side); the dir backend writes 1 MiB
/// requests with O_DIRECT, so its baseline is an O_DIRECT pwrite (a buffered pwrite is shown too).
/// Dir reads are cached (read once before they are measured). Best of three rounds each. The
/// RPC transport alone (the same calls answered from memory) is measured too, since on loopback
/// it, not the disk, bounds what an OST can reach.
/// </summary>
internal static class OstBench
{
    private const int MiB = 1024 * 1024;
    private const int InFlight = 16;
    private const int Rounds = 3;
    private const uint Sink = 9100;
    private const uint Source = 9101;

    public static async Task<int> RunAsync(string[] args)
    {
        var baseDirectory = Option(args, "--dir") ?? Path.GetTempPath();
        var totalMiB = int.Parse(Option(args, "--mib") ?? "1024", CultureInfo.InvariantCulture);
        var block = (Option(args, "--backend") ?? "dir") switch
        {
            "dir" => false,
            "block" => true,
            var other => throw new ArgumentException($"--backend {other}: dir or block"),
        };
        var work = Path.Combine(baseDirectory, $"parafs-bench-ost-{Environment.ProcessId}");
        Directory.CreateDirectory(work);
        try
        {
            await using var mds = await StartMdsAsync();
            var device = Path.Combine(work, "device.img");
            if (block)
            {
                using var file = File.Create(device);
                file.SetLength(((long)totalMiB * MiB * 2) + (512L * MiB));
            }

            await using var ost = new OstServer(new OstOptions
            {
                DataDirectory = block ? device : Path.Combine(work, "ost"),
                Backend = block ? $"block:{device}" : "dir",
                Listen = RpcEndpoint.Parse("127.0.0.1:0"),
                Mds = mds.Endpoint,
                Pool = "bench",
                ServerName = "bench-ost",
            });
            await ost.StartAsync();
            await using var client = new RpcClient(ost.Endpoint, new RpcClientOptions { FileSystemId = "fs-bench" });
            var data = new byte[MiB];
            Random.Shared.NextBytes(data);
            var buffers = new ThreadLocal<byte[]>(() => new byte[MiB]);
            var plainPath = Path.Combine(work, "plain");
            var directPath = block ? plainPath : Path.Combine(work, "plain-direct");
            using (var file = File.Create(directPath))
            {
                file.SetLength((long)totalMiB * MiB);
            }

            // The write baseline is the same bytes written with O_DIRECT (as both backends write
            // 1 MiB requests); the block backend's read baseline is O_DIRECT too, the dir one's cached.
            await using var direct = FileBlockDevice.Open(directPath);
            var (alignedArray, alignedStart) = AlignedBuffers.Rent(MiB)!.Value;
            var alignedData = alignedArray.AsMemory(alignedStart, MiB);
            data.CopyTo(alignedData);
            Func<int, double> plainWrite1 = n => DirectWrite(direct, alignedData, n);
            Func<int, double> plainRead1 = block ? n => DirectRead(direct, buffers, n) : n => PlainRead(plainPath, buffers, n);

            // Warm-up: JIT, connections, thread pool.
            await OstWriteAsync(client, 1, data, 64);
            await OstReadAsync(client, 1, buffers, 64);
            plainWrite1(64);
            if (!block)
            {
                PlainWrite(plainPath, data, 64);
            }

            plainRead1(64);

            await using var transport = await StartTransportAsync(data);
            await using var transportClient = new RpcClient(transport.Endpoint, new RpcClientOptions());

            double ostWrite = 0, plainWrite = 0, bufferedWrite = 0, ostRead = 0, plainRead = 0, rpcWrite = 0, rpcRead = 0;
            for (var round = 0; round < Rounds; round++)
            {
                var objectId = 100UL + (ulong)round;
                await client.CallAsync(Methods.OstDelete, new ObjectRequest { ObjectId = objectId - 1 }, Empty.Parser);
                ostWrite = Math.Max(ostWrite, await OstWriteAsync(client, objectId, data, totalMiB));
                if (!block)
                {
                    File.Delete(plainPath);
                }

                plainWrite = Math.Max(plainWrite, plainWrite1(totalMiB));
                if (!block)
                {
                    bufferedWrite = Math.Max(bufferedWrite, PlainWrite(plainPath, data, totalMiB));
                    await OstReadAsync(client, objectId, buffers, totalMiB); // into the OST's page cache
                }

                ostRead = Math.Max(ostRead, await OstReadAsync(client, objectId, buffers, totalMiB));
                plainRead = Math.Max(plainRead, plainRead1(totalMiB));
                rpcWrite = Math.Max(rpcWrite, await MeasureAsync(totalMiB, async _ => (await transportClient.CallAsync(Sink, null, data)).Dispose()));
                rpcRead = Math.Max(rpcRead, await MeasureAsync(totalMiB, async _ => (await transportClient.CallAsync(Source, null, replyDestination: buffers.Value)).Dispose()));
            }

            Console.WriteLine($"# OST over RPC vs plain pwrite/pread: {totalMiB} MiB, 1 MiB requests, {InFlight} in flight, "
                + $"{Environment.ProcessorCount} cores, best of {Rounds}, in {work}");
            Console.WriteLine();
            Console.WriteLine("| case | MB/s |");
            Console.WriteLine("|---|---|");
            var kind = block ? "block backend on a file, O_DIRECT" : "dir backend";
            Console.WriteLine($"| OST write (RPC on loopback, {kind}) | {ostWrite:N0} |");
            Console.WriteLine($"| plain O_DIRECT pwrite of a file | {plainWrite:N0} |");
            if (!block)
            {
                Console.WriteLine($"| plain buffered pwrite (page cache, not on the device yet) | {bufferedWrite:N0} |");
            }

            Console.WriteLine($"| OST read{(block ? "" : ", cached")} (RPC on loopback, {kind}) | {ostRead:N0} |");
            Console.WriteLine($"| plain {(block ? "O_DIRECT pread of a file" : "pread, cached (RandomAccess.Read)")} | {plainRead:N0} |");
            Console.WriteLine($"| RPC transport alone: 1 MiB request to a sink | {rpcWrite:N0} |");
            Console.WriteLine($"| RPC transport alone: 1 MiB reply from memory | {rpcRead:N0} |");
            Console.WriteLine();
            Console.WriteLine($"OST / plain: write {ostWrite / plainWrite:0.00} (goal >= 0.70), cached read {ostRead / plainRead:0.00} (goal >= 0.80)");
            Console.WriteLine($"OST / RPC transport alone: write {ostWrite / rpcWrite:0.00}, read {ostRead / rpcRead:0.00}");
            return 0;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static async Task<double> OstWriteAsync(RpcClient client, ulong objectId, byte[] data, int count) =>
        await MeasureAsync(count, async i =>
            (await client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = objectId, Offset = (ulong)i * MiB }, data)).Dispose());

    private static async Task<double> OstReadAsync(RpcClient client, ulong objectId, ThreadLocal<byte[]> buffers, int count) =>
        await MeasureAsync(count, async i =>
        {
            using var reply = await client.CallAsync(
                Methods.OstRead, new ReadRequest { ObjectId = objectId, Offset = (ulong)i * MiB, Length = MiB }, replyDestination: buffers.Value);
            if (reply.Payload.Length != MiB)
            {
                throw new InvalidOperationException($"read {i} returned {reply.Payload.Length} bytes");
            }
        });

    private static double DirectWrite(FileBlockDevice device, ReadOnlyMemory<byte> data, int count) =>
        Measure(count, i => device.WriteAsync((long)i * MiB, data, default).AsTask().GetAwaiter().GetResult());

    private static double DirectRead(FileBlockDevice device, ThreadLocal<byte[]> buffers, int count) =>
        Measure(count, i => device.ReadAsync((long)i * MiB, buffers.Value, default).AsTask().GetAwaiter().GetResult());

    private static double PlainWrite(string path, byte[] data, int count)
    {
        using var file = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite);
        return Measure(count, i => RandomAccess.Write(file, data, (long)i * MiB));
    }

    private static double PlainRead(string path, ThreadLocal<byte[]> buffers, int count)
    {
        using SafeFileHandle file = File.OpenHandle(path);
        return Measure(count, i =>
        {
            if (RandomAccess.Read(file, buffers.Value, (long)i * MiB) != MiB)
            {
                throw new InvalidOperationException($"plain read {i} was short");
            }
        });
    }

    /// <summary>MB/s of <paramref name="count"/> 1 MiB operations, <see cref="InFlight"/> at a time.</summary>
    private static async Task<double> MeasureAsync(int count, Func<int, Task> operation)
    {
        var next = -1;
        var stopwatch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, InFlight).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                await operation(i);
            }
        }));
        return count * (double)MiB / stopwatch.Elapsed.TotalSeconds / 1e6;
    }

    private static double Measure(int count, Action<int> operation)
    {
        var stopwatch = Stopwatch.StartNew();
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = InFlight }, operation);
        return count * (double)MiB / stopwatch.Elapsed.TotalSeconds / 1e6;
    }

    /// <summary>An RPC server that swallows 1 MiB requests and answers 1 MiB from memory: the transport with no disk.</summary>
    private static async Task<RpcServer> StartTransportAsync(byte[] data)
    {
        var dispatcher = new RpcDispatcher();
        dispatcher.Register(Sink, _ => ValueTask.FromResult(RpcResult.Empty));
        dispatcher.Register(Source, _ => ValueTask.FromResult(new RpcResult(null, data)));
        var server = new RpcServer(new RpcServerOptions { Listen = RpcEndpoint.Parse("127.0.0.1:0"), ServerName = "bench-transport" }, dispatcher);
        await server.StartAsync();
        return server;
    }

    /// <summary>A registry that takes any target: the OST needs one to start.</summary>
    private static async Task<RpcServer> StartMdsAsync()
    {
        var dispatcher = new RpcDispatcher();
        dispatcher.Register(Methods.RegisterTarget, RegisterTargetRequest.Parser, (request, _) => ValueTask.FromResult(new RpcResult(
            new RegisterTargetReply { TargetId = 1, FsId = "fs-bench", FsName = "bench", HeartbeatIntervalMs = 1000, State = TargetState.Up })));
        dispatcher.Register(Methods.TargetHeartbeat, TargetHeartbeatRequest.Parser, (_, _) =>
            ValueTask.FromResult(new RpcResult(new TargetHeartbeatReply { State = TargetState.Up })));
        var server = new RpcServer(
            new RpcServerOptions { Listen = RpcEndpoint.Parse("127.0.0.1:0"), Role = PeerRole.Mds, FileSystemId = "fs-bench", FileSystemName = "bench" },
            dispatcher);
        await server.StartAsync();
        return server;
    }

    private static string? Option(string[] args, string name)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }
}
