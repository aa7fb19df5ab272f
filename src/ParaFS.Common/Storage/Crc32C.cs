using System.Buffers.Binary;
using System.Numerics;

namespace ParaFS.Common.Storage;

/// <summary>
/// CRC32C (Castagnoli): the NVMe/TCP header and data digest (TCP transport spec, "Digests") and the block store's checksums;
/// reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF, stored little-endian.
/// <see cref="BitOperations.Crc32C(uint, ulong)"/> is the raw, hardware-accelerated step.
/// </summary>
public static class Crc32C
{
    public const uint Initial = 0xFFFFFFFF;

    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Initial, data));

    /// <summary>Feeds more bytes into a running (not yet finished) CRC that started at <see cref="Initial"/>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        if (data.Length >= 4)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt32LittleEndian(data));
            data = data[4..];
        }
        foreach (var b in data)
        {
            crc = BitOperations.Crc32C(crc, b);
        }
        return crc;
    }

    public static uint Finish(uint crc) => crc ^ 0xFFFFFFFF;
}
