using System.Security.Cryptography;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Tests;

/// <summary>Every object method over RPC, against an in-process OST registered with an MDS double.</summary>
public sealed class RpcObjectTests : IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private MdsDouble _mds = null!;
    private TestOst _ost = null!;

    public async Task InitializeAsync()
    {
        _mds = await MdsDouble.StartAsync();
        _ost = await TestOst.StartAsync(_mds);
    }

    public async Task DisposeAsync()
    {
        await _ost.DisposeAsync();
        await _mds.DisposeAsync();
    }

    [Fact]
    public async Task Write_then_read_returns_the_bytes_and_the_objects_size()
    {
        var data = RandomNumberGenerator.GetBytes(MiB);
        Assert.Equal((ulong)(MiB + 512), await _ost.WriteAsync(1, 512, data));

        var (back, reply) = await _ost.ReadAsync(1, 512, MiB);
        Assert.True(reply.Exists);
        Assert.Equal((ulong)(MiB + 512), reply.ObjectSize);
        Assert.True(back.AsSpan().SequenceEqual(data));

        // The leading hole reads as zeros; a read past the end stops at the size.
        var (head, _) = await _ost.ReadAsync(1, 0, 1024);
        Assert.True(head.AsSpan(0, 512).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(head.AsSpan(512).SequenceEqual(data.AsSpan(0, 512)));
        var (tail, tailReply) = await _ost.ReadAsync(1, MiB, 4096);
        Assert.Equal(512, tail.Length);
        Assert.Equal((ulong)(MiB + 512), tailReply.ObjectSize);
    }

    [Fact]
    public async Task A_read_lands_in_the_callers_buffer()
    {
        var data = RandomNumberGenerator.GetBytes(256 * 1024);
        await _ost.WriteAsync(2, 0, data);
        var destination = new byte[256 * 1024];
        using var reply = await _ost.Client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = 2, Length = (uint)destination.Length }, replyDestination: destination);
        Assert.True(reply.PayloadInDestination);
        Assert.True(destination.AsSpan().SequenceEqual(data));
    }

    [Fact]
    public async Task Large_reads_on_a_bulk_connection_come_from_the_objects_file_with_holes_ends_and_misses_as_before()
    {
        // A bulk connection with threads of its own on both sides: reads of 64 KiB and more are
        // sent from the object's file (sendfile) rather than through a buffer.
        await using var bulk = new RpcClient(_ost.Server.Endpoint, new RpcClientOptions { FileSystemId = _mds.FsId, ConnectionsPerServer = 1, BulkConnectionsPerServer = 1 });
        var data = RandomNumberGenerator.GetBytes((2 * MiB) + 1000);
        await _ost.WriteAsync(5, 0, data);
        await _ost.Client.CallAsync(Methods.OstPunch, new PunchRequest { ObjectId = 5, Offset = MiB, Length = 64 * 1024 }, Empty.Parser);
        Array.Clear(data, MiB, 64 * 1024);

        async Task<(byte[] Bytes, ReadReply Reply)> ReadAsync(ulong objectId, long offset, int length)
        {
            var room = new byte[length];
            using var reply = await bulk.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = objectId, Offset = (ulong)offset, Length = (uint)length }, replyDestination: room);
            return (reply.Payload.ToArray(), reply.ParseMessage(ReadReply.Parser));
        }

        var whole = await ReadAsync(5, 0, 3 * MiB);
        Assert.True(whole.Bytes.AsSpan().SequenceEqual(data), "a whole-object read differs (the punched hole must read as zeros)");
        Assert.Equal((ulong)data.Length, whole.Reply.ObjectSize);

        var middle = await ReadAsync(5, 12_345, MiB);
        Assert.True(middle.Bytes.AsSpan().SequenceEqual(data.AsSpan(12_345, MiB)));

        var tail = await ReadAsync(5, data.Length - 100, 128 * 1024);
        Assert.True(tail.Bytes.AsSpan().SequenceEqual(data.AsSpan(data.Length - 100)));

        var past = await ReadAsync(5, data.Length + 10, 128 * 1024);
        Assert.Empty(past.Bytes);
        Assert.True(past.Reply.Exists);
        Assert.Equal((ulong)data.Length, past.Reply.ObjectSize);

        var missing = await ReadAsync(405, 0, 128 * 1024);
        Assert.Empty(missing.Bytes);
        Assert.False(missing.Reply.Exists);
        Assert.True((await bulk.GetConnectionAsync(bulk: true)).IsDedicated);
    }

    [Fact]
    public async Task An_unknown_object_answers_as_ost_proto_says()
    {
        var (data, reply) = await _ost.ReadAsync(404, 0, 4096);
        Assert.Empty(data);
        Assert.False(reply.Exists);
        Assert.Equal(0UL, reply.ObjectSize);

        var attr = await _ost.GetAttrAsync(404);
        Assert.Equal(new ObjectAttr { ObjectId = 404, Exists = false, Size = 0, AllocatedBytes = 0 }, attr);

        await _ost.Client.CallAsync(Methods.OstPunch, new PunchRequest { ObjectId = 404, Offset = 0, Length = MiB }, Empty.Parser);
        await _ost.Client.CallAsync(Methods.OstDelete, new ObjectRequest { ObjectId = 404 }, Empty.Parser);
        await _ost.Client.CallAsync(Methods.OstTruncate, new TruncateRequest { ObjectId = 404, Size = 0 }, Empty.Parser);
        Assert.False((await _ost.GetAttrAsync(404)).Exists);
        var statfs = await _ost.Client.CallAsync(Methods.OstStatFs, new Empty(), StatFsReply.Parser);
        Assert.Equal(0UL, statfs.Objects);
    }

    [Fact]
    public async Task Punch_across_a_stripe_boundary_reads_back_zeros()
    {
        var data = RandomNumberGenerator.GetBytes(2 * MiB);
        await _ost.WriteAsync(3, 0, data);
        await _ost.SyncAsync(3);
        var before = await _ost.GetAttrAsync(3);

        await _ost.Client.CallAsync(Methods.OstPunch, new PunchRequest { ObjectId = 3, Offset = MiB / 2, Length = MiB }, Empty.Parser);

        var (back, reply) = await _ost.ReadAsync(3, 0, 2 * MiB);
        Assert.Equal((ulong)(2 * MiB), reply.ObjectSize);
        Assert.True(back.AsSpan(0, MiB / 2).SequenceEqual(data.AsSpan(0, MiB / 2)));
        Assert.True(back.AsSpan(MiB / 2, MiB).IndexOfAnyExcept((byte)0) < 0);
        Assert.True(back.AsSpan(3 * MiB / 2).SequenceEqual(data.AsSpan(3 * MiB / 2)));
        var after = await _ost.GetAttrAsync(3);
        Assert.Equal(before.Size, after.Size);
        Assert.True(after.AllocatedBytes <= before.AllocatedBytes - (MiB - 8192),
            $"allocated bytes should drop by about 1 MiB: {before.AllocatedBytes} -> {after.AllocatedBytes}");
    }

    [Fact]
    public async Task Truncate_getattr_delete_sync_list_and_statfs_work_over_rpc()
    {
        for (var id = 10UL; id < 15; id++)
        {
            await _ost.WriteAsync(id, 0, RandomNumberGenerator.GetBytes(10_000));
        }

        await _ost.Client.CallAsync(Methods.OstTruncate, new TruncateRequest { ObjectId = 10, Size = 3 * MiB }, Empty.Parser);
        var attr = await _ost.GetAttrAsync(10);
        Assert.True(attr.Exists);
        Assert.Equal((ulong)(3 * MiB), attr.Size);
        Assert.True(attr.AllocatedBytes < (ulong)MiB, "an extending truncate allocates nothing");

        await _ost.SyncAsync(10, 11);
        await _ost.SyncAsync();
        await _ost.Client.CallAsync(Methods.OstDelete, new ObjectRequest { ObjectId = 12 }, Empty.Parser);

        var first = await _ost.Client.CallAsync(Methods.OstList, new ListRequest { After = 0, Limit = 2 }, ListReply.Parser);
        Assert.Equal([10UL, 11UL], first.ObjectIds);
        Assert.True(first.More);
        var rest = await _ost.Client.CallAsync(Methods.OstList, new ListRequest { After = 11 }, ListReply.Parser);
        Assert.Equal([13UL, 14UL], rest.ObjectIds);
        Assert.False(rest.More);

        var statfs = await _ost.Client.CallAsync(Methods.OstStatFs, new Empty(), StatFsReply.Parser);
        Assert.Equal(4UL, statfs.Objects);
        Assert.Equal(1U, statfs.TargetId);
        Assert.Equal("fast", statfs.Pool);
        Assert.True(statfs.CapacityBytes >= statfs.FreeBytes && statfs.FreeBytes > 0);
    }

    [Fact]
    public async Task An_offset_past_the_largest_object_is_EINVAL_naming_the_object_and_values()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            _ost.Client.CallAsync(Methods.OstWrite, new WriteRequest { ObjectId = 5, Offset = ulong.MaxValue - 2 }, new byte[10]));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains($"write of object 5: offset {ulong.MaxValue - 2} + length 10", e.Message, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<RpcException>(() =>
            _ost.Client.CallAsync(Methods.OstPunch, new PunchRequest { ObjectId = 6, Offset = 1, Length = ulong.MaxValue }, Empty.Parser));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("punch of object 6", e.Message, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<RpcException>(() =>
            _ost.Client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = 7, Offset = (ulong)ObjectBounds.MaxObjectSize, Length = 1 }, ReadReply.Parser));
        Assert.Equal(Errno.EINVAL, e.Errno);

        e = await Assert.ThrowsAsync<RpcException>(() =>
            _ost.Client.CallAsync(Methods.OstTruncate, new TruncateRequest { ObjectId = 8, Size = ulong.MaxValue }, Empty.Parser));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("truncate of object 8", e.Message, StringComparison.Ordinal);

        e = await Assert.ThrowsAsync<RpcException>(() =>
            _ost.Client.CallAsync(Methods.OstSeek, new SeekRequest { ObjectId = 9, Offset = ulong.MaxValue, Hole = true }, SeekReply.Parser));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("seek of object 9", e.Message, StringComparison.Ordinal);

        // Nothing was created, and the connection still serves.
        Assert.Equal(0UL, (await _ost.Client.CallAsync(Methods.OstStatFs, new Empty(), StatFsReply.Parser)).Objects);
    }

    [Fact]
    public async Task A_read_longer_than_a_frame_may_carry_is_EINVAL()
    {
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            _ost.Client.CallAsync(Methods.OstRead, new ReadRequest { ObjectId = 1, Length = uint.MaxValue }, ReadReply.Parser));
        Assert.Equal(Errno.EINVAL, e.Errno);
        Assert.Contains("split it", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_of_another_file_system_is_refused_at_the_handshake()
    {
        await using var stranger = new RpcClient(_ost.Server.Endpoint, new RpcClientOptions { FileSystemId = "fs-someone-else" });
        var e = await Assert.ThrowsAsync<RpcException>(() => stranger.CallAsync(Methods.OstGetAttr, new ObjectRequest { ObjectId = 1 }, ObjectAttr.Parser));
        Assert.Equal(Errno.EPROTO, e.Errno);
        Assert.Contains($"this OST belongs to file system {_mds.FsId}", e.Message, StringComparison.Ordinal);
        Assert.Contains("not fs-someone-else", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Operations_are_counted_by_the_meter()
    {
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == OstMetrics.MeterName && instrument.Name == "parafs.ost.operations")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "op")
                {
                    seen.AddOrUpdate((string)tag.Value!, value, (_, v) => v + value);
                }
            }
        });
        listener.Start();

        await _ost.WriteAsync(1, 0, new byte[100]);
        await _ost.ReadAsync(1, 0, 100);
        await _ost.ReadAsync(1, 0, 100);

        Assert.True(seen.GetValueOrDefault("write") >= 1);
        Assert.True(seen.GetValueOrDefault("read") >= 2);
        Assert.True(_ost.Server.Metrics.CompletedOperations >= 3);
    }
}
