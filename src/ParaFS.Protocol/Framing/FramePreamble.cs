using System.Buffers.Binary;

namespace ParaFS.Protocol.Framing;

/// <summary>
/// The fixed start of every frame, little-endian:
/// <c>magic u32 | header length u32 | message length u32 | payload length u32</c>.
/// The magic catches a peer that speaks something else (or a stream that lost its place).
/// </summary>
public readonly record struct FramePreamble(int HeaderLength, int MessageLength, int PayloadLength)
{
    public const int Size = 16;

    /// <summary>"PFS1" as it appears on the wire.</summary>
    public const uint Magic = 0x3153_4650;

    public long FrameLength => (long)Size + HeaderLength + MessageLength + PayloadLength;

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], HeaderLength);
        BinaryPrimitives.WriteInt32LittleEndian(destination[8..], MessageLength);
        BinaryPrimitives.WriteInt32LittleEndian(destination[12..], PayloadLength);
    }

    /// <summary>Reads a preamble and checks it against the limits; null with a reason when it is not acceptable.</summary>
    public static FramePreamble? TryRead(ReadOnlySpan<byte> source, FrameLimits limits, out string? error)
    {
        var magic = BinaryPrimitives.ReadUInt32LittleEndian(source);
        if (magic != Magic)
        {
            error = $"bad frame magic 0x{magic:x8} (expected 0x{Magic:x8}): the peer does not speak the ParaFS protocol";
            return null;
        }

        var header = BinaryPrimitives.ReadUInt32LittleEndian(source[4..]);
        var message = BinaryPrimitives.ReadUInt32LittleEndian(source[8..]);
        var payload = BinaryPrimitives.ReadUInt32LittleEndian(source[12..]);
        if (header == 0 || header > (uint)limits.MaxHeaderBytes)
        {
            error = $"frame header of {header} bytes is outside 1..{limits.MaxHeaderBytes}";
            return null;
        }

        if (message > (uint)limits.MaxMessageBytes)
        {
            error = $"frame message of {message} bytes is over the limit of {limits.MaxMessageBytes}";
            return null;
        }

        if (payload > (uint)limits.MaxPayloadBytes)
        {
            error = $"frame payload of {payload} bytes is over the limit of {limits.MaxPayloadBytes}";
            return null;
        }

        error = null;
        return new FramePreamble((int)header, (int)message, (int)payload);
    }
}
