using System.Security.Cryptography;
using FsCheck.Fluent;
using ParaFS.Common;
using ParaFS.Ost.Backends;

namespace ParaFS.Ost.Tests;

/// <summary>
/// What every object backend must do (ost.proto's semantics), run against each one: `dir`
/// (<see cref="DirBackendTests"/>), `block` on a file (<see cref="BlockBackendTests"/>) and
/// `nvme-tcp` against a real NVMe/TCP target.
/// </summary>
public abstract class ObjectBackendContract : IDisposable
{
    protected const int MiB = 1024 * 1024;
    private readonly TestDirectory _directory = new();
    private IObjectBackend _backend;

    protected ObjectBackendContract()
    {
        _backend = Open(_directory);
    }

    protected IObjectBackend Backend => _backend;

    /// <summary>Opens the backend under test on (or for) <paramref name="directory"/>; the same store each time.</summary>
    protected abstract IObjectBackend Open(TestDirectory directory);

    public void Dispose()
    {
        _backend.Dispose();
        _directory.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Closes the backend (as a clean stop does) and opens the same store again.</summary>
    protected void Reopen()
    {
        _backend.Dispose();
        _backend = Open(_directory);
    }

    [SuiteFact]
    public async Task A_write_reads_back_and_reports_the_size()
    {
        var data = RandomNumberGenerator.GetBytes(300_000);
        Assert.Equal(300_000 + 4096, await _backend.WriteAsync(7, 4096, data, default));

        var buffer = new byte[400_000];
        var read = await _backend.ReadAsync(7, 4096, buffer, default);
        Assert.Equal(new ObjectRead(300_000, 304_096, true), read);
        Assert.True(buffer.AsSpan(0, read.BytesRead).SequenceEqual(data));

        var attributes = await _backend.GetAttributesAsync(7, default);
        Assert.True(attributes.Exists);
        Assert.Equal(304_096, attributes.Size);
    }

    [SuiteFact]
    public async Task Large_page_aligned_writes_and_small_unaligned_ones_to_one_object_read_back_as_written()
    {
        // Payloads as an OST receives them (page aligned from 64 KiB on): the dir store writes
        // these with O_DIRECT and the small ones through the page cache, on the same file.
        var expected = new byte[4 * MiB];
        async Task WriteAsync(long offset, int length)
        {
            using var payload = ParaFS.Protocol.Rpc.RpcBuffer.Rent(length);
            RandomNumberGenerator.Fill(payload.Span);
            payload.Span.CopyTo(expected.AsSpan((int)offset));
            await _backend.WriteAsync(40, offset, payload.Memory, default);
        }

        async Task AssertReadsBackAsync()
        {
            var back = new byte[expected.Length];
            Assert.Equal(expected.Length, (await _backend.ReadAsync(40, 0, back, default)).BytesRead);
            Assert.True(expected.AsSpan().SequenceEqual(back), "the object differs from what was written");
        }

        for (var i = 0; i < 4; i++)
        {
            await WriteAsync(i * MiB, MiB);
        }

        await AssertReadsBackAsync(); // now in the page cache, where the store has one
        await WriteAsync(MiB - 100, 5000); // small, unaligned, across a page and a 1 MiB boundary
        await WriteAsync(2 * MiB, MiB); // large and aligned again, over cached pages
        await WriteAsync((3 * MiB) + 4096, 256 * 1024);
        await AssertReadsBackAsync();
        await _backend.SyncAsync([40], default);
        Reopen();
        await AssertReadsBackAsync();
    }

    [SuiteFact]
    public async Task An_unknown_object_reads_as_empty_and_is_not_created_by_punch_delete_or_truncate_to_zero()
    {
        var buffer = new byte[100];
        Assert.Equal(new ObjectRead(0, 0, false), await _backend.ReadAsync(42, 0, buffer, default));
        Assert.Equal(new ObjectAttributes(false, 0, 0), await _backend.GetAttributesAsync(42, default));

        await _backend.PunchAsync(42, 0, 4096, default);
        Assert.False(await _backend.DeleteAsync(42, default));
        await _backend.TruncateAsync(42, 0, default);
        await _backend.SyncAsync([42], default);

        Assert.False((await _backend.GetAttributesAsync(42, default)).Exists);
        Assert.Empty((await _backend.ListAsync(0, 10, default)).ObjectIds);
        Assert.Equal(0, _backend.GetUsage().Objects);
    }

    [SuiteFact]
    public async Task A_read_never_goes_past_the_objects_size()
    {
        await _backend.WriteAsync(1, 0, new byte[1000], default);
        var buffer = new byte[4096];
        Assert.Equal(new ObjectRead(200, 1000, true), await _backend.ReadAsync(1, 800, buffer, default));
        Assert.Equal(new ObjectRead(0, 1000, true), await _backend.ReadAsync(1, 1000, buffer, default));
        Assert.Equal(new ObjectRead(0, 1000, true), await _backend.ReadAsync(1, 5000, buffer, default));
    }

    [SuiteFact]
    public async Task A_sparse_object_reads_zeros_in_its_hole_and_allocates_less_than_its_size()
    {
        var tail = RandomNumberGenerator.GetBytes(4096);
        Assert.Equal(64 * MiB + 4096, await _backend.WriteAsync(3, 64 * MiB, tail, default));

        var hole = new byte[MiB];
        hole.AsSpan().Fill(0xEE);
        var read = await _backend.ReadAsync(3, 10 * MiB, hole, default);
        Assert.Equal(MiB, read.BytesRead);
        Assert.True(hole.AsSpan().IndexOfAnyExcept((byte)0) < 0, "a hole must read as zeros");

        var attributes = await _backend.GetAttributesAsync(3, default);
        Assert.Equal(64 * MiB + 4096, attributes.Size);
        Assert.InRange(attributes.AllocatedBytes, 4096, MiB);
    }

    [SuiteFact]
    public async Task Punch_across_a_stripe_boundary_reads_back_zeros_and_frees_the_blocks()
    {
        var data = RandomNumberGenerator.GetBytes(3 * MiB);
        await _backend.WriteAsync(5, 0, data, default);
        await _backend.SyncAsync([5], default);
        var before = (await _backend.GetAttributesAsync(5, default)).AllocatedBytes;
        Assert.True(before >= 3 * MiB, $"3 MiB written should allocate at least 3 MiB, not {before}");

        // From 4 KiB before the first 1 MiB stripe boundary to 4 KiB past the second.
        const int from = MiB - 4096, to = (2 * MiB) + 4096;
        await _backend.PunchAsync(5, from, to - from, default);

        var back = new byte[3 * MiB];
        Assert.Equal(3 * MiB, (await _backend.ReadAsync(5, 0, back, default)).BytesRead);
        Assert.True(back.AsSpan(0, from).SequenceEqual(data.AsSpan(0, from)));
        Assert.True(back.AsSpan(from, to - from).IndexOfAnyExcept((byte)0) < 0, "the punched range must read as zeros");
        Assert.True(back.AsSpan(to).SequenceEqual(data.AsSpan(to)));

        var after = await _backend.GetAttributesAsync(5, default);
        Assert.Equal(3 * MiB, after.Size);
        Assert.True(after.AllocatedBytes <= before - MiB, $"punching {to - from} bytes should free at least 1 MiB: {before} -> {after.AllocatedBytes}");
    }

    [SuiteFact]
    public async Task Seek_finds_the_next_data_and_hole_and_the_end_counts_as_a_hole()
    {
        // Data in [0, 1 MiB) and [8 MiB, 8 MiB + 4 KiB); between them a hole. Both edges sit on
        // a block of every backend here (4 KiB file system blocks, 128 KiB chunks).
        const long End = (8 * MiB) + 4096;
        await _backend.WriteAsync(9, 0, RandomNumberGenerator.GetBytes(MiB), default);
        await _backend.WriteAsync(9, 8 * MiB, RandomNumberGenerator.GetBytes(4096), default);

        Assert.Equal(new ObjectSeek(0, End), await _backend.SeekAsync(9, 0, hole: false, default));
        Assert.Equal(new ObjectSeek(4096, End), await _backend.SeekAsync(9, 4096, hole: false, default));
        Assert.Equal(new ObjectSeek(MiB, End), await _backend.SeekAsync(9, 0, hole: true, default));
        Assert.Equal(new ObjectSeek(8 * MiB, End), await _backend.SeekAsync(9, MiB, hole: false, default));
        Assert.Equal(new ObjectSeek(3 * MiB, End), await _backend.SeekAsync(9, 3 * MiB, hole: true, default));
        Assert.Equal(new ObjectSeek(End, End), await _backend.SeekAsync(9, 8 * MiB, hole: true, default));

        // At and past the end: all hole, no data.
        Assert.Equal(new ObjectSeek(End, End), await _backend.SeekAsync(9, End, hole: true, default));
        Assert.Equal(new ObjectSeek(null, End), await _backend.SeekAsync(9, End, hole: false, default));
        Assert.Equal(new ObjectSeek(null, End), await _backend.SeekAsync(9, End + MiB, hole: false, default));

        // A missing object is one hole; a punched range becomes one.
        Assert.Equal(new ObjectSeek(5, 0), await _backend.SeekAsync(77, 5, hole: true, default));
        Assert.Equal(new ObjectSeek(null, 0), await _backend.SeekAsync(77, 5, hole: false, default));
        await _backend.PunchAsync(9, 0, MiB, default);
        Assert.Equal(new ObjectSeek(8 * MiB, End), await _backend.SeekAsync(9, 0, hole: false, default));
        Assert.Equal(new ObjectSeek(0, End), await _backend.SeekAsync(9, 0, hole: true, default));
    }

    [SuiteFact]
    public async Task Truncate_shrinks_and_extends_with_zeros()
    {
        var data = RandomNumberGenerator.GetBytes(10_000);
        await _backend.WriteAsync(9, 0, data, default);
        await _backend.TruncateAsync(9, 4000, default);
        await _backend.TruncateAsync(9, 8000, default);

        var back = new byte[10_000];
        Assert.Equal(new ObjectRead(8000, 8000, true), await _backend.ReadAsync(9, 0, back, default));
        Assert.True(back.AsSpan(0, 4000).SequenceEqual(data.AsSpan(0, 4000)));
        Assert.True(back.AsSpan(4000, 4000).IndexOfAnyExcept((byte)0) < 0, "bytes past a shrink must not come back");
    }

    [SuiteFact]
    public async Task Truncate_of_an_unknown_object_to_a_size_creates_it_sparse()
    {
        await _backend.TruncateAsync(11, 5 * MiB, default);
        var attributes = await _backend.GetAttributesAsync(11, default);
        Assert.True(attributes.Exists);
        Assert.Equal(5 * MiB, attributes.Size);
        Assert.Equal(1, _backend.GetUsage().Objects);
    }

    [SuiteFact]
    public async Task Delete_removes_the_object_and_a_later_write_starts_it_afresh()
    {
        await _backend.WriteAsync(12, 0, RandomNumberGenerator.GetBytes(5000), default);
        Assert.Equal(1, _backend.GetUsage().Objects);
        Assert.True(await _backend.DeleteAsync(12, default));
        Assert.False((await _backend.GetAttributesAsync(12, default)).Exists);
        Assert.Equal(0, _backend.GetUsage().Objects);

        Assert.Equal(110, await _backend.WriteAsync(12, 100, new byte[10], default));
        var back = new byte[200];
        Assert.Equal(new ObjectRead(110, 110, true), await _backend.ReadAsync(12, 0, back, default));
        Assert.True(back.AsSpan(0, 110).IndexOfAnyExcept((byte)0) < 0, "the deleted object's bytes must not come back");
    }

    [SuiteFact]
    public async Task List_pages_through_every_object_in_ascending_order()
    {
        var random = new Random(17);
        var ids = new SortedSet<ulong>();
        while (ids.Count < 300)
        {
            ids.Add((ulong)random.NextInt64(1, long.MaxValue) >> random.Next(0, 50));
        }

        foreach (var id in ids)
        {
            await _backend.WriteAsync(id, 0, new byte[1], default);
        }

        var seen = new List<ulong>();
        var after = 0UL;
        while (true)
        {
            var page = await _backend.ListAsync(after, 64, default);
            Assert.True(page.ObjectIds.Count <= 64);
            seen.AddRange(page.ObjectIds);
            if (!page.More)
            {
                break;
            }

            after = page.ObjectIds[^1];
        }

        Assert.Equal(ids.ToList(), seen);
        Assert.Equal(300, _backend.GetUsage().Objects);
    }

    [SuiteFact]
    public async Task Objects_and_their_bytes_are_there_again_when_the_store_is_reopened()
    {
        for (var id = 1UL; id <= 20; id++)
        {
            await _backend.WriteAsync(id, (long)id * 1000, BitConverter.GetBytes(id), default);
        }

        await _backend.SyncAsync([], default);
        Reopen();
        Assert.Equal(20, _backend.GetUsage().Objects);
        var buffer = new byte[8];
        for (var id = 1UL; id <= 20; id++)
        {
            Assert.Equal(8, (await _backend.ReadAsync(id, (long)id * 1000, buffer, default)).BytesRead);
            Assert.Equal(id, BitConverter.ToUInt64(buffer));
        }
    }

    [SuiteFact]
    public async Task Negative_or_overflowing_ranges_are_refused_with_EINVAL_naming_the_object()
    {
        var e = await Assert.ThrowsAsync<ParaFsException>(async () => await _backend.WriteAsync(77, -1, new byte[1], default));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("object 77", e.Message, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<ParaFsException>(async () => await _backend.PunchAsync(77, long.MaxValue - 10, 100, default));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains($"offset {long.MaxValue - 10} + length 100", e.Message, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<ParaFsException>(async () => await _backend.TruncateAsync(77, ObjectBounds.MaxObjectSize + 1, default));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.False((await _backend.GetAttributesAsync(77, default)).Exists);
    }

    [SuiteFact]
    public void Writes_punches_and_truncates_read_back_as_a_byte_array_model_says()
    {
        // op: 0 write, 1 punch, 2 truncate; offsets within 256 KiB so ranges overlap often.
        var op = from kind in Gen.Choose(0, 2)
                 from offset in Gen.Choose(0, 256 * 1024)
                 from length in Gen.Choose(0, 96 * 1024)
                 from seed in Gen.Choose(0, int.MaxValue)
                 select (Kind: kind, Offset: offset, Length: length, Seed: seed);
        var objectId = 1000UL;
        PropertyCheck.Run(Prop.ForAll(Gen.ListOf(op).Select(l => l.Take(20).ToArray()).ToArbitrary(), ops =>
        {
            var id = Interlocked.Increment(ref objectId);
            var model = new List<byte>();
            foreach (var (kind, offset, length, seed) in ops)
            {
                switch (kind)
                {
                    case 0:
                        var data = new byte[length];
                        new Random(seed).NextBytes(data);
                        _backend.WriteAsync(id, offset, data, default).AsTask().GetAwaiter().GetResult();
                        // pwrite(2) of zero bytes changes nothing, not even the size.
                        if (length > 0 && model.Count < offset + length)
                        {
                            model.AddRange(new byte[offset + length - model.Count]);
                        }

                        for (var i = 0; i < length; i++)
                        {
                            model[offset + i] = data[i];
                        }

                        break;
                    case 1:
                        _backend.PunchAsync(id, offset, length, default).AsTask().GetAwaiter().GetResult();
                        for (var i = offset; i < Math.Min(model.Count, offset + length); i++)
                        {
                            model[i] = 0;
                        }

                        break;
                    default:
                        _backend.TruncateAsync(id, offset, default).AsTask().GetAwaiter().GetResult();
                        if (offset < model.Count)
                        {
                            model.RemoveRange(offset, model.Count - offset);
                        }
                        else if (offset > model.Count)
                        {
                            model.AddRange(new byte[offset - model.Count]);
                        }

                        break;
                }
            }

            var back = new byte[512 * 1024];
            var read = _backend.ReadAsync(id, 0, back, default).AsTask().GetAwaiter().GetResult();
            Assert.Equal(model.Count, read.ObjectSize);
            Assert.Equal(model.Count, read.BytesRead);
            Assert.True(back.AsSpan(0, read.BytesRead).SequenceEqual(model.ToArray()), "the object's bytes differ from the model's");
            return true;
        }), maxTests: 60);
    }
}
