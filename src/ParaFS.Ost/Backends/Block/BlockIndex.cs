using System.Buffers.Binary;

namespace ParaFS.Ost.Backends.Block;

/// <summary>What one journal record says happened. Fixed 25 bytes on disk: type, object, two arguments.</summary>
internal enum RecordType : byte
{
    /// <summary>The object exists (size 0 unless a Size record follows).</summary>
    Create = 1,

    /// <summary>A = the object's size.</summary>
    Size = 2,

    /// <summary>A = chunk index within the object, B = device chunk holding it (its data is on the device already).</summary>
    Map = 3,

    /// <summary>A = chunk index within the object, no longer held (reads as zeros).</summary>
    Unmap = 4,

    /// <summary>The object and all its chunks are gone.</summary>
    Delete = 5,
}

internal readonly record struct JournalRecord(RecordType Type, ulong ObjectId, long A = 0, long B = 0)
{
    public const int Bytes = 25;

    public void Write(Span<byte> s)
    {
        s[0] = (byte)Type;
        BinaryPrimitives.WriteUInt64LittleEndian(s[1..], ObjectId);
        BinaryPrimitives.WriteInt64LittleEndian(s[9..], A);
        BinaryPrimitives.WriteInt64LittleEndian(s[17..], B);
    }

    public static JournalRecord Read(ReadOnlySpan<byte> s) => new(
        (RecordType)s[0],
        BinaryPrimitives.ReadUInt64LittleEndian(s[1..]),
        BinaryPrimitives.ReadInt64LittleEndian(s[9..]),
        BinaryPrimitives.ReadInt64LittleEndian(s[17..]));
}

/// <summary>An object in the block store: its size and which device chunk holds each of its chunks.</summary>
internal sealed class BlockObject(ulong id)
{
    public ulong Id { get; } = id;

    public long Size { get; set; }

    public SortedDictionary<long, long> Chunks { get; } = [];

    /// <summary>Writes hold it shared (they exclude each other per chunk); punch, truncate and delete hold it exclusively.</summary>
    public AsyncReaderWriterLock Gate { get; } = new();
}

/// <summary>
/// The block store's index in memory: objects, their chunk maps, and which device chunks are in
/// use (derived from the maps, so a chunk no object holds is free by construction). Rebuilt at
/// open from the newest checkpoint and the journal after it; not thread-safe (the store locks).
/// </summary>
internal sealed class BlockIndex(long chunkCount)
{
    private readonly ulong[] _used = new ulong[(chunkCount + 63) / 64];
    private readonly Dictionary<long, ulong> _owners = [];
    private long _hint;

    public Dictionary<ulong, BlockObject> Objects { get; } = [];

    public SortedSet<ulong> Ids { get; } = [];

    public long ChunkCount { get; } = chunkCount;

    public long UsedChunks { get; private set; }

    /// <summary>Inconsistencies met while replaying (a chunk held twice, out of range): what fsck reports.</summary>
    public List<string> Problems { get; } = [];

    public bool IsUsed(long chunk) => (_used[chunk >> 6] & (1UL << (int)(chunk & 63))) != 0;

    public BlockObject GetOrCreate(ulong id)
    {
        if (!Objects.TryGetValue(id, out var o))
        {
            o = new BlockObject(id);
            Objects[id] = o;
            Ids.Add(id);
        }

        return o;
    }

    /// <summary>A free device chunk, marked used (not yet in any map); -1 when the device is full.</summary>
    public long Reserve()
    {
        if (UsedChunks >= ChunkCount)
        {
            return -1;
        }

        for (long scanned = 0; scanned < ChunkCount; scanned++)
        {
            var chunk = (_hint + scanned) % ChunkCount;
            if (!IsUsed(chunk))
            {
                MarkUsed(chunk);
                _hint = chunk + 1;
                return chunk;
            }
        }

        return -1;
    }

    /// <summary>Returns a chunk to the free map.</summary>
    public void Free(long chunk)
    {
        if (IsUsed(chunk))
        {
            _used[chunk >> 6] &= ~(1UL << (int)(chunk & 63));
            UsedChunks--;
        }

        _owners.Remove(chunk);
    }

