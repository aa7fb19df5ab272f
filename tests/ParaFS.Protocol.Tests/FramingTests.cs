using System.Buffers;
using FsCheck;
using FsCheck.Fluent;
using ParaFS.Protocol.Framing;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

public sealed class FramingTests
{
    private static readonly FrameLimits Limits = new() { MaxHeaderBytes = 4096, MaxMessageBytes = 64 * 1024, MaxPayloadBytes = 256 * 1024 };

    public sealed record Case(CallHeader Header, RpcError? Message, int PayloadLength, int[] Cuts);

    private static Gen<Case> Cases()
    {
        var kinds = Gen.Elements(FrameKind.Request, FrameKind.Response, FrameKind.Push);
        var text = Gen.Choose(0, 600).Select(n => new string('e', n));
        var error = Gen.OneOf(Gen.Constant<RpcError?>(null), Gen.Zip(Gen.Choose(0, 200), text).Select(t => (RpcError?)new RpcError { Errno = t.Item1, Message = t.Item2 }));
        var header =
            from kind in kinds
            from id in Gen.Choose(0, int.MaxValue)
            from method in Gen.Choose(0, 5000)
            from e in error
            select new CallHeader { Kind = kind, CallId = (ulong)id * 3, Method = (uint)method, TimeoutMs = (uint)id % 100000, Error = e };
        var message = Gen.OneOf(Gen.Constant<RpcError?>(null), Gen.Zip(Gen.Choose(-5, 5), Gen.Choose(0, 30000)).Select(t => (RpcError?)new RpcError { Errno = t.Item1, Message = new string('m', t.Item2) }));
        var payload = Gen.OneOf(Gen.Constant(0), Gen.Constant(Limits.MaxPayloadBytes), Gen.Choose(0, Limits.MaxPayloadBytes), Gen.Choose(0, 300));
        var cuts = Gen.ArrayOf(Gen.Choose(1, 70000)).Select(a => a.Take(8).ToArray());
        return from h in header
               from m in message
               from p in payload
               from c in cuts
               select new Case(h, m, p, c);
    }

    [Fact]
    public void A_frame_round_trips_through_any_split_of_its_bytes()
    {
        PropertyCheck.Run(Prop.ForAll(Cases().ToArbitrary(), c =>
        {
            var bytes = Encode(c);
            var sequence = SegmentedSequence.Split(bytes, c.Cuts);
            var headEnd = bytes.Length - c.PayloadLength;

            // Every strict prefix of the head asks for more data.
            foreach (var prefix in new[] { 0, FramePreamble.Size - 1, FramePreamble.Size, headEnd - 1 }.Where(p => p >= 0 && p < headEnd))
            {
                var partial = sequence.Slice(0, prefix);
                Assert.Equal(FrameHeadStatus.NeedMoreData, FrameCodec.TryReadHead(ref partial, Limits, out _, out _));
            }

            var whole = sequence;
            Assert.Equal(FrameHeadStatus.Complete, FrameCodec.TryReadHead(ref whole, Limits, out var head, out var error));
            Assert.Null(error);
            Assert.Equal(c.Header, head.Header);
            Assert.Equal(c.Message ?? new RpcError(), head.Message.IsEmpty ? new RpcError() : RpcError.Parser.ParseFrom(head.Message));
            Assert.Equal(c.PayloadLength, head.Preamble.PayloadLength);
            Assert.Equal(bytes.AsSpan(headEnd).ToArray(), whole.ToArray());
            return true;
        }), maxTests: 200);
    }

    [Fact]
    public void A_payload_one_byte_over_the_limit_is_refused()
    {
        var header = new CallHeader { Kind = FrameKind.Request, CallId = 1, Method = 5 };
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHead(writer, header, null, Limits.MaxPayloadBytes + 1);
        var sequence = new ReadOnlySequence<byte>(writer.WrittenMemory);
        Assert.Equal(FrameHeadStatus.Invalid, FrameCodec.TryReadHead(ref sequence, Limits, out _, out var error));
        Assert.Contains("over the limit", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Bytes_that_are_not_a_frame_are_refused_with_a_reason()
    {
        var garbage = new ReadOnlySequence<byte>("GET / HTTP/1.1\r\n\r\n"u8.ToArray());
        Assert.Equal(FrameHeadStatus.Invalid, FrameCodec.TryReadHead(ref garbage, Limits, out _, out var error));
        Assert.Contains("bad frame magic", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_header_that_does_not_parse_is_refused()
    {
        var bytes = new byte[FramePreamble.Size + 3];
        new FramePreamble(3, 0, 0).Write(bytes);
        bytes[^3] = 0xFF;
        bytes[^2] = 0xFF;
        bytes[^1] = 0xFF;
        var sequence = new ReadOnlySequence<byte>(bytes);
        Assert.Equal(FrameHeadStatus.Invalid, FrameCodec.TryReadHead(ref sequence, Limits, out _, out var error));
        Assert.Contains("does not parse", error, StringComparison.Ordinal);
    }

    private static byte[] Encode(Case c)
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHead(writer, c.Header, c.Message, c.PayloadLength);
        var payload = writer.GetSpan(c.PayloadLength)[..c.PayloadLength];
        for (var i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(i * 31 + 7);
        }

        writer.Advance(c.PayloadLength);
        return writer.WrittenSpan.ToArray();
    }
}
