using System.Buffers.Binary;

namespace ParaFS.Nvme;

/// <summary>Opcodes used by the host (Base spec 2.0; NVM command set 1.0; reference section 6-7).</summary>
public static class Opcode
{
    // Admin
    public const byte GetLogPage = 0x02;
    public const byte Identify = 0x06;
    public const byte SetFeatures = 0x09;
    public const byte KeepAlive = 0x18;
    public const byte Fabrics = 0x7F;

    // NVM I/O
    public const byte Flush = 0x00;
    public const byte Write = 0x01;
    public const byte Read = 0x02;
    public const byte WriteZeroes = 0x08;
    public const byte DatasetManagement = 0x09;

    // Fabrics command types (byte 4 of a Fabrics SQE)
    public const byte PropertySet = 0x00;
    public const byte Connect = 0x01;
    public const byte PropertyGet = 0x04;
}

/// <summary>Which way a command's data moves; decides the SGL form (reference section 4 and 8).</summary>
public enum DataDirection : byte
{
    None,
    HostToController,
    ControllerToHost,
}

/// <summary>
/// A 64-byte submission queue entry before the queue gives it a CID and an SGL (reference section 4).
/// Byte 1 is always 0x40 (PSDT = SGL): nvmet fails anything else, Fabrics commands included.
/// For a Fabrics command <see cref="Nsid"/> carries FCTYPE in its low byte.
/// </summary>
public struct NvmeCommand
{
    public byte Opcode;
    public uint Nsid;
    public uint Cdw10;
    public uint Cdw11;
    public uint Cdw12;
    public uint Cdw13;
    public uint Cdw14;
    public uint Cdw15;

    public const int Size = 64;
    public const byte PsdtSgl = 0x40;
    public const byte SglDataBlockOffset = 0x01;    // in-capsule data
    public const byte SglTransportDataBlock = 0x5A; // data moved by R2T/H2CData or C2HData

