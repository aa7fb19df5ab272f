using ParaFS.Ost.Backends;
using ParaFS.Ost.Backends.Dir;

namespace ParaFS.Ost.Tests;

/// <summary>The contract on the `dir` backend, and what only it does.</summary>
public sealed class DirBackendTests : ObjectBackendContract
{
    protected override IObjectBackend Open(TestDirectory directory) => DirBackend.Open(directory.Path, "target 1 (pool fast)");

    [Fact]
    public async Task StatFs_reports_the_file_systems_capacity_and_free_space()
    {
        await Backend.WriteAsync(1, 0, new byte[10], default);
        var usage = Backend.GetUsage();
        var drive = new DriveInfo(Path.GetTempPath());
        Assert.Equal(drive.TotalSize, usage.CapacityBytes);
        Assert.InRange(usage.FreeBytes, 1, usage.CapacityBytes);
        Assert.Equal(1, usage.Objects);
    }

    [Fact]
    public async Task Large_aligned_writes_bypass_the_page_cache_and_small_ones_do_not()
    {
        using var payload = ParaFS.Protocol.Rpc.RpcBuffer.Rent(1024 * 1024);
        payload.Span.Fill(0x5a);
        var back = new byte[payload.Length];

        using var onDisk = new TestDirectory();
        using (var direct = DirBackend.Open(onDisk.Path, "target 3 (pool fast)"))
        {
            await direct.WriteAsync(1, 0, payload.Memory, default);
            await direct.WriteAsync(1, 100, new byte[10], default); // small: buffered
            Assert.Equal(1, direct.DirectWrites);
            Assert.Equal(back.Length, (await direct.ReadAsync(1, 0, back, default)).BytesRead);
            Assert.Equal(0, back[100]);
            Assert.Equal(0x5a, back[back.Length - 1]);
        }
    }

    [Fact]
    public async Task The_open_file_cache_stays_within_its_limit()
    {
        using var directory = new TestDirectory();
        using var small = DirBackend.Open(directory.Path, "target 2 (pool fast)", openObjectLimit: 8);
        for (var id = 1UL; id <= 100; id++)
        {
            await small.WriteAsync(id, 0, BitConverter.GetBytes(id), default);
            Assert.InRange(small.OpenObjects, 1, 8);
        }

        var buffer = new byte[8];
        for (var id = 1UL; id <= 100; id++)
        {
            Assert.Equal(8, (await small.ReadAsync(id, 0, buffer, default)).BytesRead);
            Assert.Equal(id, BitConverter.ToUInt64(buffer));
        }
    }

    [Fact]
    public async Task A_listing_walks_the_tree_once_for_all_its_pages_and_a_new_one_sees_the_changes()
    {
        using var directory = new TestDirectory();
        using var store = DirBackend.Open(directory.Path, "target 4 (pool fast)");
        var ids = Enumerable.Range(1, 300).Select(i => (ulong)i * 977 + 5).ToList();
        foreach (var id in ids)
        {
            await store.WriteAsync(id, 0, new byte[1], default);
        }

        Assert.Equal(ids, await ListAllAsync(store, limit: 7));
        Assert.Equal(1, store.ListingWalks);

        await store.WriteAsync(3, 0, new byte[1], default);
        Assert.True(await store.DeleteAsync(ids[100], default));
        Assert.Equal([3UL, .. ids.Where(id => id != ids[100])], await ListAllAsync(store, limit: 50));
        Assert.Equal(2, store.ListingWalks);

        // A page that does not start at 0 with no listing under way walks again, and is right.
        Assert.Equal(ids.Where(id => id > ids[200]).Take(5), (await store.ListAsync(ids[200], 5, default)).ObjectIds);
        Assert.Equal(3, store.ListingWalks);
    }

    private static async Task<List<ulong>> ListAllAsync(DirBackend store, int limit)
    {
        var all = new List<ulong>();
        for (var after = 0UL; ;)
        {
            var page = await store.ListAsync(after, limit, default);
            all.AddRange(page.ObjectIds);
            if (!page.More)
            {
                return all;
            }

            after = page.ObjectIds[^1];
        }
    }
}
