using System.Security.Cryptography;
using ParaFS.Protocol;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Tests;

/// <summary>The real <c>parafs ost</c> daemon in a child process.</summary>
public sealed class DaemonTests
{
    [Fact]
    public async Task Synced_data_and_the_target_id_survive_a_kill_9_and_restart()
    {
        await using var mds = await MdsDouble.StartAsync(fsId: "fs-durable", lastTargetId: 4);
        using var directory = new TestDirectory();
        var data = directory.Sub("data");
        var bytes = RandomNumberGenerator.GetBytes(3 * 1024 * 1024);

        int port;
        await using (var ost = ParafsProcess.Start("ost", "--data", data, "--listen", "127.0.0.1:0", "--mds", mds.Endpoint.Text, "--pool", "p"))
        {
            port = await ost.WaitForListeningPortAsync();
            await ost.WaitForOutputAsync("serving");
            await using var client = Client(port, "fs-durable");
            await client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = 1, Offset = 0 }, bytes);
            await client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = 2, Offset = 1 << 20 }, bytes.AsMemory(0, 1000));
            await client.CallAsync(Methods.OstSync, new SyncRequest { ObjectIds = { 1, 2 } }, Empty.Parser);
            await ost.KillAsync();
        }

        await using (var again = ParafsProcess.Start("ost", "--data", data, "--listen", $"127.0.0.1:{port}", "--mds", mds.Endpoint.Text, "--pool", "p"))
        {
            await again.WaitForOutputAsync("serving");
            await using var client = Client(port, "fs-durable");
            var destination = new byte[bytes.Length];
            using (var reply = await client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = 1, Length = (uint)bytes.Length }, replyDestination: destination))
            {
                Assert.Equal((ulong)bytes.Length, reply.ParseMessage(ReadReply.Parser).ObjectSize);
                Assert.True(destination.AsSpan().SequenceEqual(bytes), "object 1 must read back as written before the kill");
            }

            var attr = await client.CallAsync(Methods.OstGetAttr, new ObjectRequest { ObjectId = 2 }, ObjectAttr.Parser);
            Assert.Equal((ulong)((1 << 20) + 1000), attr.Size);
            var statfs = await client.CallAsync(Methods.OstStatFs, new Empty(), StatFsReply.Parser);
            Assert.Equal(5U, statfs.TargetId);
            Assert.Equal(2UL, statfs.Objects);
        }

        Assert.Equal([0U, 5U], mds.Registrations.Select(r => r.TargetId));
    }

    [Fact]
    public async Task A_directory_of_another_file_system_is_refused_with_a_clear_message_and_exit_1()
    {
        using var directory = new TestDirectory();
        var data = directory.Sub("data");
        await using (var mdsA = await MdsDouble.StartAsync(fsId: "fs-aaaa", fsName: "alpha"))
        {
            await using var ost = ParafsProcess.Start("ost", "--data", data, "--listen", "127.0.0.1:0", "--mds", mdsA.Endpoint.Text, "--pool", "p");
            await ost.WaitForOutputAsync("serving");
        }

        await using var mdsB = await MdsDouble.StartAsync(fsId: "fs-bbbb", fsName: "beta");
        await using var refused = ParafsProcess.Start("ost", "--data", data, "--listen", "127.0.0.1:0", "--mds", mdsB.Endpoint.Text, "--pool", "p");
        Assert.Equal(1, await refused.WaitForExitAsync());
        var message = await refused.WaitForOutputAsync("belongs to file system");
        Assert.Contains(data, message, StringComparison.Ordinal);
        Assert.Contains("fs-aaaa", message, StringComparison.Ordinal);
        Assert.Contains("fs-bbbb", message, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", refused.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_describes_every_option()
    {
        await using var help = ParafsProcess.Start("ost", "--help");
        Assert.Equal(0, await help.WaitForExitAsync());
        foreach (var option in new[] { "--data DIR", "--listen HOST:PORT", "--mds HOST:PORT", "--pool NAME", "--backend KIND", "block:PATH", "nvme-tcp://", "--advertise", "--config FILE" })
        {
            Assert.Contains(option, help.Output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_missing_option_or_unknown_backend_is_a_usage_error()
    {
        await using var missing = ParafsProcess.Start("ost", "--data", "/tmp/x", "--listen", "127.0.0.1:0", "--mds", "127.0.0.1:1");
        Assert.Equal(2, await missing.WaitForExitAsync());
        Assert.Contains("--pool is required", missing.Output, StringComparison.Ordinal);

        await using var backend = ParafsProcess.Start("ost", "--data", "/tmp/x", "--listen", "127.0.0.1:0", "--mds", "127.0.0.1:1", "--pool", "p", "--backend", "block");
        Assert.Equal(2, await backend.WaitForExitAsync());
        Assert.Contains("--backend block is not one of dir, dir:PATH, block:PATH", backend.Output, StringComparison.Ordinal);
    }

    /// <summary>
    /// The block backend under a real crash: writes stream into `parafs ost --backend block:FILE`,
    /// some synced, and the daemon is killed -9 in the middle of the stream. After a restart every
    /// synced object is intact, and `parafs ost fsck` finds the index sound (nothing held twice,
    /// nothing leaked).
    /// </summary>
    [Fact]
    public async Task The_block_backend_keeps_every_synced_object_through_a_kill_9_and_fsck_finds_it_clean()
    {
        await using var mds = await MdsDouble.StartAsync(fsId: "fs-block", lastTargetId: 0);
        using var directory = new TestDirectory();
        var device = directory.Sub("device.img");
        using (var file = File.Create(device))
        {
            file.SetLength(512L << 20);
        }

        var synced = new Dictionary<ulong, byte[]>();
        int port;
        await using (var ost = ParafsProcess.Start("ost", "--backend", $"block:{device}", "--listen", "127.0.0.1:0", "--mds", mds.Endpoint.Text, "--pool", "p"))
        {
            port = await ost.WaitForListeningPortAsync();
            await ost.WaitForOutputAsync("serving");
            await using var client = Client(port, "fs-block");
            for (var id = 1UL; id <= 30; id++)
            {
                synced[id] = RandomNumberGenerator.GetBytes((int)(id * 40_009 % 2_000_000) + 1);
                await client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = id, Offset = id * 512 }, synced[id]);
            }

            await client.CallAsync(Methods.OstSync, new SyncRequest(), Empty.Parser);

            // Unsynced writes, deletes and truncates in flight when the daemon dies.
            using var stop = new CancellationTokenSource();
            var stream = Task.Run(async () =>
            {
                var random = new Random(3);
                for (var id = 1000UL; !stop.IsCancellationRequested; id++)
                {
                    try
                    {
                        await client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = id, Offset = (ulong)random.Next(0, 1 << 20) }, RandomNumberGenerator.GetBytes(random.Next(1, 300_000)));
                        await client.CallAsync(Methods.OstTruncate, new TruncateRequest { ObjectId = id - 1, Size = (ulong)random.Next(0, 100_000) });
                        if (id % 7 == 0)
                        {
                            await client.CallAsync(Methods.OstDelete, new ObjectRequest { ObjectId = id - 3 });
                        }
                    }
                    catch (RpcException)
                    {
                        return;
                    }
                }
            });
            await Task.Delay(700);
            await ost.KillAsync();
            await stop.CancelAsync();
            await stream;
        }

        await using (var again = ParafsProcess.Start("ost", "--backend", $"block:{device}", "--listen", $"127.0.0.1:{port}", "--mds", mds.Endpoint.Text, "--pool", "p"))
        {
            await again.WaitForOutputAsync("serving");
            await using var client = Client(port, "fs-block");
            foreach (var (id, bytes) in synced)
            {
                var destination = new byte[bytes.Length];
                using var reply = await client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = id, Offset = id * 512, Length = (uint)bytes.Length }, replyDestination: destination);
                Assert.Equal(id * 512 + (ulong)bytes.Length, reply.ParseMessage(ReadReply.Parser).ObjectSize);
                Assert.True(destination.AsSpan().SequenceEqual(bytes), $"synced object {id} differs after kill -9");
            }

            // While it serves, a second OST and the offline check are refused, and it serves on.
            await using (var second = ParafsProcess.Start("ost", "--backend", $"block:{device}", "--listen", "127.0.0.1:0", "--mds", mds.Endpoint.Text, "--pool", "p"))
            {
                Assert.Equal(1, await second.WaitForExitAsync());
                Assert.Contains($"parafs ost: {device} is in use by another process", second.Output, StringComparison.Ordinal);
            }

            await using (var busy = ParafsProcess.Start("ost", "fsck", "--backend", $"block:{device}"))
            {
                Assert.Equal(1, await busy.WaitForExitAsync());
                Assert.Contains($"parafs ost fsck: {device} is in use by another process", busy.Output, StringComparison.Ordinal);
            }

            var (firstId, firstBytes) = synced.First();
            var readBack = new byte[firstBytes.Length];
            using (await client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = firstId, Offset = firstId * 512, Length = (uint)firstBytes.Length }, replyDestination: readBack))
            {
                Assert.True(readBack.AsSpan().SequenceEqual(firstBytes));
            }

            await again.KillAsync();
        }

        await using var fsck = ParafsProcess.Start("ost", "fsck", "--backend", $"block:{device}");
        Assert.True(await fsck.WaitForExitAsync() == 0, fsck.Output);
        Assert.Contains("clean: no chunk held twice", fsck.Output, StringComparison.Ordinal);
        Assert.Equal([0U, 1U], mds.Registrations.Select(r => r.TargetId));
    }

    /// <summary>
    /// --bulk-threads caps the client bulk connections an OST serves on a thread of its own: with
    /// the default, a bulk connection keeps its serving thread; with 0 it is served from the
    /// thread pool, and large calls work the same either way.
    /// </summary>
    [Fact]
    public async Task Bulk_threads_0_serves_bulk_connections_from_the_thread_pool()
    {
        await using var mds = await MdsDouble.StartAsync(fsId: "fs-bulk", lastTargetId: 0);
        using var directory = new TestDirectory();
        var bytes = RandomNumberGenerator.GetBytes(1 << 20);
        foreach (var (limit, threads) in new[] { ((string?)null, 1), ("0", 0) })
        {
            string[] extra = limit is null ? [] : ["--bulk-threads", limit];
            var shown = limit ?? "left out";
            await using var ost = ParafsProcess.Start(["ost", "--data", directory.Sub($"data{limit}"), "--listen", "127.0.0.1:0", "--mds", mds.Endpoint.Text, "--pool", "p", .. extra]);
            var port = await ost.WaitForListeningPortAsync();
            await ost.WaitForOutputAsync("serving");
            await using var client = new RpcClient(RpcEndpoint.Parse($"127.0.0.1:{port}"), new RpcClientOptions { FileSystemId = "fs-bulk", ConnectionsPerServer = 1, BulkConnectionsPerServer = 1 });
            await client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = 1 }, bytes);
            var destination = new byte[bytes.Length];
            using (await client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = 1, Length = (uint)bytes.Length }, replyDestination: destination))
            {
                Assert.True(destination.AsSpan().SequenceEqual(bytes), $"--bulk-threads {shown}: the object reads back different");
            }

            // A server connection's first thread ("rpc-serve") stays only as a bulk connection's own.
            await Eventually.TrueAsync(() => ThreadsNamed(ost.Id, "rpc-serve") == threads, $"{threads} serving thread(s) in the OST with --bulk-threads {shown}");
        }

        await using var wrong = ParafsProcess.Start("ost", "--data", directory.Sub("bad"), "--listen", "127.0.0.1:0", "--mds", mds.Endpoint.Text, "--pool", "p", "--bulk-threads", "-1");
        Assert.Equal(2, await wrong.WaitForExitAsync());
        Assert.Contains("--bulk-threads wants a number (0 or more), not '-1'", wrong.Output, StringComparison.Ordinal);
    }

    private static int ThreadsNamed(int pid, string name) =>
        Directory.EnumerateDirectories($"/proc/{pid}/task").Count(task => File.ReadAllText(Path.Combine(task, "comm")).Trim() == name);

    private static RpcClient Client(int port, string fsId) =>
        new(RpcEndpoint.Parse($"127.0.0.1:{port}"), new RpcClientOptions { FileSystemId = fsId, ConnectionsPerServer = 2 });
}
