using System.Buffers.Binary;
using System.Text;
using ParaFS.Common;
using ParaFS.Common.Storage;

namespace ParaFS.Ost.Backends.Block;

/// <summary>
/// The block store's superblock and region layout. Device layout (offsets multiples of 4 KiB):
/// <code>
/// [0, 4K)          superblock          [4K, 8K)  its copy
/// [8K, 8K+J)       metadata journal    (J = device/256, 1 to 64 MiB)
/// two checkpoint slots of C bytes each (C = 64 bytes per chunk + 64 KiB)
/// data region      chunkCount chunks of chunkSize bytes, from dataOffset (chunk aligned)
/// </code>
/// The superblock carries the file system id, target id and pool, so a namespace formatted for
/// one file system is never taken for another. Little-endian; CRC-32C over the fields.
/// </summary>
public sealed record BlockFormat
{
    public const int FormatVersion = 1;
    public const int MetadataBlock = 4096;
    public const int DefaultChunkSize = 128 * 1024;

    /// <summary>"PFSBLK01".</summary>
    private static ReadOnlySpan<byte> Magic => "PFSBLK01"u8;

    private const int CrcOffset = 296;
    private const int TextField = 64;

    public int Format { get; init; } = FormatVersion;

    public required int BlockSize { get; init; }

    public required int ChunkSize { get; init; }

    public required long DeviceBytes { get; init; }

    public required long JournalOffset { get; init; }

    public required long JournalBytes { get; init; }

    public required long CheckpointOffset0 { get; init; }

    public required long CheckpointOffset1 { get; init; }

    public required long CheckpointBytes { get; init; }

    public required long DataOffset { get; init; }

    public required long ChunkCount { get; init; }

    public required string FsId { get; init; }

    public string FsName { get; init; } = "";

    public required uint TargetId { get; init; }

    public required string Pool { get; init; }

    public long CreatedMs { get; init; }

    /// <summary>Random at format: journal and checkpoint checksums include it, so blocks left by an earlier format of the same device never replay.</summary>
    public ulong StoreId { get; init; }

    /// <summary>The smallest device that holds the metadata and 16 chunks.</summary>
    public static long MinimumBytes(int chunkSize = DefaultChunkSize) => Plan((16L * chunkSize) + (2L << 20), chunkSize).DataOffset + (16L * chunkSize);

    /// <summary>Lays out a device of <paramref name="deviceBytes"/> for the given identity.</summary>
    public static BlockFormat Create(long deviceBytes, int blockSize, string fsId, string fsName, uint targetId, string pool, int chunkSize = DefaultChunkSize)
    {
        if (chunkSize % MetadataBlock != 0 || chunkSize % blockSize != 0)
        {
            throw new ParaFsException(Errno.EINVAL, $"chunk size {chunkSize} is not a multiple of 4 KiB and of the device's block size {blockSize}");
        }

        var plan = Plan(deviceBytes, chunkSize);
        var chunks = (deviceBytes - plan.DataOffset) / chunkSize;
        if (chunks < 16)
        {
            throw new ParaFsException(Errno.ENOSPC,
                $"a device of {deviceBytes} bytes is too small for the block store: it needs at least {MinimumBytes(chunkSize)} bytes (metadata and 16 chunks of {chunkSize} bytes)");
        }

        return new BlockFormat
        {
            BlockSize = blockSize,
            ChunkSize = chunkSize,
            DeviceBytes = deviceBytes,
            JournalOffset = 2 * MetadataBlock,
            JournalBytes = plan.Journal,
            CheckpointOffset0 = (2 * MetadataBlock) + plan.Journal,
            CheckpointOffset1 = (2 * MetadataBlock) + plan.Journal + plan.Checkpoint,
            CheckpointBytes = plan.Checkpoint,
            DataOffset = plan.DataOffset,
            ChunkCount = chunks,
            FsId = fsId,
            FsName = fsName,
            TargetId = targetId,
            Pool = pool,
            CreatedMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            StoreId = (ulong)Random.Shared.NextInt64(1, long.MaxValue),
        };
    }

    public long ChunkOffset(long deviceChunk) => DataOffset + (deviceChunk * ChunkSize);

