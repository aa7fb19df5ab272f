using System.Diagnostics;
using ParaFS.Client;
using ParaFS.Mds;
using ParaFS.Ost;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Bench;

/// <summary>
/// Sequential write and read of one large file through the client core (stripe count 4, 1 MiB
/// calls, an in-process MDS and 4 OSTs with their data under --dir), beside the same bytes written
/// to and read from one local file in the same directory, in one run. Page caches are dropped
/// before each read so both read from the disk.
/// </summary>
internal static class ClientBench
{
    private const int MiB = 1024 * 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        var mib = args.SkipWhile(a => a != "--mib").Skip(1).Select(int.Parse).FirstOrDefault(2048);
        var inFlight = args.SkipWhile(a => a != "--in-flight").Skip(1).Select(int.Parse).FirstOrDefault(8);
        var readBytes = args.SkipWhile(a => a != "--read-kib").Skip(1).Select(int.Parse).FirstOrDefault(1024) * 1024;
        if (readBytes <= 0 || MiB % readBytes != 0)
        {
            Console.Error.WriteLine("--read-kib must divide 1024 (e.g. 256)");
            return 2;
        }

        var dir = Path.Combine(args.SkipWhile(a => a != "--dir").Skip(1).FirstOrDefault() ?? Path.GetTempPath(), $"parafs-bench-client-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var data = new byte[MiB];
        Random.Shared.NextBytes(data);
        try
        {
            await using var mds = await MdsServer.StartAsync(new MdsOptions { DataDirectory = Path.Combine(dir, "mds"), Listen = RpcEndpoint.Parse("127.0.0.1:0") });
            var osts = new List<OstServer>();
            for (var i = 0; i < 4; i++)
            {
                var ost = new OstServer(new OstOptions { DataDirectory = Path.Combine(dir, $"ost{i}"), Listen = RpcEndpoint.Parse("127.0.0.1:0"), Mds = mds.Endpoint, Pool = "default" });
                await ost.StartAsync();
                osts.Add(ost);
            }

            await using var client = await ParaFsClient.ConnectAsync(mds.Endpoint);
            var caller = new Caller();
            var results = new List<(string Case, double ParaFs, double Local)>();

            // Write: 1 MiB calls, `inFlight` at a time at increasing offsets, then fsync.
            var (attr, handle) = await client.CreateAsync(caller, 1, "big", FileType.Regular, 0x1A4, openFlags: 2);
            Console.Error.WriteLine($"writing {mib} MiB through the client core ({inFlight} calls in flight)...");
            var parafsWrite = await TimeAsync(mib, inFlight, async i => await client.WriteAsync(handle!, (long)i * MiB, data), () => client.FsyncAsync(handle!));
            await client.ReleaseAsync(handle!);

            var localPath = Path.Combine(dir, "local.bin");
            Console.Error.WriteLine($"writing {mib} MiB to {localPath}...");
            double localWrite;
            using (var local = File.OpenHandle(localPath, FileMode.Create, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous))
            {
                localWrite = await TimeAsync(mib, inFlight, i => RandomAccess.WriteAsync(local, data, (long)i * MiB).AsTask(), () =>
                {
                    RandomAccess.FlushToDisk(local);
                    return Task.CompletedTask;
                });
            }

            results.Add(("sequential write + fsync", parafsWrite, localWrite));

            DropCaches();
            var reader = await client.OpenAsync(caller, attr.Attr.Ino, 0);
            var buffers = new ThreadLocal<byte[]>(() => new byte[MiB]);
            Console.Error.WriteLine($"reading {mib} MiB through the client core...");
            // One room per call in flight (rooms are not checked, so two calls sharing one would
            // not matter, but the bytes in flight are what this measures).
            var rooms = Enumerable.Range(0, inFlight).Select(_ => new byte[readBytes]).ToArray();
            var parafsRead = await TimeAsync((int)((long)mib * MiB / readBytes), inFlight, async i => await client.ReadAsync(reader, (long)i * readBytes, rooms[i % inFlight]), () => Task.CompletedTask) * readBytes / MiB;
            await client.ReleaseAsync(reader);

            DropCaches();
            double localRead;
            using (var local = File.OpenHandle(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous))
            {
                localRead = await TimeAsync(mib, inFlight, i => RandomAccess.ReadAsync(local, buffers.Value, (long)i * MiB).AsTask(), () => Task.CompletedTask);
            }

            results.Add(("sequential read (page cache dropped)", parafsRead, localRead));

            Console.WriteLine($"# client core: {mib} MiB file, stripe count 4, stripe size 1 MiB, 1 MiB calls ({readBytes / 1024} KiB for the ParaFS read), {inFlight} in flight, {Environment.ProcessorCount} cores");
            Console.WriteLine($"# data under {dir} (MDS, 4 OSTs and the local file on the same disk)");
            Console.WriteLine();
            Console.WriteLine("| case | ParaFS client core | local file | ratio |");
            Console.WriteLine("|---|---|---|---|");
            foreach (var (name, parafs, local) in results)
            {
                Console.WriteLine($"| {name} | {parafs:N0} MB/s | {local:N0} MB/s | {parafs / local:0.00} |");
            }

            foreach (var ost in osts)
            {
                await ost.DisposeAsync();
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        return 0;
    }

    /// <summary>MB/s for `count` 1 MiB operations, `inFlight` at a time in order of offset, plus a final step.</summary>
    private static async Task<double> TimeAsync(int count, int inFlight, Func<int, Task> operation, Func<Task> finish)
    {
        var next = -1;
        var stopwatch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                await operation(i);
            }
        })));
        await finish();
        return count * (double)MiB / stopwatch.Elapsed.TotalSeconds / 1e6;
    }

    private static void DropCaches()
    {
        try
        {
            File.WriteAllText("/proc/sys/vm/drop_caches", "3");
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            Console.Error.WriteLine($"note: cannot drop the page cache ({e.Message}); reads may come from memory");
        }
    }
}
