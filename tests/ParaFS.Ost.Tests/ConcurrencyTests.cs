using ParaFS.Ost.Backends.Dir;

namespace ParaFS.Ost.Tests;

public sealed class ConcurrencyTests
{
    [Fact]
    public async Task Many_concurrent_writers_to_disjoint_ranges_of_one_object_leave_exact_content()
    {
        await using var mds = await MdsDouble.StartAsync();
        await using var ost = await TestOst.StartAsync(mds);
        const int chunk = 64 * 1024, chunks = 256;
        var expected = new byte[chunk * chunks];
        new Random(2026).NextBytes(expected);

        // 256 writes of 64 KiB, in a shuffled order, 64 at a time.
        var order = Enumerable.Range(0, chunks).OrderBy(_ => Random.Shared.Next()).ToArray();
        await Parallel.ForEachAsync(order, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, _) =>
            await ost.WriteAsync(77, (long)i * chunk, expected.AsMemory(i * chunk, chunk)));

        var (back, reply) = await ost.ReadAsync(77, 0, expected.Length);
        Assert.Equal((ulong)expected.Length, reply.ObjectSize);
        Assert.True(back.AsSpan().SequenceEqual(expected), "concurrent writers to disjoint ranges must not disturb each other");
    }

    [Fact]
    public async Task Evicting_open_files_under_concurrent_use_loses_nothing()
    {
        // Four cached handles for 64 objects: nearly every open evicts one another operation is using.
        using var directory = new TestDirectory();
        using var backend = DirBackend.Open(directory.Path, "target 1 (pool fast)", openObjectLimit: 4);
        const int objects = 64, blocks = 32, block = 4096;
        await Parallel.ForEachAsync(Enumerable.Range(0, objects * blocks), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (n, _) =>
        {
            var id = (ulong)(n % objects) + 1;
            var index = n / objects;
            var data = Block(id, index, block);
            await backend.WriteAsync(id, (long)index * block, data, default);

            // Read a block written earlier to any object, concurrently with the writes.
            var buffer = new byte[block];
            await backend.ReadAsync((ulong)Random.Shared.Next(1, objects + 1), 0, buffer, default);
        });

        var back = new byte[block];
        for (var id = 1UL; id <= objects; id++)
        {
            for (var index = 0; index < blocks; index++)
            {
                var read = await backend.ReadAsync(id, (long)index * block, back, default);
                Assert.Equal(block, read.BytesRead);
                Assert.True(back.AsSpan().SequenceEqual(Block(id, index, block)), $"object {id} block {index} differs");
            }
        }

        Assert.InRange(backend.OpenObjects, 0, 4);
    }

    private static byte[] Block(ulong id, int index, int length)
    {
        var data = new byte[length];
        new Random((int)id * 1000 + index).NextBytes(data);
        return data;
    }
}
