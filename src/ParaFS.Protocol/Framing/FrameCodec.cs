using System.Buffers;
using Google.Protobuf;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Framing;

/// <summary>
/// Encodes and decodes the head of a frame (preamble, call header, message). The payload is not
/// touched here: senders write it after the head and receivers copy it straight to where it goes.
/// </summary>
public static class FrameCodec
{
    /// <summary>Writes preamble, header and message; the caller writes <paramref name="payloadLength"/> payload bytes next.</summary>
    public static void WriteHead(IBufferWriter<byte> writer, CallHeader header, IMessage? message, int payloadLength)
    {
        var headerLength = header.CalculateSize();
        var messageLength = message?.CalculateSize() ?? 0;
        var total = FramePreamble.Size + headerLength + messageLength;
        var span = writer.GetSpan(total)[..total];
        new FramePreamble(headerLength, messageLength, payloadLength).Write(span);
        header.WriteTo(span.Slice(FramePreamble.Size, headerLength));
        message?.WriteTo(span.Slice(FramePreamble.Size + headerLength, messageLength));
        writer.Advance(total);
    }

    /// <summary>
    /// Parses one frame head from the front of <paramref name="buffer"/> and, when complete, slices
    /// the buffer to start at the payload.
    /// </summary>
    public static FrameHeadStatus TryReadHead(
        ref ReadOnlySequence<byte> buffer, FrameLimits limits, out FrameHead head, out string? error)
    {
        head = default;
        error = null;
        if (buffer.Length < FramePreamble.Size)
        {
            return FrameHeadStatus.NeedMoreData;
        }

        Span<byte> fixedPart = stackalloc byte[FramePreamble.Size];
        buffer.Slice(0, FramePreamble.Size).CopyTo(fixedPart);
        if (FramePreamble.TryRead(fixedPart, limits, out error) is not { } preamble)
        {
            return FrameHeadStatus.Invalid;
        }

        long headLength = FramePreamble.Size + preamble.HeaderLength + preamble.MessageLength;
        if (buffer.Length < headLength)
        {
            return FrameHeadStatus.NeedMoreData;
        }

        CallHeader header;
        try
        {
            header = CallHeader.Parser.ParseFrom(buffer.Slice(FramePreamble.Size, preamble.HeaderLength));
        }
        catch (InvalidProtocolBufferException e)
        {
            error = $"frame header does not parse: {e.Message}";
            return FrameHeadStatus.Invalid;
        }

        if (header.Kind is not (FrameKind.Request or FrameKind.Response or FrameKind.Push))
        {
            error = $"frame kind {(int)header.Kind} is not a request, response or push";
            return FrameHeadStatus.Invalid;
        }

        var message = buffer.Slice(FramePreamble.Size + preamble.HeaderLength, preamble.MessageLength);
        head = new FrameHead(preamble, header, message);
        buffer = buffer.Slice(headLength);
        return FrameHeadStatus.Complete;
    }
}
