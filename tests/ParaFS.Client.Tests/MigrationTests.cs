using System.Security.Cryptography;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client.Tests;

/// <summary>
/// Online migration on a real cluster (MDS, OSTs in pools "a" and "b", TCP): a writer that keeps
/// overwriting the file while it moves, a mover that is interrupted and resumed across an MDS
/// restart, an abort. The file is compared with a model of every acknowledged write.
/// </summary>
public sealed class MigrationTests
{
    private const ulong Root = ParaFsClient.RootIno;
    private static readonly Caller Me = TestCluster.RootCaller;
    private static readonly LayoutPolicy ToB = new() { Pool = "b" };

    private static async Task<TestCluster> StartAsync()
    {
        // A short lease: after the MDS restart below, cut-overs wait one lease for clients to come back.
        var cluster = await TestCluster.StartAsync(targets: 4, poolOf: i => i < 2 ? "a" : "b", lease: TimeSpan.FromSeconds(2));
        await using var client = await cluster.ClientAsync();
        await client.SetStripeAsync(Me, Root, new LayoutPolicy { Pool = "a", StripeCount = 2, StripeSize = 64 * 1024 });
        return cluster;
    }

    private static int ObjectFiles(TestCluster cluster, int ost) =>
        Directory.Exists(Path.Combine(cluster.OstDataDirectory(ost), "objects"))
            ? Directory.EnumerateFiles(Path.Combine(cluster.OstDataDirectory(ost), "objects"), "*", SearchOption.AllDirectories).Count()
            : 0;

    private static async Task<byte[]> ReadAllAsync(ParaFsClient client, ulong ino, int length)
    {
        var handle = await client.OpenAsync(Me, ino, 0);
        var data = new byte[length];
        Assert.Equal(length, await client.ReadAsync(handle, 0, data));
        await client.ReleaseAsync(handle);
        return data;
    }

    [Fact]
    public async Task A_file_migrates_while_another_client_keeps_overwriting_and_extending_it()
    {
        await using var cluster = await StartAsync();
        await using var writer = await cluster.ClientAsync();
        await using var mover = await cluster.ClientAsync();
        var model = RandomNumberGenerator.GetBytes(6 << 20);
        var (attr, handle) = await writer.CreateAsync(Me, Root, "busy", FileType.Regular, 0x1A4, openFlags: 2);
        await writer.WriteAsync(handle!, 0, model);
        await writer.FsyncAsync(handle!);

        // The writer overwrites random ranges (and extends the file) until the migration is over;
        // the model takes each write once it is acknowledged.
        using var stop = new CancellationTokenSource();
        var modelLock = new object();
        var length = model.Length;
        var writes = 0;
        var writing = Task.Run(async () =>
        {
            var random = new Random(7);
            while (!stop.IsCancellationRequested)
            {
                var size = random.Next(1, 300_000);
                var offset = random.Next(0, length + 100_000);
                var bytes = RandomNumberGenerator.GetBytes(size);
                await writer.WriteAsync(handle!, offset, bytes);
                lock (modelLock)
                {
                    if (offset + size > model.Length)
                    {
                        Array.Resize(ref model, offset + size);
                    }

                    bytes.CopyTo(model, offset);
                    length = model.Length;
                }

                writes++;
            }
        });

        await Task.Delay(100);
        var result = await mover.MigrateAsync(Me, attr.Attr.Ino, ToB, new MigrationOptions { ChunkBytes = 256 * 1024 });
        await Task.Delay(200);
        await stop.CancelAsync();
        await writing;
        await writer.FsyncAsync(handle!);

        Assert.Equal(MigrationOutcome.Migrated, result.Outcome);
        Assert.Equal("b", result.Layout.Pool);
        Assert.True(writes > 10, $"only {writes} writes ran during the migration");
        var stripe = await mover.GetStripeAsync(attr.Attr.Ino);
        Assert.Equal("b", stripe.Layout.Pool);
        Assert.Null(stripe.Layout.Pending);

        await using var reader = await cluster.ClientAsync();
        var migrated = await ReadAllAsync(reader, attr.Attr.Ino, model.Length);
        Assert.True(model.AsSpan().SequenceEqual(migrated), "the migrated file differs from the acknowledged writes");

        // The writer acknowledged the new layout when it was called back: the old objects go
        // while it still holds the file open.
        await Eventually.TrueAsync(() => ObjectFiles(cluster, 0) + ObjectFiles(cluster, 1) == 0, "pool a's objects are deleted");
        await writer.ReleaseAsync(handle!);
    }

