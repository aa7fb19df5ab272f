using ParaFS.Common.Storage;
using System.Buffers.Binary;

namespace ParaFS.Nvme;

/// <summary>NVMe/TCP PDU types (TCP transport spec; shared/reference/nvme-tcp.md section 2).</summary>
public enum PduType : byte
{
    ICReq = 0x00,
    ICResp = 0x01,
    H2CTermReq = 0x02,
    C2HTermReq = 0x03,
    CapsuleCmd = 0x04,
    CapsuleResp = 0x05,
    H2CData = 0x06,
    C2HData = 0x07,
    R2T = 0x09,
}

/// <summary>Common-header flags (byte 1).</summary>
[Flags]
public enum PduFlags : byte
{
    None = 0,
    HeaderDigest = 0x01,
    DataDigest = 0x02,
    LastPdu = 0x04,
    Success = 0x08,
}

/// <summary>
/// Fixed sizes and the encoders/decoders of the PDU headers. Every multi-byte field is little-endian.
/// Offsets are from the PDU start, as in the reference's tables.
/// </summary>
public static class Pdu
{
    public const int CommonHeaderLength = 8;
    public const int ICReqLength = 128;
    public const int CapsuleCmdHeaderLength = 72;   // 8 + the 64-byte SQE
    public const int CapsuleRespHeaderLength = 24;  // 8 + the 16-byte CQE
    public const int DataHeaderLength = 24;         // H2CData, C2HData
    public const int R2THeaderLength = 24;
    public const int TermReqHeaderLength = 24;
    public const int DigestLength = 4;
    public const int MaxTermReqLength = 152;

    /// <summary>The HLEN each PDU type must carry (nvmet closes the connection on any other value).</summary>
    public static int HeaderLength(PduType type) => type switch
    {
        PduType.ICReq or PduType.ICResp => ICReqLength,
        PduType.CapsuleCmd => CapsuleCmdHeaderLength,
        PduType.CapsuleResp or PduType.H2CData or PduType.C2HData or PduType.R2T
            or PduType.H2CTermReq or PduType.C2HTermReq => 24,
        _ => -1,
    };

    public static void WriteCommonHeader(Span<byte> pdu, PduType type, PduFlags flags, int hlen, int pdo, int plen)
    {
        pdu[0] = (byte)type;
        pdu[1] = (byte)flags;
        pdu[2] = (byte)hlen;
        pdu[3] = (byte)pdo;
        BinaryPrimitives.WriteUInt32LittleEndian(pdu[4..], (uint)plen);
    }

    /// <summary>ICReq: PFV 0, HPDA 0 (nvmet rejects anything else), DGST, MAXR2T 0 (one R2T per command).</summary>
    public static void WriteICReq(Span<byte> pdu, bool headerDigest, bool dataDigest)
    {
        pdu[..ICReqLength].Clear();
        WriteCommonHeader(pdu, PduType.ICReq, PduFlags.None, ICReqLength, 0, ICReqLength);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu[8..], 0);
        pdu[10] = 0;
        pdu[11] = DigestBits(headerDigest, dataDigest);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu[12..], 0);
    }

    public static byte DigestBits(bool headerDigest, bool dataDigest) =>
        (byte)((headerDigest ? 1 : 0) | (dataDigest ? 2 : 0));

    /// <summary>PDO for a PDU that carries data: header, its digest, then padding to the alignment
    /// the receiver asked for (CPDA/HPDA, 0's based dwords).</summary>
    public static int DataOffset(int hlen, bool headerDigest, int alignDwords0Based)
    {
        var offset = hlen + (headerDigest ? DigestLength : 0);
        var align = (alignDwords0Based + 1) * 4;
        return alignDwords0Based == 0 ? offset : (offset + align - 1) / align * align;
    }

    /// <summary>H2CData header (section 3): CCCID, TTAG from the R2T, DATAO, DATAL.</summary>
    public static void WriteH2CData(Span<byte> pdu, PduFlags flags, int pdo, int plen, ushort cid, ushort ttag, int dataOffset, int dataLength)
    {
        WriteCommonHeader(pdu, PduType.H2CData, flags, DataHeaderLength, pdo, plen);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu[8..], cid);
        BinaryPrimitives.WriteUInt16LittleEndian(pdu[10..], ttag);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu[12..], (uint)dataOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu[16..], (uint)dataLength);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu[20..], 0);
    }

    public static void WriteDigest(Span<byte> destination, ReadOnlySpan<byte> covered) =>
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Crc32C.Compute(covered));

    public static bool DigestMatches(ReadOnlySpan<byte> digest, ReadOnlySpan<byte> covered) =>
        BinaryPrimitives.ReadUInt32LittleEndian(digest) == Crc32C.Compute(covered);

    /// <summary>The meaning of a TermReq's FES field (section 3).</summary>
    public static string DescribeFatalErrorStatus(int fes) => fes switch
    {
        1 => "invalid PDU header field",
        2 => "PDU sequence error",
        3 => "header digest error",
        4 => "data transfer out of range",
        5 => "data transfer limit exceeded",
        6 => "unsupported parameter",
        _ => $"fatal error status {fes}",
    };
}

/// <summary>What the controller answered in its ICResp.</summary>
public readonly record struct ICResp(int Pfv, int Cpda, bool HeaderDigest, bool DataDigest, int MaxH2CData)
{
    public static ICResp Parse(ReadOnlySpan<byte> pdu) => new(
        BinaryPrimitives.ReadUInt16LittleEndian(pdu[8..]),
        pdu[10],
        (pdu[11] & 1) != 0,
        (pdu[11] & 2) != 0,
        (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(pdu[12..]), int.MaxValue));
}

/// <summary>An R2T (section 3): the controller asks for R2TL bytes of the command's data from R2TO.</summary>
public readonly record struct R2T(ushort Cid, ushort Ttag, int Offset, int Length)
{
    public static R2T Parse(ReadOnlySpan<byte> pdu) => new(
        BinaryPrimitives.ReadUInt16LittleEndian(pdu[8..]),
        BinaryPrimitives.ReadUInt16LittleEndian(pdu[10..]),
        (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(pdu[12..]), int.MaxValue),
        (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(pdu[16..]), int.MaxValue));
}

/// <summary>The header fields of a C2HData PDU.</summary>
public readonly record struct C2HData(ushort Cid, int Offset, int Length)
{
    public static C2HData Parse(ReadOnlySpan<byte> pdu) => new(
        BinaryPrimitives.ReadUInt16LittleEndian(pdu[8..]),
        (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(pdu[12..]), int.MaxValue),
        (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(pdu[16..]), int.MaxValue));
}
