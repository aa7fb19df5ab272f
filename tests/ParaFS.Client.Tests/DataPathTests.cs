using System.Security.Cryptography;
using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client.Tests;

public sealed class DataPathTests : IAsyncLifetime
{
    private const ulong Root = ParaFsClient.RootIno;
    private static readonly Caller Me = TestCluster.RootCaller;
    private TestCluster _cluster = null!;
    private ParaFsClient _client = null!;

    public async Task InitializeAsync()
    {
        _cluster = await TestCluster.StartAsync();
        _client = await _cluster.ClientAsync();
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _cluster.DisposeAsync();
    }

    public static TheoryData<int, int> Layouts => new()
    {
        { 4096, 1 }, { 4096, 4 }, { 65536, 3 }, { 1024 * 1024, 2 }, { 1024 * 1024, 4 }, { 4 * 1024 * 1024, 4 },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public async Task Random_writes_and_reads_match_an_in_memory_model(int stripeSize, int stripeCount)
    {
        var handle = await CreateAsync($"model-{stripeSize}-{stripeCount}", stripeSize, stripeCount);
        var random = new Random(stripeSize + stripeCount);
        var span = Math.Min(3L * stripeSize * stripeCount, 24 * 1024 * 1024);
        var model = new byte[span + (2 * stripeSize)];
        long modelSize = 0;
        for (var step = 0; step < 40; step++)
        {
            var offset = random.NextInt64(0, span);
            var length = random.Next(1, 2 * stripeSize);
            var data = new byte[length];
            random.NextBytes(data);
            await _client.WriteAsync(handle, offset, data);
            data.CopyTo(model, offset);
            modelSize = Math.Max(modelSize, offset + length);

            var readOffset = random.NextInt64(0, modelSize + 100);
            var buffer = new byte[random.Next(1, 3 * stripeSize)];
            var got = await _client.ReadAsync(handle, readOffset, buffer);
            var expected = (int)Math.Clamp(modelSize - readOffset, 0, buffer.Length);
            Assert.Equal(expected, got);
            Assert.True(buffer.AsSpan(0, got).SequenceEqual(model.AsSpan((int)Math.Min(readOffset, model.Length), got)), $"step {step}: read at {readOffset} differs");
        }

        var whole = new byte[modelSize];
        Assert.Equal((int)modelSize, await _client.ReadAsync(handle, 0, whole));
        Assert.True(whole.AsSpan().SequenceEqual(model.AsSpan(0, (int)modelSize)));
        await _client.ReleaseAsync(handle);
        Assert.Equal((ulong)modelSize, (await _client.GetAttrAsync(handle.Ino, fresh: true)).Attr.Size);
    }

    [Fact]
    public async Task A_sparse_file_reads_zeros_in_its_holes()
    {
        var handle = await CreateAsync("sparse", 65536, 4);
        var tail = RandomNumberGenerator.GetBytes(1000);
        await _client.WriteAsync(handle, 10 * 1024 * 1024, tail);
        var all = new byte[(10 * 1024 * 1024) + 1000];
        Assert.Equal(all.Length, await _client.ReadAsync(handle, 0, all));
        Assert.True(all.AsSpan(0, 10 * 1024 * 1024).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(all.AsSpan(10 * 1024 * 1024).SequenceEqual(tail));
    }

    /// <summary>
    /// lseek SEEK_DATA / SEEK_HOLE over four objects: the answer is the nearest of the objects'
    /// answers mapped back to file offsets, whichever object holds the offset asked.
    /// </summary>
    [Fact]
    public async Task Seek_data_and_hole_find_written_stripes_across_the_objects()
    {
        const int Stripe = 64 * 1024;
        var handle = await CreateAsync("seek", Stripe, 4);

        // Written: stripe 1 (object 1, row 0), stripes 6 and 7 (objects 2 and 3 of row 1: one run
        // of data across two objects), and 1000 bytes of stripe 13 (object 1 again, row 3).
        await _client.WriteAsync(handle, Stripe, RandomNumberGenerator.GetBytes(Stripe));
        await _client.WriteAsync(handle, 6 * Stripe, RandomNumberGenerator.GetBytes(2 * Stripe));
        await _client.WriteAsync(handle, 13 * Stripe, RandomNumberGenerator.GetBytes(1000));
        const long Size = (13 * Stripe) + 1000;

        Assert.Equal(Stripe, await _client.SeekAsync(handle, 0, ParaFsClient.SeekData));
        Assert.Equal(0, await _client.SeekAsync(handle, 0, ParaFsClient.SeekHole));
        Assert.Equal(Stripe + 100, await _client.SeekAsync(handle, Stripe + 100, ParaFsClient.SeekData));
        Assert.Equal(2 * Stripe, await _client.SeekAsync(handle, Stripe + 100, ParaFsClient.SeekHole));
        Assert.Equal(6 * Stripe, await _client.SeekAsync(handle, (2 * Stripe) + 5, ParaFsClient.SeekData));
        Assert.Equal(8 * Stripe, await _client.SeekAsync(handle, 6 * Stripe, ParaFsClient.SeekHole));
        Assert.Equal((7 * Stripe) + 1, await _client.SeekAsync(handle, (7 * Stripe) + 1, ParaFsClient.SeekData));
        Assert.Equal(13 * Stripe, await _client.SeekAsync(handle, 8 * Stripe, ParaFsClient.SeekData));
        Assert.Equal(Size, await _client.SeekAsync(handle, 13 * Stripe, ParaFsClient.SeekHole));

        // At or past the end, and in the trailing hole of a file grown by truncate: ENXIO for data.
        var past = await Assert.ThrowsAsync<ParaFsException>(() => _client.SeekAsync(handle, Size, ParaFsClient.SeekHole));
        Assert.Equal(Errno.ENXIO, past.Errno);
        await _client.SetAttrAsync(Me, new SetAttrRequest { Ino = handle.Ino, Valid = (uint)SetAttrField.Size, Size = 20 * Stripe }, handle);
        Assert.Equal(Size, await _client.SeekAsync(handle, 13 * Stripe, ParaFsClient.SeekHole));
        var none = await Assert.ThrowsAsync<ParaFsException>(() => _client.SeekAsync(handle, 15 * Stripe, ParaFsClient.SeekData));
        Assert.Equal(Errno.ENXIO, none.Errno);
        Assert.Equal(15 * Stripe, await _client.SeekAsync(handle, 15 * Stripe, ParaFsClient.SeekHole));

        // A punched stripe turns into a hole.
        await _client.PunchHoleAsync(handle, Stripe, Stripe);
        Assert.Equal(6 * Stripe, await _client.SeekAsync(handle, 0, ParaFsClient.SeekData));
    }

    [Fact]
    public async Task Truncate_down_and_up_across_stripe_boundaries_leaves_no_old_bytes()
    {
        var handle = await CreateAsync("trunc", 4096, 3);
        var data = RandomNumberGenerator.GetBytes(50_000);
        await _client.WriteAsync(handle, 0, data);
        foreach (var size in new long[] { 30_001, 4096, 12_289, 0, 7, 40_000 })
        {
            await _client.SetAttrAsync(Me, new SetAttrRequest { Ino = handle.Ino, Valid = (uint)SetAttrField.Size, Size = (ulong)size }, handle);
            Array.Resize(ref data, (int)size);
            var read = new byte[60_000];
            Assert.Equal((int)size, await _client.ReadAsync(handle, 0, read));
            Assert.True(read.AsSpan(0, (int)size).SequenceEqual(data), $"after truncate to {size}");
        }

        // Growing after shrinking shows zeros, never the bytes cut earlier.
        Assert.True(data.AsSpan(7).IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public async Task A_punched_hole_reads_as_zeros_and_keeps_the_size()
    {
        var handle = await CreateAsync("punch", 4096, 4);
        var data = RandomNumberGenerator.GetBytes(100_000);
        await _client.WriteAsync(handle, 0, data);
        await _client.PunchHoleAsync(handle, 5000, 40_000);
        Array.Clear(data, 5000, 40_000);
        var read = new byte[100_000];
        Assert.Equal(100_000, await _client.ReadAsync(handle, 0, read));
        Assert.True(read.AsSpan().SequenceEqual(data));
        await _client.FsyncAsync(handle);
        Assert.Equal(100_000ul, (await _client.GetAttrAsync(handle.Ino, fresh: true)).Attr.Size);
    }

    [Fact]
    public async Task Sequential_reads_through_read_ahead_return_the_file_exactly()
    {
        var handle = await CreateAsync("seq", 65536, 4);
        var data = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 12345);
        await _client.WriteAsync(handle, 0, data);
        await _client.ReleaseAsync(handle);

        var reader = await _client.OpenAsync(Me, handle.Ino, 0);
        var copy = new byte[data.Length];
        var offset = 0;
        var reads = 0;
        while (offset < copy.Length)
        {
            var n = await _client.ReadAsync(reader, offset, copy.AsMemory(offset, Math.Min(128 * 1024, copy.Length - offset)));
            Assert.True(n > 0);
            offset += n;
            reads++;
        }

        Assert.True(copy.AsSpan().SequenceEqual(data));

        // The third read continues two others and starts read-ahead; every later one comes out of
        // a window (the next window fills while the reader is in the second half of the current one).
        Assert.Equal(reads - 3, reader.ReadAhead.Served);
        await _client.ReleaseAsync(reader);
    }

    [Fact]
    public async Task What_one_client_wrote_and_closed_another_sees_when_it_opens()
    {
        await using var other = await _cluster.ClientAsync();
        var writer = await CreateAsync("c2o", 65536, 4);
        var data = RandomNumberGenerator.GetBytes(700_000);
        await _client.WriteAsync(writer, 0, data);
        await _client.ReleaseAsync(writer);

        var attr = await other.LookupAsync(Me, Root, "c2o");
        var reader = await other.OpenAsync(Me, attr.Attr.Ino, 0);
        Assert.Equal(data.Length, reader.Size);
        var read = new byte[800_000];
        Assert.Equal(data.Length, await other.ReadAsync(reader, 0, read));
        Assert.True(read.AsSpan(0, data.Length).SequenceEqual(data));
        await other.ReleaseAsync(reader);
    }

    [Fact]
    public async Task A_size_extension_reaches_the_mds_within_a_second_without_close()
    {
        var handle = await CreateAsync("lazy", 65536, 2);
        await _client.WriteAsync(handle, 0, new byte[123_456]);
        await using var other = await _cluster.ClientAsync();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await other.GetAttrAsync(handle.Ino, fresh: true)).Attr.Size != 123_456 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal(123_456ul, (await other.GetAttrAsync(handle.Ino, fresh: true)).Attr.Size);
    }

    [Fact]
    public async Task A_write_through_a_read_only_handle_fails_with_EBADF()
    {
        var handle = await CreateAsync("ro", 4096, 1);
        await _client.ReleaseAsync(handle);
        var reader = await _client.OpenAsync(Me, handle.Ino, 0);
        var e = await Assert.ThrowsAsync<ParaFsException>(() => _client.WriteAsync(reader, 0, new byte[1]));
        Assert.Equal(Errno.EBADF, e.Errno);
    }

    private async Task<FileHandle> CreateAsync(string name, int stripeSize, int stripeCount)
    {
        var (attr, handle) = await _client.CreateAsync(Me, Root, name, FileType.Regular, 0x1A4, openFlags: 2, exclusive: true);
        await _client.SetStripeAsync(Me, attr.Attr.Ino, new LayoutPolicy { StripeSize = (uint)stripeSize, StripeCount = stripeCount });
        Assert.Equal((uint)stripeCount, handle!.Layout.StripeCount);
        Assert.Equal((uint)stripeSize, handle.Layout.StripeSize);
        return handle;
    }
}