    /// <summary>
    /// A sparse file moves at the cost of what it holds: after a chunk of zeros the mover asks
    /// where data starts again and skips the hole's whole chunks, in the copy and in the
    /// verification; the holes stay holes on the new targets.
    /// </summary>
    [Fact]
    public async Task A_sparse_file_migrates_without_reading_its_holes_and_stays_sparse()
    {
        const int MiB = 1 << 20;
        await using var cluster = await StartAsync();
        await using var client = await cluster.ClientAsync();
        var head = RandomNumberGenerator.GetBytes(MiB);
        var tail = RandomNumberGenerator.GetBytes(MiB);
        var (attr, handle) = await client.CreateAsync(Me, Root, "sparse", FileType.Regular, 0x1A4, openFlags: 2);
        await client.WriteAsync(handle!, 0, head);
        await client.WriteAsync(handle!, 100 * MiB, tail);
        await client.ReleaseAsync(handle!);

        var result = await client.MigrateAsync(Me, attr.Attr.Ino, ToB, new MigrationOptions { ChunkBytes = 4 * MiB });

        // Read: the chunk at 0 (data), the one after it (zeros: then the hole is skipped), and the 1 MiB at 100 MiB.
        Assert.Equal(MigrationOutcome.Migrated, result.Outcome);
        Assert.Equal(9L * MiB, result.Bytes);
        Assert.Equal("b", result.Layout.Pool);
        var back = await client.OpenAsync(Me, attr.Attr.Ino, 0);
        var all = new byte[101 * MiB];
        Assert.Equal(all.Length, await client.ReadAsync(back, 0, all));
        Assert.True(all.AsSpan(0, MiB).SequenceEqual(head));
        Assert.True(all.AsSpan(MiB, 99 * MiB).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(all.AsSpan(100 * MiB).SequenceEqual(tail));
        Assert.Equal(MiB, await client.SeekAsync(back, 0, ParaFsClient.SeekHole));
        Assert.Equal(100 * MiB, await client.SeekAsync(back, MiB, ParaFsClient.SeekData));
        await client.ReleaseAsync(back);
    }

    [Fact]
    public async Task An_interrupted_migration_leaves_the_file_whole_and_resumes_after_an_mds_restart()
    {
        await using var cluster = await StartAsync();
        var data = RandomNumberGenerator.GetBytes(8 << 20);
        ulong ino;
        await using (var client = await cluster.ClientAsync())
        {
            var (attr, handle) = await client.CreateAsync(Me, Root, "slow", FileType.Regular, 0x1A4, openFlags: 2);
            ino = attr.Attr.Ino;
            await client.WriteAsync(handle!, 0, data);
            await client.ReleaseAsync(handle!);

            // Throttled to 4 MB/s and stopped after half a second: the copy is half done.
            using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                client.MigrateAsync(Me, ino, ToB, new MigrationOptions { ChunkBytes = 256 * 1024, Throttle = new MigrationThrottle(4_000_000) }, cancellationToken: cancel.Token));
            var pending = (await client.GetStripeAsync(ino)).Layout;
            Assert.Equal("a", pending.Pool);
            Assert.Equal("b", pending.Pending?.Pool);
            var whole = await ReadAllAsync(client, ino, data.Length);
            Assert.True(data.AsSpan().SequenceEqual(whole));
        }

        await cluster.RestartMdsAsync();
        await using (var client = await cluster.ClientAsync())
        {
            var result = await client.MigrateAsync(Me, ino, ToB);
            Assert.Equal(MigrationOutcome.Migrated, result.Outcome);
            Assert.Equal("b", (await client.GetStripeAsync(ino)).Layout.Pool);
            var moved = await ReadAllAsync(client, ino, data.Length);
            Assert.True(data.AsSpan().SequenceEqual(moved));
            Assert.Equal(MigrationOutcome.AlreadyThere, (await client.MigrateAsync(Me, ino, ToB)).Outcome);
        }

        await Eventually.TrueAsync(() => ObjectFiles(cluster, 0) + ObjectFiles(cluster, 1) == 0, "pool a's objects are deleted after the resumed migration");
    }

    [Fact]
    public async Task An_aborted_migration_rolls_back_and_deletes_the_partial_copy()
    {
        await using var cluster = await StartAsync();
        await using var client = await cluster.ClientAsync();
        var data = RandomNumberGenerator.GetBytes(4 << 20);
        var (attr, handle) = await client.CreateAsync(Me, Root, "undo", FileType.Regular, 0x1A4, openFlags: 2);
        await client.WriteAsync(handle!, 0, data);
        await client.FsyncAsync(handle!);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            client.MigrateAsync(Me, attr.Attr.Ino, ToB, new MigrationOptions { ChunkBytes = 128 * 1024, Throttle = new MigrationThrottle(2_000_000) }, cancellationToken: cancel.Token));
        Assert.True(ObjectFiles(cluster, 2) + ObjectFiles(cluster, 3) > 0, "the interrupted copy wrote nothing to pool b");

        var layout = await client.AbortMigrationAsync(Me, attr.Attr.Ino);
        Assert.Equal("a", layout.Pool);
        Assert.Null(layout.Pending);

        // The writer keeps its handle; its write after the abort goes to pool a only.
        var more = RandomNumberGenerator.GetBytes(100_000);
        await client.WriteAsync(handle!, data.Length, more);
        await client.FsyncAsync(handle!);
        await Eventually.TrueAsync(() => ObjectFiles(cluster, 2) + ObjectFiles(cluster, 3) == 0, "pool b's partial copy is deleted");
        var all = await ReadAllAsync(client, attr.Attr.Ino, data.Length + more.Length);
        Assert.True(data.AsSpan().SequenceEqual(all.AsSpan(0, data.Length)));
        Assert.True(more.AsSpan().SequenceEqual(all.AsSpan(data.Length)));
        await client.ReleaseAsync(handle!);
    }
}