    /// <summary>The superblock as one 4 KiB block.</summary>
    public byte[] Encode()
    {
        var block = new byte[MetadataBlock];
        var s = block.AsSpan();
        Magic.CopyTo(s);
        BinaryPrimitives.WriteInt32LittleEndian(s[8..], Format);
        BinaryPrimitives.WriteInt32LittleEndian(s[12..], BlockSize);
        BinaryPrimitives.WriteInt32LittleEndian(s[16..], ChunkSize);
        BinaryPrimitives.WriteInt64LittleEndian(s[24..], DeviceBytes);
        BinaryPrimitives.WriteInt64LittleEndian(s[32..], JournalOffset);
        BinaryPrimitives.WriteInt64LittleEndian(s[40..], JournalBytes);
        BinaryPrimitives.WriteInt64LittleEndian(s[48..], CheckpointOffset0);
        BinaryPrimitives.WriteInt64LittleEndian(s[56..], CheckpointOffset1);
        BinaryPrimitives.WriteInt64LittleEndian(s[64..], CheckpointBytes);
        BinaryPrimitives.WriteInt64LittleEndian(s[72..], DataOffset);
        BinaryPrimitives.WriteInt64LittleEndian(s[80..], ChunkCount);
        BinaryPrimitives.WriteUInt32LittleEndian(s[88..], TargetId);
        BinaryPrimitives.WriteInt64LittleEndian(s[96..], CreatedMs);
        WriteText(s.Slice(104, TextField), FsId);
        WriteText(s.Slice(168, TextField), Pool);
        WriteText(s.Slice(232, TextField), FsName);
        BinaryPrimitives.WriteUInt64LittleEndian(s[288..], StoreId);
        BinaryPrimitives.WriteUInt32LittleEndian(s[CrcOffset..], Crc32C.Compute(s[..CrcOffset]));
        return block;
    }

    /// <summary>
    /// Reads a superblock: null when the block holds no ParaFS block store (a blank or foreign
    /// device); an exception when it is one but damaged or of a newer format.
    /// </summary>
    public static BlockFormat? Decode(ReadOnlySpan<byte> s, string device)
    {
        if (!s[..8].SequenceEqual(Magic))
        {
            return null;
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(s[CrcOffset..]) != Crc32C.Compute(s[..CrcOffset]))
        {
            throw new ParaFsException(Errno.EIO, $"the block store superblock on {device} fails its checksum; the device is damaged (parafs ost fsck reports more)");
        }

        var format = BinaryPrimitives.ReadInt32LittleEndian(s[8..]);
        if (format > FormatVersion)
        {
            throw new ParaFsException(Errno.EINVAL, $"{device} holds a block store of format {format}; this parafs reads format {FormatVersion}: upgrade parafs");
        }

        return new BlockFormat
        {
            Format = format,
            BlockSize = BinaryPrimitives.ReadInt32LittleEndian(s[12..]),
            ChunkSize = BinaryPrimitives.ReadInt32LittleEndian(s[16..]),
            DeviceBytes = BinaryPrimitives.ReadInt64LittleEndian(s[24..]),
            JournalOffset = BinaryPrimitives.ReadInt64LittleEndian(s[32..]),
            JournalBytes = BinaryPrimitives.ReadInt64LittleEndian(s[40..]),
            CheckpointOffset0 = BinaryPrimitives.ReadInt64LittleEndian(s[48..]),
            CheckpointOffset1 = BinaryPrimitives.ReadInt64LittleEndian(s[56..]),
            CheckpointBytes = BinaryPrimitives.ReadInt64LittleEndian(s[64..]),
            DataOffset = BinaryPrimitives.ReadInt64LittleEndian(s[72..]),
            ChunkCount = BinaryPrimitives.ReadInt64LittleEndian(s[80..]),
            TargetId = BinaryPrimitives.ReadUInt32LittleEndian(s[88..]),
            CreatedMs = BinaryPrimitives.ReadInt64LittleEndian(s[96..]),
            FsId = ReadText(s.Slice(104, TextField)),
            Pool = ReadText(s.Slice(168, TextField)),
            FsName = ReadText(s.Slice(232, TextField)),
            StoreId = BinaryPrimitives.ReadUInt64LittleEndian(s[288..]),
        };
    }

    private static (long Journal, long Checkpoint, long DataOffset) Plan(long deviceBytes, int chunkSize)
    {
        var journal = RoundUp(Math.Clamp(deviceBytes / 256, 1L << 20, 64L << 20), MetadataBlock);
        var checkpoint = RoundUp((deviceBytes / chunkSize * 64) + (64 * 1024), MetadataBlock);
        var dataOffset = RoundUp((2 * MetadataBlock) + journal + (2 * checkpoint), chunkSize);
        return (journal, checkpoint, dataOffset);
    }

    private static long RoundUp(long value, long unit) => (value + unit - 1) / unit * unit;

    private static void WriteText(Span<byte> field, string text)
    {
        if (Encoding.UTF8.GetByteCount(text) > field.Length)
        {
            throw new ParaFsException(Errno.ENAMETOOLONG, $"'{text}' is longer than {field.Length} bytes, the most the block store superblock keeps");
        }

        Encoding.UTF8.GetBytes(text, field);
    }

    private static string ReadText(ReadOnlySpan<byte> field)
    {
        var end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }
}
