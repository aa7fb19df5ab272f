using System.Buffers.Binary;
using System.Text;

namespace ParaFS.Nvme;

/// <summary>Identify Controller (CNS 1) fields the host uses (Base spec 2.0; reference section 6 step 6).</summary>
public sealed record IdentifyController(
    ushort VendorId,
    string SerialNumber,
    string ModelNumber,
    string FirmwareRevision,
    byte Mdts,
    ushort ControllerId,
    uint Version,
    ushort KeepAliveSupport100Ms,
    ushort MaxCommands,
    uint NamespaceCount,
    ushort Oncs,
    uint Sgls,
    string SubsystemNqn,
    uint IoCommandCapsuleSize16,
    uint IoResponseCapsuleSize16,
    ushort InCapsuleDataOffset,
    byte MaxSglDescriptors)
{
    public const int Size = 4096;

    public bool SupportsDatasetManagement => (Oncs & 0x4) != 0;

    public bool SupportsWriteZeroes => (Oncs & 0x8) != 0;

    /// <summary>In-capsule data bytes an I/O command may carry: IOCCSZ*16 minus the 64-byte SQE.</summary>
    public int InCapsuleDataBytes => (int)Math.Max(0, Math.Min(IoCommandCapsuleSize16 * 16L - 64, int.MaxValue));

    public static IdentifyController Parse(ReadOnlySpan<byte> data) => new(
        BinaryPrimitives.ReadUInt16LittleEndian(data),
        Text(data.Slice(4, 20)),
        Text(data.Slice(24, 40)),
        Text(data.Slice(64, 8)),
        data[77],
        BinaryPrimitives.ReadUInt16LittleEndian(data[78..]),
        BinaryPrimitives.ReadUInt32LittleEndian(data[80..]),
        BinaryPrimitives.ReadUInt16LittleEndian(data[320..]),
        BinaryPrimitives.ReadUInt16LittleEndian(data[514..]),
        BinaryPrimitives.ReadUInt32LittleEndian(data[516..]),
        BinaryPrimitives.ReadUInt16LittleEndian(data[520..]),
        BinaryPrimitives.ReadUInt32LittleEndian(data[536..]),
        Text(data.Slice(768, 256)),
        BinaryPrimitives.ReadUInt32LittleEndian(data[1792..]),
        BinaryPrimitives.ReadUInt32LittleEndian(data[1796..]),
        BinaryPrimitives.ReadUInt16LittleEndian(data[1800..]),
        data[1803]);

    /// <summary>ASCII, space- or NUL-padded.</summary>
    internal static string Text(ReadOnlySpan<byte> field)
    {
        var end = field.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? field : field[..end]).TrimEnd(' ');
    }
}

/// <summary>Identify Namespace (CNS 0) fields (NVM command set spec; reference section 6 step 6).</summary>
public sealed record IdentifyNamespace(ulong SizeBlocks, ulong CapacityBlocks, ulong UtilizationBlocks, byte Features, int FormatIndex, int BlockSize, int MetadataSize)
{
    public static IdentifyNamespace Parse(ReadOnlySpan<byte> data)
    {
        var nlbaf = data[25];
        var flbas = data[26];
        var index = flbas & 0xF;
        if (index > nlbaf)
        {
            index = 0;
        }
        var lbaf = data.Slice(128 + index * 4, 4);
        var lbads = lbaf[2];
        return new IdentifyNamespace(
            BinaryPrimitives.ReadUInt64LittleEndian(data),
            BinaryPrimitives.ReadUInt64LittleEndian(data[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[16..]),
            data[24],
            index,
            lbads is >= 9 and < 31 ? 1 << lbads : 0,
            BinaryPrimitives.ReadUInt16LittleEndian(lbaf));
    }
}

/// <summary>One discovery log entry (log page 0x70; reference section 11).</summary>
public sealed record DiscoveryLogEntry(
    byte TransportType,
    byte AddressFamily,
    byte SubsystemType,
    byte TransportRequirements,
    ushort PortId,
    ushort ControllerId,
    ushort AdminMaxSqSize,
    string TransportServiceId,
    string SubsystemNqn,
    string TransportAddress)
{
    public const int Size = 1024;

    public bool IsNvmSubsystem => SubsystemType == 2;

    public bool IsDiscoverySubsystem => SubsystemType is 1 or 3;

    public static DiscoveryLogEntry Parse(ReadOnlySpan<byte> entry) => new(
        entry[0],
        entry[1],
        entry[2],
        entry[3],
        BinaryPrimitives.ReadUInt16LittleEndian(entry[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(entry[6..]),
        BinaryPrimitives.ReadUInt16LittleEndian(entry[8..]),
        IdentifyController.Text(entry.Slice(32, 32)),
        IdentifyController.Text(entry.Slice(256, 256)),
        IdentifyController.Text(entry.Slice(512, 256)));
}
