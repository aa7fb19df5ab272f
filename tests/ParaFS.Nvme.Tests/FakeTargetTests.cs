using System.Buffers.Binary;
using System.Text;
using ParaFS.Common;

namespace ParaFS.Nvme.Tests;

/// <summary>Faults the real target does not produce on demand, from a scripted target that speaks the real PDUs.</summary>
public sealed class FakeTargetTests
{
    private static readonly NvmeTcpOptions Plain = new() { CommandTimeout = TimeSpan.FromSeconds(10), ConnectTimeout = TimeSpan.FromSeconds(5) };

    private static NvmeCommand Read(int blocks) => NvmeCommand.ReadWrite(Opcode.Read, 1, 0, blocks);

    [Fact]
    public async Task Connect_goes_in_capsule_with_psdt_sgl_on_the_wire()
    {
        FakeConnection? seen = null;
        await using var target2 = FakeTarget.Start(c =>
        {
            seen = c;
            return Task.CompletedTask;
        });
        await using var queue = await NvmeQueuePair.ConnectAsync(target2.Queue(Plain), default);
        await target2.Completion;
        var pdu = seen!.ConnectPdu;
        Assert.Equal(new byte[] { 0x04, 0x00, 72, 72 }, pdu[..4]);
        Assert.Equal(72 + 1024, BinaryPrimitives.ReadInt32LittleEndian(pdu.AsSpan(4)));
        Assert.Equal(0x7F, pdu[8]);
        Assert.Equal(0x40, pdu[9]);                          // PSDT = SGL, even on Connect
        Assert.Equal(0x01, pdu[8 + 4]);                      // FCTYPE Connect
        Assert.Equal(0x01, pdu[8 + 39]);                     // in-capsule SGL
        Assert.Equal(1024u, BinaryPrimitives.ReadUInt32LittleEndian(pdu.AsSpan(8 + 32)));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(pdu.AsSpan(8 + 42)));  // QID
        Assert.Equal(8, BinaryPrimitives.ReadUInt16LittleEndian(pdu.AsSpan(8 + 44)));  // SQSIZE = depth, 0's based
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(pdu.AsSpan(72 + 16))); // CNTLID
        Assert.StartsWith("nqn.2026-11.io.parafs:fake", Encoding.ASCII.GetString(pdu, 72 + 256, 256));
        Assert.StartsWith("nqn.2014-08.org.nvmexpress:uuid:", Encoding.ASCII.GetString(pdu, 72 + 512, 256));
        Assert.Equal(1, queue.ControllerId);
    }

    [Fact]
    public async Task A_target_that_closes_the_connection_fails_the_command_in_flight_and_the_queue()
    {
        await using var target = FakeTarget.Start(async c =>
        {
            await c.ReadPduAsync();
            c.Close();
        });
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain), default);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(Read(8), default, new byte[4096], default).AsTask());
        Assert.Equal(Errno.EIO, error.Errno);
        Assert.Contains("closed the connection", error.Message);
        Assert.Contains("qid 1", error.Message);
        Assert.True(queue.IsFaulted);
        var next = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(Read(8), default, new byte[4096], default).AsTask());
        Assert.Contains("closed the connection", next.Message);
    }

    [Fact]
    public async Task A_truncated_pdu_is_reported_as_such()
    {
        await using var target = FakeTarget.Start(async c =>
        {
            var capsule = await c.ReadPduAsync();
            var pdu = new byte[24 + 100];
            Pdu.WriteCommonHeader(pdu, PduType.C2HData, PduFlags.LastPdu, 24, 24, 24 + 4096);
            BinaryPrimitives.WriteUInt16LittleEndian(pdu.AsSpan(8), FakeConnection.Cid(capsule));
            BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(16), 4096);
            await c.SendAsync(pdu);
            c.Close();
        });
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain), default);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(Read(8), default, new byte[4096], default).AsTask());
        Assert.Contains("in the middle of a PDU", error.Message);
    }

    [Fact]
    public async Task A_data_digest_mismatch_fails_only_that_command()
    {
        var good = Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray();
        await using var target = FakeTarget.Start(async c =>
        {
            var first = await c.ReadPduAsync();
            await c.SendC2HDataAsync(FakeConnection.Cid(first), good, corruptDataDigest: true);
            await c.SendCapsuleRespAsync(FakeConnection.Cid(first));
            var second = await c.ReadPduAsync();
            await c.SendC2HDataAsync(FakeConnection.Cid(second), good);
            await c.SendCapsuleRespAsync(FakeConnection.Cid(second));
        }, dataDigest: true);
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain with { DataDigest = true }), default);
        var buffer = new byte[4096];
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(Read(8), default, buffer, default).AsTask());
        Assert.Contains("data digest mismatch", error.Message);
        Assert.False(queue.IsFaulted);
        var completion = await queue.ExecuteAsync(Read(8), default, buffer, default);
        Assert.True(completion.IsSuccess);
        Assert.Equal(good, buffer);
    }

    [Fact]
    public async Task A_header_digest_mismatch_drops_the_connection()
    {
        await using var target = FakeTarget.Start(async c =>
        {
            var capsule = await c.ReadPduAsync();
            await c.SendCapsuleRespAsync(FakeConnection.Cid(capsule), corruptHeaderDigest: true);
        }, headerDigest: true);
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain with { HeaderDigest = true }), default);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(NvmeCommand.Flush(1), default, default, default).AsTask());
        Assert.Contains("header digest mismatch", error.Message);
        Assert.True(queue.IsFaulted);
    }

    [Fact]
    public async Task The_digests_the_target_enables_must_be_the_ones_asked_for()
    {
        await using var target = FakeTarget.Start(_ => Task.CompletedTask, answeredDigest: 0);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => NvmeQueuePair.ConnectAsync(target.Queue(Plain with { DataDigest = true }), default));
        Assert.Contains("digests asked", error.Message);
    }

    [Fact]
    public async Task A_command_without_an_answer_times_out_and_drops_the_connection()
    {
        var release = new TaskCompletionSource();
        await using var target = FakeTarget.Start(async c =>
        {
            await c.ReadPduAsync();
            await release.Task;
        });
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain with { CommandTimeout = TimeSpan.FromMilliseconds(300) }), default);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(Read(8), default, new byte[4096], default).AsTask());
        release.SetResult();
        Assert.Equal(Errno.ETIMEDOUT, error.Errno);
        Assert.Contains("no completion within 0.3 s", error.Message);
        Assert.True(queue.IsFaulted);
    }

    [Fact]
    public async Task A_target_that_never_answers_connect_times_out_at_the_connect_timeout()
    {
        var release = new TaskCompletionSource();
        await using var target = FakeTarget.Start(_ => release.Task, silentAfterICResp: true);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() =>
            NvmeQueuePair.ConnectAsync(target.Queue(Plain with { ConnectTimeout = TimeSpan.FromMilliseconds(400) }), default));
        release.SetResult();
        Assert.Equal(Errno.ETIMEDOUT, error.Errno);
        Assert.Contains("Connect", error.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_c2h_term_req_is_reported_with_its_reason()
    {
        await using var target = FakeTarget.Start(async c =>
        {
            await c.ReadPduAsync();
            var pdu = new byte[24];
            Pdu.WriteCommonHeader(pdu, PduType.C2HTermReq, PduFlags.None, 24, 0, 24);
            BinaryPrimitives.WriteUInt16LittleEndian(pdu.AsSpan(8), 1);
            BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(10), 2);
            await c.SendAsync(pdu);
        });
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain), default);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(Read(8), default, new byte[4096], default).AsTask());
        Assert.Contains("invalid PDU header field", error.Message);
    }

    [Fact]
    public async Task A_completion_for_a_cid_not_in_flight_is_a_protocol_error()
    {
        await using var target = FakeTarget.Start(async c =>
        {
            await c.ReadPduAsync();
            await c.SendCapsuleRespAsync(cid: 77);
        });
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain), default);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => queue.ExecuteAsync(Read(8), default, new byte[4096], default).AsTask());
        Assert.Equal(Errno.EPROTO, error.Errno);
        Assert.Contains("cid 77", error.Message);
    }

    [Theory]
    [InlineData(40 * 1024, 32 * 1024)]  // a large chunk from the caller's memory, then a small copied one
    [InlineData(72 * 1024, 32 * 1024)]
    [InlineData(48 * 1024, 16 * 1024)]  // every chunk copied
    public async Task A_write_answering_one_r2t_with_several_h2cdata_arrives_whole(int length, int maxH2CData)
    {
        var data = Enumerable.Range(0, length).Select(i => (byte)(i * 31 + 7)).ToArray();
        var received = new byte[length];
        var pdus = 0;
        await using var target = FakeTarget.Start(async c =>
        {
            var capsule = await c.ReadPduAsync();
            var cid = FakeConnection.Cid(capsule);
            await c.SendR2TAsync(cid, ttag: 1, offset: 0, length: length);
            while (true)
            {
                var pdu = await c.ReadPduAsync();
                pdus++;
                var offset = BinaryPrimitives.ReadInt32LittleEndian(pdu.AsSpan(12));
                var count = BinaryPrimitives.ReadInt32LittleEndian(pdu.AsSpan(16));
                Assert.True(count <= maxH2CData);
                pdu.AsSpan(pdu[3], count).CopyTo(received.AsSpan(offset));
                if ((pdu[1] & (byte)PduFlags.LastPdu) != 0)
                {
                    break;
                }
            }
            await c.SendCapsuleRespAsync(cid);
        }, maxH2CData: maxH2CData);
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain), default);
        queue.InCapsuleCapacity = 16384;
        var completion = await queue.ExecuteAsync(NvmeCommand.ReadWrite(Opcode.Write, 1, 0, length / 512), data, default, default)
            .AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(completion.IsSuccess);
        await target.Completion;
        Assert.Equal((length + maxH2CData - 1) / maxH2CData, pdus);
        Assert.Equal(data, received);
    }

    [Fact]
    public async Task Writes_that_fit_go_in_capsule_and_larger_ones_answer_r2t_split_at_maxh2cdata()
    {
        var small = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray();
        var large = Enumerable.Range(0, 20480).Select(i => (byte)(i * 13)).ToArray();
        var h2c = new List<byte[]>();
        byte[] smallCapsule = [];
        byte[] largeCapsule = [];
        var received = new byte[large.Length];
        await using var target = FakeTarget.Start(async c =>
        {
            smallCapsule = await c.ReadPduAsync();
            await c.SendCapsuleRespAsync(FakeConnection.Cid(smallCapsule));
            largeCapsule = await c.ReadPduAsync();
            var cid = FakeConnection.Cid(largeCapsule);
            await c.SendR2TAsync(cid, ttag: 3, offset: 0, length: large.Length);
            while (h2c.Count == 0 || (h2c[^1][1] & (byte)PduFlags.LastPdu) == 0)
            {
                var pdu = await c.ReadPduAsync();
                h2c.Add(pdu);
                var offset = BinaryPrimitives.ReadInt32LittleEndian(pdu.AsSpan(12));
                var length = BinaryPrimitives.ReadInt32LittleEndian(pdu.AsSpan(16));
                pdu.AsSpan(pdu[3], length).CopyTo(received.AsSpan(offset));
            }
            await c.SendCapsuleRespAsync(cid);
        }, maxH2CData: 8192);
        await using var queue = await NvmeQueuePair.ConnectAsync(target.Queue(Plain), default);
        queue.InCapsuleCapacity = 16384;
        Assert.True((await queue.ExecuteAsync(NvmeCommand.ReadWrite(Opcode.Write, 1, 0, 16), small, default, default)).IsSuccess);
        Assert.True((await queue.ExecuteAsync(NvmeCommand.ReadWrite(Opcode.Write, 1, 0, 40), large, default, default)).IsSuccess);
        await target.Completion;

        Assert.Equal(0x01, smallCapsule[8 + 39]);
        Assert.Equal(72 + 8192, smallCapsule.Length);
        Assert.Equal(72, smallCapsule[3]);
        Assert.Equal(small, smallCapsule[72..]);

        Assert.Equal(0x5A, largeCapsule[8 + 39]);
        Assert.Equal(72, largeCapsule.Length);
        Assert.Equal(0, largeCapsule[3]);
        Assert.Equal(20480u, BinaryPrimitives.ReadUInt32LittleEndian(largeCapsule.AsSpan(8 + 32)));

        Assert.Equal(3, h2c.Count); // 8192 + 8192 + 4096
        Assert.All(h2c, p => Assert.Equal(3, BinaryPrimitives.ReadUInt16LittleEndian(p.AsSpan(10)))); // TTAG echoed
        Assert.Equal([0, 0, (byte)PduFlags.LastPdu], h2c.Select(p => p[1]).ToArray());
        Assert.Equal(large, received);
    }
}
