using System.Buffers.Binary;
using ParaFS.Common;
using ParaFS.Common.Storage;

namespace ParaFS.Ost.Backends.Block;

/// <summary>
/// Crash consistency of the block store's index: a checkpoint (the whole index, in one of two
/// slots, alternating) plus a journal of records since it. Journal blocks carry a sequence number
/// and a CRC-32C; replay takes the newest valid checkpoint and applies journal blocks while each
/// is valid and carries the next number, so a torn write ends the replay cleanly. When the
/// journal is full a checkpoint goes to the other slot and the journal starts over.
/// <code>
/// journal block (4 KiB): magic "PJNL" u32 | payload bytes u32 | sequence u64 | crc u32 | 0 u32 | records (25 bytes each)
/// checkpoint slot: header block: magic "PCKP" u32 | format u32 | sequence u64 | body bytes u64 | body crc u32 | header crc u32; body from +4 KiB
/// </code>
/// </summary>
internal sealed class BlockJournal(IBlockDevice device, BlockFormat format)
{
    private const uint JournalMagic = 0x4C4E4A50;
    private const uint CheckpointMagic = 0x504B4350;
    private const int Block = BlockFormat.MetadataBlock;
    private const int HeaderBytes = 24;
    public const int RecordsPerBlock = (Block - HeaderBytes) / JournalRecord.Bytes;

    /// <summary>The sequence number the next journal block gets.</summary>
    public long NextSequence { get; private set; }

    /// <summary>Journal blocks written since the last checkpoint.</summary>
    public long BlocksUsed { get; private set; }

    /// <summary>Which slot holds the newest checkpoint (0 or 1).</summary>
    public int CurrentSlot { get; private set; }

    public long Capacity => format.JournalBytes / Block;