    /// <summary>Applies one record, as the store did when it wrote it (replay) or as it does now. Returns chunks freed.</summary>
    public void Apply(JournalRecord r, List<long>? freed)
    {
        switch (r.Type)
        {
            case RecordType.Create:
                GetOrCreate(r.ObjectId);
                break;
            case RecordType.Size:
                GetOrCreate(r.ObjectId).Size = r.A;
                break;
            case RecordType.Map:
                Map(GetOrCreate(r.ObjectId), r.A, r.B, reserved: false);
                break;
            case RecordType.Unmap:
                if (Objects.TryGetValue(r.ObjectId, out var o) && o.Chunks.Remove(r.A, out var chunk))
                {
                    Release(chunk, freed);
                }

                break;
            case RecordType.Delete:
                if (Objects.Remove(r.ObjectId, out var gone))
                {
                    Ids.Remove(r.ObjectId);
                    foreach (var c in gone.Chunks.Values)
                    {
                        Release(c, freed);
                    }
                }

                break;
            default:
                Problems.Add($"unknown journal record type {(byte)r.Type} for object {r.ObjectId}");
                break;
        }
    }

    /// <summary>Puts a device chunk into an object's map; <paramref name="reserved"/>: it was already marked used by <see cref="Reserve"/>.</summary>
    public void Map(BlockObject o, long index, long chunk, bool reserved)
    {
        if (chunk < 0 || chunk >= ChunkCount)
        {
            Problems.Add($"object {o.Id} chunk {index} points at device chunk {chunk}, outside the data region (0..{ChunkCount - 1})");
            return;
        }

        if (_owners.TryGetValue(chunk, out var owner) && (owner != o.Id || !o.Chunks.TryGetValue(index, out var same) || same != chunk))
        {
            Problems.Add($"device chunk {chunk} is held by object {owner} and by object {o.Id} (chunk {index})");
            return;
        }

        if (o.Chunks.TryGetValue(index, out var previous) && previous != chunk)
        {
            Problems.Add($"object {o.Id} chunk {index} was mapped to device chunk {previous} and again to {chunk}");
            Free(previous);
        }

        if (!reserved && !IsUsed(chunk))
        {
            MarkUsed(chunk);
        }

        o.Chunks[index] = chunk;
        _owners[chunk] = o.Id;
    }

    /// <summary>The checkpoint body: every object with its size and map.</summary>
    public byte[] Serialize()
    {
        var bytes = 8 + Objects.Values.Sum(o => 20 + (16L * o.Chunks.Count));
        var body = new byte[bytes];
        var s = body.AsSpan();
        BinaryPrimitives.WriteInt64LittleEndian(s, Objects.Count);
        var at = 8;
        foreach (var id in Ids)
        {
            var o = Objects[id];
            BinaryPrimitives.WriteUInt64LittleEndian(s[at..], id);
            BinaryPrimitives.WriteInt64LittleEndian(s[(at + 8)..], o.Size);
            BinaryPrimitives.WriteInt32LittleEndian(s[(at + 16)..], o.Chunks.Count);
            at += 20;
            foreach (var (index, chunk) in o.Chunks)
            {
                BinaryPrimitives.WriteInt64LittleEndian(s[at..], index);
                BinaryPrimitives.WriteInt64LittleEndian(s[(at + 8)..], chunk);
                at += 16;
            }
        }

        return body;
    }

    public void Load(ReadOnlySpan<byte> body)
    {
        var count = BinaryPrimitives.ReadInt64LittleEndian(body);
        var at = 8;
        for (long i = 0; i < count; i++)
        {
            var o = GetOrCreate(BinaryPrimitives.ReadUInt64LittleEndian(body[at..]));
            o.Size = BinaryPrimitives.ReadInt64LittleEndian(body[(at + 8)..]);
            var chunks = BinaryPrimitives.ReadInt32LittleEndian(body[(at + 16)..]);
            at += 20;
            for (var c = 0; c < chunks; c++)
            {
                Map(o, BinaryPrimitives.ReadInt64LittleEndian(body[at..]), BinaryPrimitives.ReadInt64LittleEndian(body[(at + 8)..]), reserved: false);
                at += 16;
            }
        }
    }

    private void MarkUsed(long chunk)
    {
        _used[chunk >> 6] |= 1UL << (int)(chunk & 63);
        UsedChunks++;
    }

    private void Release(long chunk, List<long>? freed)
    {
        _owners.Remove(chunk);
        if (freed is null)
        {
            Free(chunk);
        }
        else
        {
            // Still marked used: it becomes free only once the record that freed it is durable.
            freed.Add(chunk);
        }
    }
}