    /// <summary>Writes the SQE: CID, and SGL1 either in-capsule (0x01, offset 0) or transport (0x5A).</summary>
    public readonly void WriteTo(Span<byte> sqe, ushort cid, int dataLength, bool inCapsule)
    {
        sqe[..Size].Clear();
        sqe[0] = Opcode;
        sqe[1] = PsdtSgl;
        BinaryPrimitives.WriteUInt16LittleEndian(sqe[2..], cid);
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[4..], Nsid);
        // DPTR = SGL1 at 24: address 24..31, length 32..35, identifier at 39.
        BinaryPrimitives.WriteUInt64LittleEndian(sqe[24..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[32..], (uint)dataLength);
        sqe[39] = inCapsule ? SglDataBlockOffset : SglTransportDataBlock;
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[40..], Cdw10);
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[44..], Cdw11);
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[48..], Cdw12);
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[52..], Cdw13);
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[56..], Cdw14);
        BinaryPrimitives.WriteUInt32LittleEndian(sqe[60..], Cdw15);
    }

    public readonly string Name => Opcode == ParaFS.Nvme.Opcode.Fabrics
        ? (byte)Nsid switch
        {
            ParaFS.Nvme.Opcode.Connect => "Connect",
            ParaFS.Nvme.Opcode.PropertyGet => "Property Get",
            ParaFS.Nvme.Opcode.PropertySet => "Property Set",
            _ => $"Fabrics 0x{(byte)Nsid:x2}",
        }
        : $"opcode 0x{Opcode:x2}";

    // ---- Fabrics (reference section 5) ----

    /// <summary>Connect: CDW10 = RECFMT 0 | QID &lt;&lt; 16; CDW11 = SQSIZE (0's based) | CATTR &lt;&lt; 16; CDW12 = KATO ms.</summary>
    public static NvmeCommand Connect(ushort qid, ushort sqSize0Based, bool disableSqFlowControl, uint keepAliveMs) => new()
    {
        Opcode = ParaFS.Nvme.Opcode.Fabrics,
        Nsid = ParaFS.Nvme.Opcode.Connect,
        Cdw10 = (uint)qid << 16,
        Cdw11 = sqSize0Based | (disableSqFlowControl ? 0x04u << 16 : 0),
        Cdw12 = keepAliveMs,
    };

    /// <summary>Property Get: CDW10 ATTRIB (1 = 8 bytes), CDW11 OFST.</summary>
    public static NvmeCommand PropertyGet(uint offset, bool eightBytes) => new()
    {
        Opcode = ParaFS.Nvme.Opcode.Fabrics,
        Nsid = ParaFS.Nvme.Opcode.PropertyGet,
        Cdw10 = eightBytes ? 1u : 0u,
        Cdw11 = offset,
    };

    /// <summary>Property Set: CDW10 ATTRIB, CDW11 OFST, CDW12..13 VALUE.</summary>
    public static NvmeCommand PropertySet(uint offset, ulong value, bool eightBytes) => new()
    {
        Opcode = ParaFS.Nvme.Opcode.Fabrics,
        Nsid = ParaFS.Nvme.Opcode.PropertySet,
        Cdw10 = eightBytes ? 1u : 0u,
        Cdw11 = offset,
        Cdw12 = (uint)value,
        Cdw13 = (uint)(value >> 32),
    };

    // ---- Admin (reference section 6, 9, 11) ----

    public static NvmeCommand Identify(byte cns, uint nsid) => new()
    {
        Opcode = ParaFS.Nvme.Opcode.Identify,
        Nsid = nsid,
        Cdw10 = cns,
    };

    /// <summary>Set Features, Number of Queues (FID 7): CDW11 = (NCQR-1) &lt;&lt; 16 | (NSQR-1).</summary>
    public static NvmeCommand SetNumberOfQueues(int count) => new()
    {
        Opcode = ParaFS.Nvme.Opcode.SetFeatures,
        Cdw10 = 0x07,
        Cdw11 = (uint)(count - 1) << 16 | (uint)(count - 1),
    };

    public static NvmeCommand KeepAlive() => new() { Opcode = ParaFS.Nvme.Opcode.KeepAlive };

    /// <summary>Get Log Page: CDW10 = LID | NUMDL &lt;&lt; 16, CDW11 = NUMDU, CDW12/13 = byte offset.</summary>
    public static NvmeCommand GetLogPage(byte logId, int lengthBytes, ulong offset)
    {
        var numd = (uint)(lengthBytes / 4 - 1);
        return new NvmeCommand
        {
            Opcode = ParaFS.Nvme.Opcode.GetLogPage,
            Cdw10 = logId | (numd & 0xFFFF) << 16,
            Cdw11 = numd >> 16,
            Cdw12 = (uint)offset,
            Cdw13 = (uint)(offset >> 32),
        };
    }

    // ---- NVM I/O (reference section 7) ----

    /// <summary>Read or Write: CDW10/11 = SLBA, CDW12[15:0] = NLB 0's based.</summary>
    public static NvmeCommand ReadWrite(byte opcode, uint nsid, ulong slba, int blocks) => new()
    {
        Opcode = opcode,
        Nsid = nsid,
        Cdw10 = (uint)slba,
        Cdw11 = (uint)(slba >> 32),
        Cdw12 = (uint)(blocks - 1) & 0xFFFF,
    };

    public static NvmeCommand Flush(uint nsid) => new() { Opcode = ParaFS.Nvme.Opcode.Flush, Nsid = nsid };

    /// <summary>Write Zeroes: like Write, no data; CDW12 bit 25 DEAC lets the controller deallocate.</summary>
    public static NvmeCommand WriteZeroes(uint nsid, ulong slba, int blocks, bool deallocate)
    {
        var command = ReadWrite(ParaFS.Nvme.Opcode.WriteZeroes, nsid, slba, blocks);
        if (deallocate)
        {
            command.Cdw12 |= 1u << 25;
        }
        return command;
    }

    /// <summary>Dataset Management with AD (deallocate): CDW10 = NR 0's based, CDW11 bit 2; ranges travel as data.</summary>
    public static NvmeCommand Deallocate(uint nsid, int ranges) => new()
    {
        Opcode = ParaFS.Nvme.Opcode.DatasetManagement,
        Nsid = nsid,
        Cdw10 = (uint)(ranges - 1) & 0xFF,
        Cdw11 = 1u << 2,
    };

    /// <summary>One 16-byte DSM range: context attributes, length in LBAs (not 0's based), SLBA.</summary>
    public static void WriteDsmRange(Span<byte> range, ulong slba, uint blocks)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(range, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(range[4..], blocks);
        BinaryPrimitives.WriteUInt64LittleEndian(range[8..], slba);
    }

    /// <summary>The 1024-byte Connect data (reference section 5), sent in-capsule.</summary>
    public static void WriteConnectData(Span<byte> data, Guid hostId, ushort controllerId, string subsystemNqn, string hostNqn)
    {
        data[..1024].Clear();
        hostId.TryWriteBytes(data[..16], bigEndian: true, out _);
        BinaryPrimitives.WriteUInt16LittleEndian(data[16..], controllerId);
        WriteAscii(data.Slice(256, 256), subsystemNqn);
        WriteAscii(data.Slice(512, 256), hostNqn);
    }

    private static void WriteAscii(Span<byte> field, string value)
    {
        if (value.Length > 255 || !System.Text.Ascii.IsValid(value))
        {
            throw new ArgumentException($"an NQN is ASCII and at most 255 characters: '{value}'");
        }
        System.Text.Encoding.ASCII.GetBytes(value, field);
    }
}