    /// <summary>Reads the newest checkpoint and the journal after it into <paramref name="index"/>; returns the journal blocks applied.</summary>
    public async Task<long> ReplayAsync(BlockIndex index, CancellationToken cancellationToken)
    {
        var header = new byte[Block];
        (long Sequence, long Body, uint Crc, int Slot)? best = null;
        for (var slot = 0; slot < 2; slot++)
        {
            await device.ReadAsync(SlotOffset(slot), header, cancellationToken).ConfigureAwait(false);
            var s = header.AsSpan();
            if (BinaryPrimitives.ReadUInt32LittleEndian(s) != CheckpointMagic
                || BinaryPrimitives.ReadUInt32LittleEndian(s[28..]) != Checksum(s[..28]))
            {
                continue;
            }

            var sequence = BinaryPrimitives.ReadInt64LittleEndian(s[8..]);
            var body = BinaryPrimitives.ReadInt64LittleEndian(s[16..]);
            if (body < 8 || body > format.CheckpointBytes - Block)
            {
                index.Problems.Add($"checkpoint slot {slot} claims a body of {body} bytes, more than its slot holds");
                continue;
            }

            if (best is null || sequence > best.Value.Sequence)
            {
                best = (sequence, body, BinaryPrimitives.ReadUInt32LittleEndian(s[24..]), slot);
            }
        }

        if (best is not { } chosen)
        {
            throw new ParaFsException(Errno.EIO, $"{device.Description}: neither checkpoint slot of the block store is valid; the metadata is damaged (run parafs ost fsck)");
        }

        var bodyBytes = new byte[RoundUp(chosen.Body)];
        await device.ReadAsync(SlotOffset(chosen.Slot) + Block, bodyBytes, cancellationToken).ConfigureAwait(false);
        if (Checksum(bodyBytes.AsSpan(0, (int)chosen.Body)) != chosen.Crc)
        {
            throw new ParaFsException(Errno.EIO, $"{device.Description}: the newest checkpoint (slot {chosen.Slot}) fails its checksum; the metadata is damaged (run parafs ost fsck)");
        }

        index.Load(bodyBytes.AsSpan(0, (int)chosen.Body));
        CurrentSlot = chosen.Slot;
        NextSequence = chosen.Sequence;

        // The journal after it, in 1 MiB reads, block by block while each is the next valid one.
        var buffer = new byte[Math.Min(format.JournalBytes, 1 << 20)];
        long applied = 0;
        for (long offset = 0; offset < format.JournalBytes; offset += buffer.Length)
        {
            var length = (int)Math.Min(buffer.Length, format.JournalBytes - offset);
            await device.ReadAsync(format.JournalOffset + offset, buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            for (var at = 0; at < length; at += Block)
            {
                var block = buffer.AsSpan(at, Block);
                if (!TryReadBlock(block, NextSequence, out var payload))
                {
                    BlocksUsed = applied;
                    return applied;
                }

                for (var r = 0; r + JournalRecord.Bytes <= payload.Length; r += JournalRecord.Bytes)
                {
                    index.Apply(JournalRecord.Read(payload[r..]), freed: null);
                }

                NextSequence++;
                applied++;
            }
        }

        BlocksUsed = applied;
        return applied;
    }

    /// <summary>Appends records (data they refer to must be durable already); false when the journal has no room for them.</summary>
    public async Task<bool> AppendAsync(IReadOnlyList<JournalRecord> records, CancellationToken cancellationToken)
    {
        var blocks = (records.Count + RecordsPerBlock - 1) / RecordsPerBlock;
        if (BlocksUsed + blocks > Capacity)
        {
            return false;
        }

        var bytes = new byte[blocks * Block];
        for (var b = 0; b < blocks; b++)
        {
            var block = bytes.AsSpan(b * Block, Block);
            var first = b * RecordsPerBlock;
            var count = Math.Min(RecordsPerBlock, records.Count - first);
            for (var r = 0; r < count; r++)
            {
                records[first + r].Write(block[(HeaderBytes + (r * JournalRecord.Bytes))..]);
            }

            SealBlock(block, count * JournalRecord.Bytes, NextSequence + b);
        }

        await device.WriteAsync(format.JournalOffset + (BlocksUsed * Block), bytes, cancellationToken).ConfigureAwait(false);
        await device.FlushAsync(cancellationToken).ConfigureAwait(false);
        BlocksUsed += blocks;
        NextSequence += blocks;
        return true;
    }

    /// <summary>Writes the whole index into the other slot and starts the journal over (the caller flushed the data it maps).</summary>
    public async Task CheckpointAsync(byte[] body, CancellationToken cancellationToken)
    {
        if (body.Length > format.CheckpointBytes - Block)
        {
            throw new ParaFsException(Errno.ENOSPC, $"{device.Description}: the index ({body.Length} bytes) no longer fits a checkpoint slot ({format.CheckpointBytes - Block} bytes); too many objects for this device");
        }

        var slot = 1 - CurrentSlot;
        var image = new byte[Block + RoundUp(body.Length)];
        var h = image.AsSpan(0, Block);
        BinaryPrimitives.WriteUInt32LittleEndian(h, CheckpointMagic);
        BinaryPrimitives.WriteInt32LittleEndian(h[4..], BlockFormat.FormatVersion);
        BinaryPrimitives.WriteInt64LittleEndian(h[8..], NextSequence);
        BinaryPrimitives.WriteInt64LittleEndian(h[16..], body.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(h[24..], Checksum(body));
        BinaryPrimitives.WriteUInt32LittleEndian(h[28..], Checksum(h[..28]));
        body.CopyTo(image.AsSpan(Block));
        await device.WriteAsync(SlotOffset(slot), image, cancellationToken).ConfigureAwait(false);
        await device.FlushAsync(cancellationToken).ConfigureAwait(false);
        CurrentSlot = slot;
        BlocksUsed = 0;
    }

    /// <summary>A fresh store: an empty checkpoint in slot 0 and an empty journal (its first block made invalid).</summary>
    public async Task FormatAsync(CancellationToken cancellationToken)
    {
        CurrentSlot = 1;
        NextSequence = 1;
        await device.WriteZeroesAsync(format.JournalOffset, Block, cancellationToken).ConfigureAwait(false);
        await device.WriteZeroesAsync(SlotOffset(1), Block, cancellationToken).ConfigureAwait(false);
        await CheckpointAsync(new byte[8], cancellationToken).ConfigureAwait(false);
    }

    private long SlotOffset(int slot) => slot == 0 ? format.CheckpointOffset0 : format.CheckpointOffset1;

    private static int RoundUp(long bytes) => (int)((bytes + Block - 1) / Block * Block);

    /// <summary>CRC-32C seeded with the store id: a block written by another format of the device never passes.</summary>
    private uint Checksum(ReadOnlySpan<byte> data, ReadOnlySpan<byte> more = default)
    {
        Span<byte> id = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(id, format.StoreId);
        var crc = Crc32C.Append(0xFFFFFFFF, id);
        crc = Crc32C.Append(crc, data);
        return ~Crc32C.Append(crc, more);
    }

    private void SealBlock(Span<byte> block, int payloadBytes, long sequence)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(block, JournalMagic);
        BinaryPrimitives.WriteInt32LittleEndian(block[4..], payloadBytes);
        BinaryPrimitives.WriteInt64LittleEndian(block[8..], sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(block[20..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(block[16..], Checksum(block[..16], block.Slice(HeaderBytes, payloadBytes)));
    }

    private bool TryReadBlock(ReadOnlySpan<byte> block, long expected, out ReadOnlySpan<byte> payload)
    {
        payload = default;
        if (BinaryPrimitives.ReadUInt32LittleEndian(block) != JournalMagic || BinaryPrimitives.ReadInt64LittleEndian(block[8..]) != expected)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadInt32LittleEndian(block[4..]);
        if (length < 0 || length > Block - HeaderBytes)
        {
            return false;
        }

        if (Checksum(block[..16], block.Slice(HeaderBytes, length)) != BinaryPrimitives.ReadUInt32LittleEndian(block[16..]))
        {
            return false;
        }

        payload = block.Slice(HeaderBytes, length);
        return true;
    }
}
