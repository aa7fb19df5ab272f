using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using ParaFS.Common;
using ParaFS.Common.Storage;
using ParaFS.Ost.Backends;
using ParaFS.Ost.Backends.Block;

namespace ParaFS.Ost.Tests;

/// <summary>The contract on the `block` backend over a file opened with O_DIRECT, and its crash consistency.</summary>
public sealed class BlockBackendTests : ObjectBackendContract
{
    private const long DeviceBytes = 1L << 30;

    protected override IObjectBackend Open(TestDirectory directory) => OpenBlock(directory.Sub("device.img"), DeviceBytes);

    internal static BlockBackend OpenBlock(string path, long size, string fsId = "fs-test", uint targetId = 1) =>
        BlockBackend.OpenAsync("block", FileBlockDevice.Open(path, size), fsId, "", targetId, "fast", NullLogger.Instance).GetAwaiter().GetResult();

    private static async Task<BlockCheckReport> CheckAsync(string path)
    {
        await using var device = FileBlockDevice.Open(path);
        return await BlockCheck.RunAsync(device);
    }

    [Fact]
    public async Task A_crash_image_keeps_every_synced_object_and_fsck_finds_it_sound()
    {
        using var directory = new TestDirectory();
        var path = directory.Sub("device.img");
        var synced = new Dictionary<ulong, byte[]>();
        using (var store = OpenBlock(path, 256L << 20))
        {
            for (var id = 1UL; id <= 40; id++)
            {
                synced[id] = RandomNumberGenerator.GetBytes((int)(id * 7919 % 400_000) + 1);
                await store.WriteAsync(id, (long)(id % 3) * 4096, synced[id], default);
            }

            await store.DeleteAsync(5, default);
            synced.Remove(5);
            await store.TruncateAsync(6, 1000, default);
            await store.SyncAsync([], default);

            // Unsynced work after the sync, then the image is taken as a crash would leave it:
            // the device as it is, the index only as far as it was made durable.
            for (var id = 100UL; id <= 120; id++)
            {
                await store.WriteAsync(id, 0, RandomNumberGenerator.GetBytes(200_000), default);
            }

            await store.DeleteAsync(7, default);
            File.Copy(path, directory.Sub("crash.img"));
        }

        var report = await CheckAsync(directory.Sub("crash.img"));
        Assert.True(report.Clean, string.Join('\n', report.Problems.Concat(report.Leaked)));
        using var recovered = OpenBlock(directory.Sub("crash.img"), 0);
        foreach (var (id, data) in synced)
        {
            if (id == 6)
            {
                continue;
            }

            var offset = (long)(id % 3) * 4096;
            var back = new byte[data.Length];
            var read = await recovered.ReadAsync(id, offset, back, default);
            Assert.Equal(data.Length, read.BytesRead);
            Assert.True(back.AsSpan().SequenceEqual(data), $"object {id} differs after the crash");
        }

        Assert.Equal(1000, (await recovered.GetAttributesAsync(6, default)).Size);
        Assert.False((await recovered.GetAttributesAsync(5, default)).Exists);
    }

    [Fact]
    public async Task A_full_journal_becomes_a_checkpoint_and_everything_replays()
    {
        using var directory = new TestDirectory();
        var path = directory.Sub("device.img");
        var data = RandomNumberGenerator.GetBytes(5000);
        using (var store = OpenBlock(path, 128L << 20))
        {
            await store.WriteAsync(1, 0, data, default);

            // Size records only (no device I/O): far more than the 1 MiB journal holds (~41,000).
            for (var i = 0; i < 60_000; i++)
            {
                await store.TruncateAsync(2, 4096 + (i % 2 * 4096), default);
                if (i % 5000 == 0)
                {
                    await store.SyncAsync([], default);
                }
            }

            await store.TruncateAsync(2, 12345, default);
            await store.SyncAsync([], default);
        }

        Assert.True((await CheckAsync(path)).Clean);
        using var reopened = OpenBlock(path, 0);
        Assert.Equal(12345, (await reopened.GetAttributesAsync(2, default)).Size);
        var back = new byte[5000];
        Assert.Equal(5000, (await reopened.ReadAsync(1, 0, back, default)).BytesRead);
        Assert.True(back.AsSpan().SequenceEqual(data));
    }

    [Fact]
    public async Task A_full_device_says_ENOSPC_naming_the_target_and_space_comes_back_after_a_delete()
    {
        using var directory = new TestDirectory();
        using var store = OpenBlock(directory.Sub("small.img"), BlockFormat.MinimumBytes() + (4L << 20));
        var chunk = new byte[BlockFormat.DefaultChunkSize];
        ulong id = 1;
        var e = await Assert.ThrowsAsync<ParaFsException>(async () =>
        {
            for (; id < 10_000; id++)
            {
                await store.WriteAsync(id, 0, chunk, default);
            }
        });
        Assert.Equal(Errno.ENOSPC, e.Errno);
        Assert.Contains("target 1 (pool fast) is full", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, store.GetUsage().FreeBytes);

        Assert.True(await store.DeleteAsync(1, default));
        await store.SyncAsync([], default);
        Assert.Equal(BlockFormat.DefaultChunkSize, await store.WriteAsync(id + 1, 0, chunk, default));
    }

    [Fact]
    public void A_device_too_small_or_formatted_for_another_file_system_is_refused_with_a_clear_error()
    {
        using var directory = new TestDirectory();
        var tiny = Assert.Throws<ParaFsException>(() => OpenBlock(directory.Sub("tiny.img"), 2L << 20));
        Assert.Equal(Errno.ENOSPC, tiny.Errno);
        Assert.Contains("too small", tiny.Message, StringComparison.Ordinal);

        var path = directory.Sub("device.img");
        OpenBlock(path, 64L << 20, fsId: "fs-one", targetId: 3).Dispose();
        var other = Assert.Throws<StartupException>(() => OpenBlock(path, 0, fsId: "fs-two", targetId: 1));
        Assert.Contains("already formatted as target 3 of file system fs-one", other.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fsck_reports_a_chunk_owned_twice()
    {
        using var directory = new TestDirectory();
        var path = directory.Sub("device.img");
        using (var store = OpenBlock(path, 64L << 20))
        {
            await store.WriteAsync(1, 0, new byte[10], default);
            await store.SyncAsync([], default);
        }

        // Forge a journal block that maps object 2 onto object 1's device chunk.
        await using (var device = FileBlockDevice.Open(path))
        {
            var format = (await BlockBackend.PeekAsync(device, default))!;
            var index = new BlockIndex(format.ChunkCount);
            var journal = new BlockJournal(device, format);
            await journal.ReplayAsync(index, default);
            var chunk = index.Objects[1].Chunks[0];
            await journal.AppendAsync([new JournalRecord(RecordType.Map, 2, 0, chunk), new JournalRecord(RecordType.Size, 2, 10)], default);
        }

        var report = await CheckAsync(path);
        Assert.False(report.Clean);
        Assert.Contains(report.Problems, p => p.Contains("held by object 1 and by object 2", StringComparison.Ordinal));
    }
}