/// <summary>A 16-byte completion queue entry (reference section 4).</summary>
public readonly record struct NvmeCompletion(uint Dw0, uint Dw1, ushort SqHead, ushort SqId, ushort Cid, ushort Status)
{
    public const int Size = 16;

    public static NvmeCompletion Parse(ReadOnlySpan<byte> cqe) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(cqe),
        BinaryPrimitives.ReadUInt32LittleEndian(cqe[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(cqe[8..]),
        BinaryPrimitives.ReadUInt16LittleEndian(cqe[10..]),
        BinaryPrimitives.ReadUInt16LittleEndian(cqe[12..]),
        BinaryPrimitives.ReadUInt16LittleEndian(cqe[14..]));

    /// <summary>A completion made up for a C2HData carrying SUCCESS (no CapsuleResp follows).</summary>
    public static NvmeCompletion ImpliedSuccess(ushort cid) => new(0, 0, 0xFFFF, 0, cid, 0);

    public int StatusCode => (Status >> 1) & 0xFF;

    public int StatusCodeType => (Status >> 9) & 0x7;

    public bool DoNotRetry => (Status & 0x8000) != 0;

    public bool IsSuccess => StatusCode == 0 && StatusCodeType == 0;

    public ulong Result64 => Dw0 | (ulong)Dw1 << 32;

    public string DescribeStatus()
    {
        var text = (StatusCodeType, StatusCode) switch
        {
            (0, 0x00) => "Successful Completion",
            (0, 0x01) => "Invalid Command Opcode",
            (0, 0x02) => "Invalid Field in Command",
            (0, 0x04) => "Data Transfer Error",
            (0, 0x06) => "Internal Error",
            (0, 0x07) => "Command Abort Requested",
            (0, 0x0B) => "Invalid Namespace or Format",
            (0, 0x0D) => "Invalid SGL Segment Descriptor",
            (0, 0x80) => "LBA Out of Range",
            (0, 0x81) => "Capacity Exceeded",
            (0, 0x82) => "Namespace Not Ready",
            (1, 0x80) => "Connect: Incompatible Format",
            (1, 0x81) => "Connect: Controller Busy",
            (1, 0x82) => "Connect: Invalid Parameters",
            (1, 0x83) => "Connect: Restart Discovery",
            (1, 0x84) => "Connect: Invalid Host",
            (1, 0x85) => "Connect: Invalid Queue Type",
            (1, 0x91) => "Connect: Authentication Required",
            (2, _) => "Media and Data Integrity Error",
            (3, _) => "Path Related Status",
            _ => "status",
        };
        return $"{text} (SCT {StatusCodeType}, SC 0x{StatusCode:x2}{(DoNotRetry ? ", DNR" : "")})";
    }
}
