using System.Buffers;
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Common.Storage;

namespace ParaFS.Ost.Backends.Block;

/// <summary>
/// The `block` backend: objects kept directly on a raw block address space (a file or device with
/// O_DIRECT, or an NVMe namespace through ParaFS's NVMe/TCP host), with no file system under it.
/// <list type="bullet">
/// <item>Space is handed out in chunks (128 KiB by default); an object maps its chunk indexes to
/// device chunks. A chunk never written reads as zeros and takes no space.</item>
/// <item>New data goes to a chunk that is not in any map yet; the map entry is made (and journaled)
/// only after the data is on the device, and the journal is written only after a device flush,
/// so a crash can never leave a map pointing at bytes that were not written there.</item>
/// <item>A freed chunk is reused only after the record that freed it is durable and no read or
/// write that started before it is still running.</item>
/// <item>Sync = device flush, then the journal blocks, then a flush (group commit). A full journal
/// becomes a checkpoint (<see cref="BlockJournal"/>).</item>
/// </list>
/// </summary>
public sealed class BlockBackend : IObjectBackend
{
    public const string BackendName = "block";

    /// <summary>Records that make a flush happen without waiting for a sync or the timer.</summary>
    private const int FlushAtRecords = 8192;

    private readonly IBlockDevice _device;
    private readonly BlockFormat _format;
    private readonly BlockJournal _journal;
    private readonly BlockIndex _index;
    private readonly ILogger _logger;
    private readonly string _label;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _flushLock = new(1, 1);
    private readonly ConcurrentDictionary<long, byte> _active = new();
    private readonly List<(long Chunk, long Ticket)> _quarantine = [];
    private readonly Timer _flusher;

    /// <summary>
    /// Writes to the same chunk of an object go one at a time (a new chunk is taken once; a partial
    /// block is read, changed and written back whole); writes to other chunks go in parallel.
    /// </summary>
    private readonly SemaphoreSlim[] _chunkLocks = [.. Enumerable.Range(0, 256).Select(_ => new SemaphoreSlim(1, 1))];
    private List<JournalRecord> _pending = [];
    private List<long> _freedSinceFlush = [];
    private long _tickets;
    private int _disposed;

    private BlockBackend(string name, IBlockDevice device, BlockFormat format, BlockJournal journal, BlockIndex index, string label, ILogger logger)
    {
        Name = name;
        _device = device;
        _format = format;
        _journal = journal;
        _index = index;
        _label = label;
        _logger = logger;
        _flusher = new Timer(_ => _ = FlushInBackgroundAsync(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public string Name { get; }

    public BlockFormat Format => _format;

    /// <summary>What a device holds, without changing it: null for a blank (or foreign) device.</summary>
    public static async Task<BlockFormat?> PeekAsync(IBlockDevice device, CancellationToken cancellationToken)
    {
        var block = new byte[BlockFormat.MetadataBlock];
        await device.ReadAsync(0, block, cancellationToken).ConfigureAwait(false);
        return BlockFormat.Decode(block, device.Description);
    }

    /// <summary>
    /// Opens the store on <paramref name="device"/> for the given target, formatting a blank device.
    /// A device formatted for another file system or target is refused. Takes ownership of the device.
    /// </summary>
    public static async Task<BlockBackend> OpenAsync(
        string name, IBlockDevice device, string fsId, string fsName, uint targetId, string pool, ILogger logger, CancellationToken cancellationToken = default)
    {
        var label = $"target {targetId} (pool {pool})";
        try
        {
            var format = await PeekAsync(device, cancellationToken).ConfigureAwait(false);
            BlockJournal journal;
            if (format is null)
            {
                format = BlockFormat.Create(device.SizeBytes, device.BlockSize, fsId, fsName, targetId, pool);
                journal = new BlockJournal(device, format);
                await journal.FormatAsync(cancellationToken).ConfigureAwait(false);
                var superblock = format.Encode();
                await device.WriteAsync(BlockFormat.MetadataBlock, superblock, cancellationToken).ConfigureAwait(false);
                await device.WriteAsync(0, superblock, cancellationToken).ConfigureAwait(false);
                await device.FlushAsync(cancellationToken).ConfigureAwait(false);
                Log.BlockFormatted(logger, device.Description, label, format.ChunkCount, format.ChunkSize);
            }
            else
            {
                CheckIdentity(format, device, fsId, targetId, pool);
                journal = new BlockJournal(device, format);
            }

            var index = new BlockIndex(format.ChunkCount);
            var replayed = await journal.ReplayAsync(index, cancellationToken).ConfigureAwait(false);
            foreach (var problem in index.Problems)
            {
                Log.BlockProblem(logger, device.Description, problem);
            }

            Log.BlockOpened(logger, device.Description, label, index.Objects.Count, index.UsedChunks, format.ChunkCount, replayed);
            return new BlockBackend(name, device, format, journal, index, label, logger);
        }
        catch
        {
            await device.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The refusal of a device formatted for another file system, target or pool.</summary>
    public static void CheckIdentity(BlockFormat format, IBlockDevice device, string fsId, uint targetId, string pool)
    {
        if (format.FsId != fsId || format.TargetId != targetId)
        {
            var fs = format.FsName.Length > 0 ? $"{format.FsId} ({format.FsName})" : format.FsId;
            throw new StartupException(
                $"{device.Description} is already formatted as target {format.TargetId} of file system {fs}, not target {targetId} of {fsId}; "
                + "give this target its own device (or wipe the first 8 KiB of this one if its data is no longer wanted)");
        }

        if (format.Pool != pool)
        {
            throw new StartupException($"{device.Description} is target {format.TargetId} of pool {format.Pool}; start it with --pool {format.Pool}");
        }
    }

    public async ValueTask<long> WriteAsync(ulong objectId, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "write", offset, data.Length);
        var ticket = Enter();
        try
        {
            var o = (await LockObjectAsync(objectId, create: true, exclusive: false, cancellationToken).ConfigureAwait(false))!;
            long size;
            var stripes = ChunkStripes(objectId, offset, data.Length);
            var held = 0;
            try
            {
                for (; held < stripes.Length; held++)
                {
                    await _chunkLocks[stripes[held]].WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                if (!data.IsEmpty)
                {
                    await WriteChunksAsync(o, offset, data, cancellationToken).ConfigureAwait(false);
                }

                lock (_lock)
                {
                    if (offset + data.Length > o.Size)
                    {
                        o.Size = offset + data.Length;
                        _pending.Add(new JournalRecord(RecordType.Size, objectId, o.Size));
                    }

                    size = o.Size;
                }
            }
            finally
            {
                for (var i = 0; i < held; i++)
                {
                    _chunkLocks[stripes[i]].Release();
                }

                o.Gate.ExitShared();
            }

            await FlushIfLargeAsync(cancellationToken).ConfigureAwait(false);
            return size;
        }
        finally
        {
            Leave(ticket);
        }
    }

    public async ValueTask<ObjectRead> ReadAsync(ulong objectId, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "read", offset, destination.Length);
        var ticket = Enter();
        try
        {
            long size;
            int length;
            long[] map;
            var chunk = _format.ChunkSize;
            lock (_lock)
            {
                if (!_index.Objects.TryGetValue(objectId, out var o))
                {
                    return new ObjectRead(0, 0, false);
                }

                size = o.Size;
                length = (int)Math.Clamp(size - offset, 0, destination.Length);
                if (length == 0)
                {
                    return new ObjectRead(0, size, true);
                }

                var first = offset / chunk;
                map = new long[((offset + length - 1) / chunk) - first + 1];
                for (var i = 0; i < map.Length; i++)
                {
                    map[i] = o.Chunks.TryGetValue(first + i, out var d) ? d : -1;
                }
            }

            var firstChunk = offset / chunk;
            for (var i = 0; i < map.Length; i++)
            {
                var start = Math.Max(offset, (firstChunk + i) * chunk);
                var end = Math.Min(offset + length, (firstChunk + i + 1) * chunk);
                var piece = destination.Slice((int)(start - offset), (int)(end - start));
                if (map[i] < 0)
                {
                    piece.Span.Clear();
                }
                else
                {
                    await ReadRangeAsync(_format.ChunkOffset(map[i]) + (start % chunk), piece, cancellationToken).ConfigureAwait(false);
                }
            }

            return new ObjectRead(length, size, true);
        }
        finally
        {
            Leave(ticket);
        }
    }

    public async ValueTask PunchAsync(ulong objectId, long offset, long length, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "punch", offset, length);
        var ticket = Enter();
        try
        {
            if (await LockObjectAsync(objectId, create: false, exclusive: true, cancellationToken).ConfigureAwait(false) is not { } o)
            {
                return;
            }

            try
            {
                // Past the end every byte is zero already: a punch that reaches the end may take the last chunk whole.
                var end = offset + length >= o.Size ? ChunkEnd(o.Size) : offset + length;
                await ClearRangeAsync(o, offset, end, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                o.Gate.ExitExclusive();
            }
        }
        finally
        {
            Leave(ticket);
        }
    }

    public async ValueTask TruncateAsync(ulong objectId, long size, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckSize(objectId, (ulong)Math.Max(0, size));
        ObjectBounds.CheckRange(objectId, "truncate", size, 0);
        var ticket = Enter();
        try
        {
            if (await LockObjectAsync(objectId, create: size > 0, exclusive: true, cancellationToken).ConfigureAwait(false) is not { } o)
            {
                return;
            }

            try
            {
                if (size < o.Size)
                {
                    // Bytes past the new end must read as zeros if the object grows again.
                    await ClearRangeAsync(o, size, ChunkEnd(o.Size), cancellationToken).ConfigureAwait(false);
                }

                lock (_lock)
                {
                    if (o.Size != size)
                    {
                        o.Size = size;
                        _pending.Add(new JournalRecord(RecordType.Size, objectId, size));
                    }
                }
            }
            finally
            {
                o.Gate.ExitExclusive();
            }
        }
        finally
        {
            Leave(ticket);
        }
    }

    public ValueTask<ObjectAttributes> GetAttributesAsync(ulong objectId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return ValueTask.FromResult(_index.Objects.TryGetValue(objectId, out var o)
                ? new ObjectAttributes(true, o.Size, (long)o.Chunks.Count * _format.ChunkSize)
                : new ObjectAttributes(false, 0, 0));
        }
    }

    /// <summary>Data is a mapped chunk (a whole chunk counts, though only part of it may have been written).</summary>
    public ValueTask<ObjectSeek> SeekAsync(ulong objectId, long offset, bool hole, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "seek", offset, 0);
        var chunk = _format.ChunkSize;
        lock (_lock)
        {
            if (!_index.Objects.TryGetValue(objectId, out var o) || offset >= o.Size)
            {
                var size = o?.Size ?? 0;
                return ValueTask.FromResult(new ObjectSeek(hole ? offset : null, size));
            }

            var index = offset / chunk;
            if (hole)
            {
                while (o.Chunks.ContainsKey(index) && (index + 1) * chunk < o.Size)
                {
                    index++;
                }

                var at = o.Chunks.ContainsKey(index) ? o.Size : Math.Max(offset, index * chunk);
                return ValueTask.FromResult(new ObjectSeek(at, o.Size));
            }

            // The chunk map is sorted: the first mapped chunk at or after the offset's.
            foreach (var mapped in o.Chunks.Keys)
            {
                if (mapped >= index)
                {
                    var at = Math.Max(offset, mapped * chunk);
                    return ValueTask.FromResult(new ObjectSeek(at < o.Size ? at : null, o.Size));
                }
            }

            return ValueTask.FromResult(new ObjectSeek(null, o.Size));
        }
    }

    public async ValueTask<bool> DeleteAsync(ulong objectId, CancellationToken cancellationToken)
    {
        if (await LockObjectAsync(objectId, create: false, exclusive: true, cancellationToken).ConfigureAwait(false) is not { } o)
        {
            return false;
        }

        try
        {
            lock (_lock)
            {
                var record = new JournalRecord(RecordType.Delete, objectId);
                _index.Apply(record, _freedSinceFlush);
                _pending.Add(record);
            }
        }
        finally
        {
            o.Gate.ExitExclusive();
        }

        return true;
    }

    public ValueTask SyncAsync(IReadOnlyCollection<ulong> objectIds, CancellationToken cancellationToken) =>
        new(FlushMetadataAsync(cancellationToken));

    public ValueTask<ObjectPage> ListAsync(ulong after, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (after == ulong.MaxValue || _index.Ids.Count == 0)
            {
                return ValueTask.FromResult(new ObjectPage([], false));
            }

            var ids = _index.Ids.GetViewBetween(after + 1, ulong.MaxValue).Take(limit + 1).ToList();
            var more = ids.Count > limit;
            return ValueTask.FromResult(new ObjectPage(more ? ids[..limit] : ids, more));
        }
    }

    public StorageUsage GetUsage()
    {
        lock (_lock)
        {
            var capacity = _format.ChunkCount * _format.ChunkSize;
            return new StorageUsage(capacity, (_format.ChunkCount - _index.UsedChunks) * _format.ChunkSize, _index.Objects.Count);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _flusher.Dispose();
        try
        {
            FlushMetadataAsync(CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (ParaFsException e)
        {
            Log.BlockFlushFailed(_logger, _device.Description, e.Message);
        }

        _device.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _flushLock.Dispose();
    }

    /// <summary>Makes every change so far durable: data (device flush), then the journal (or a checkpoint when it is full).</summary>
    public async Task FlushMetadataAsync(CancellationToken cancellationToken)
    {
        await _flushLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        List<JournalRecord> records;
        List<long> freed;
        byte[]? checkpoint = null;
        try
        {
            lock (_lock)
            {
                records = _pending;
                freed = _freedSinceFlush;
                _pending = [];
                _freedSinceFlush = [];
                var blocks = (records.Count + BlockJournal.RecordsPerBlock - 1) / BlockJournal.RecordsPerBlock;
                if (_journal.BlocksUsed + blocks > _journal.Capacity)
                {
                    // Taken now: it maps only chunks whose data is written, which the flush below makes durable.
                    checkpoint = _index.Serialize();
                }
            }

            try
            {
                await _device.FlushAsync(cancellationToken).ConfigureAwait(false);
                if (checkpoint is not null)
                {
                    await _journal.CheckpointAsync(checkpoint, cancellationToken).ConfigureAwait(false);
                }
                else if (records.Count > 0)
                {
                    await _journal.AppendAsync(records, cancellationToken).ConfigureAwait(false);
                }
            }
            catch
            {
                lock (_lock)
                {
                    _pending.InsertRange(0, records);
                    _freedSinceFlush.InsertRange(0, freed);
                }

                throw;
            }

            lock (_lock)
            {
                var ticket = Interlocked.Read(ref _tickets);
                _quarantine.AddRange(freed.Select(c => (c, ticket)));
            }

            await ReleaseQuarantinedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _flushLock.Release();
        }
    }

    /// <summary>The chunk-lock stripes a write takes, in ascending order (so two writes never wait on each other crosswise).</summary>
    private int[] ChunkStripes(ulong objectId, long offset, int length)
    {
        if (length == 0)
        {
            return [];
        }

        var first = offset / _format.ChunkSize;
        var last = (offset + length - 1) / _format.ChunkSize;
        var stripes = new HashSet<int>();
        for (var index = first; index <= last && stripes.Count < _chunkLocks.Length; index++)
        {
            stripes.Add((int)(((objectId * 0x9E3779B97F4A7C15UL) + (ulong)index) % (ulong)_chunkLocks.Length));
        }

        return [.. stripes.Order()];
    }

    /// <summary>The end of the chunk holding the last byte before <paramref name="offset"/>.</summary>
    private long ChunkEnd(long offset) => (offset + _format.ChunkSize - 1) / _format.ChunkSize * _format.ChunkSize;

    private long Enter()
    {
        var ticket = Interlocked.Increment(ref _tickets);
        _active[ticket] = 0;
        return ticket;
    }

    private void Leave(long ticket) => _active.TryRemove(ticket, out _);

    /// <summary>Freed chunks whose freeing is durable and that no older I/O can still touch go back to the free map.</summary>
    private async Task ReleaseQuarantinedAsync(CancellationToken cancellationToken)
    {
        List<long> released;
        lock (_lock)
        {
            var oldest = _active.IsEmpty ? long.MaxValue : _active.Keys.Min();
            released = [.. _quarantine.Where(q => q.Ticket < oldest).Select(q => q.Chunk)];
            _quarantine.RemoveAll(q => q.Ticket < oldest);
            released.ForEach(_index.Free);
        }

        foreach (var chunk in released)
        {
            await _device.DeallocateAsync(_format.ChunkOffset(chunk), _format.ChunkSize, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task FlushIfLargeAsync(CancellationToken cancellationToken)
    {
        bool large;
        lock (_lock)
        {
            large = _pending.Count >= FlushAtRecords;
        }

        if (large)
        {
            await FlushMetadataAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task FlushInBackgroundAsync()
    {
        bool work;
        lock (_lock)
        {
            work = _pending.Count > 0 || _freedSinceFlush.Count > 0 || _quarantine.Count > 0;
        }

        if (!work || Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            await FlushMetadataAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ParaFsException or ObjectDisposedException)
        {
            Log.BlockFlushFailed(_logger, _device.Description, e.Message);
        }
    }

    /// <summary>The object with its gate held (and still the current object of that id); null when it does not exist and <paramref name="create"/> is false.</summary>
    private async Task<BlockObject?> LockObjectAsync(ulong id, bool create, bool exclusive, CancellationToken cancellationToken)
    {
        while (true)
        {
            BlockObject? o;
            lock (_lock)
            {
                if (!_index.Objects.TryGetValue(id, out o))
                {
                    if (!create)
                    {
                        return null;
                    }

                    o = _index.GetOrCreate(id);
                    _pending.Add(new JournalRecord(RecordType.Create, id));
                }
            }

            await (exclusive ? o.Gate.EnterExclusiveAsync() : o.Gate.EnterSharedAsync()).WaitAsync(cancellationToken).ConfigureAwait(false);
            lock (_lock)
            {
                if (_index.Objects.TryGetValue(id, out var current) && current == o)
                {
                    return o;
                }
            }

            // Deleted while we waited: start again with whatever the id is now.
            if (exclusive)
            {
                o.Gate.ExitExclusive();
            }
            else
            {
                o.Gate.ExitShared();
            }
        }
    }

    /// <summary>Writes into an object's chunks, taking new device chunks for the ones it does not have (zeroed unless the write covers them).</summary>
    private async Task WriteChunksAsync(BlockObject o, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var chunk = _format.ChunkSize;
        var fresh = new List<(long Index, long Device)>();

        // Pieces that sit next to each other on the device go as one write (a run of new chunks is
        // usually contiguous: the allocator hands them out in order).
        long runDevice = -1, runStart = 0, runEnd = 0;
        try
        {
            for (var index = offset / chunk; index * chunk < offset + data.Length; index++)
            {
                var start = Math.Max(offset, index * chunk);
                var end = Math.Min(offset + data.Length, (index + 1) * chunk);
                long device;
                bool isNew;
                lock (_lock)
                {
                    isNew = !o.Chunks.TryGetValue(index, out device);
                }

                if (isNew)
                {
                    device = await ReserveAsync(cancellationToken).ConfigureAwait(false);
                    fresh.Add((index, device));
                    if (end - start < chunk)
                    {
                        await _device.WriteZeroesAsync(_format.ChunkOffset(device), chunk, cancellationToken).ConfigureAwait(false);
                    }
                }

                var at = _format.ChunkOffset(device) + (start - (index * chunk));
                if (runDevice >= 0 && runDevice + (runEnd - runStart) == at && runEnd - runStart < _device.MaxTransferBytes)
                {
                    runEnd = end;
                    continue;
                }

                if (runDevice >= 0)
                {
                    await WriteRangeAsync(runDevice, data.Slice((int)(runStart - offset), (int)(runEnd - runStart)), cancellationToken).ConfigureAwait(false);
                }

                (runDevice, runStart, runEnd) = (at, start, end);
            }

            if (runDevice >= 0)
            {
                await WriteRangeAsync(runDevice, data.Slice((int)(runStart - offset), (int)(runEnd - runStart)), cancellationToken).ConfigureAwait(false);
            }

            lock (_lock)
            {
                foreach (var (index, device) in fresh)
                {
                    _index.Map(o, index, device, reserved: true);
                    _pending.Add(new JournalRecord(RecordType.Map, o.Id, index, device));
                }
            }

            fresh.Clear();
        }
        finally
        {
            if (fresh.Count > 0)
            {
                // Failed before the map took them: never visible, straight back to the free map.
                lock (_lock)
                {
                    fresh.ForEach(f => _index.Free(f.Device));
                }
            }
        }
    }

    private async Task<long> ReserveAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            lock (_lock)
            {
                var chunk = _index.Reserve();
                if (chunk >= 0)
                {
                    return chunk;
                }
            }

            if (attempt > 0)
            {
                throw new ParaFsException(Errno.ENOSPC, $"{_label} is full: all {_format.ChunkCount} chunks of {_device.Description} are in use");
            }

            // Chunks freed but not yet released may be enough: make their freeing durable first.
            await FlushMetadataAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Makes [start, end) of an object read as zeros: whole chunks leave its map, partial ones are zeroed on the device.</summary>
    private async Task ClearRangeAsync(BlockObject o, long start, long end, CancellationToken cancellationToken)
    {
        var chunk = _format.ChunkSize;
        for (var index = start / chunk; index * chunk < end; index++)
        {
            var from = Math.Max(start, index * chunk);
            var to = Math.Min(end, (index + 1) * chunk);
            long device;
            lock (_lock)
            {
                if (!o.Chunks.TryGetValue(index, out device))
                {
                    continue;
                }

                if (to - from == chunk)
                {
                    var record = new JournalRecord(RecordType.Unmap, o.Id, index);
                    _index.Apply(record, _freedSinceFlush);
                    _pending.Add(record);
                    continue;
                }
            }

            await ZeroRangeAsync(_format.ChunkOffset(device) + (from - (index * chunk)), to - from, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ZeroRangeAsync(long deviceOffset, long length, CancellationToken cancellationToken)
    {
        var block = _device.BlockSize;
        var alignedStart = (deviceOffset + block - 1) / block * block;
        var alignedEnd = (deviceOffset + length) / block * block;
        if (alignedEnd > alignedStart)
        {
            await _device.WriteZeroesAsync(alignedStart, alignedEnd - alignedStart, cancellationToken).ConfigureAwait(false);
        }

        // The partial blocks at either end: read, clear the part, write back.
        var head = Math.Min(length, alignedStart - deviceOffset);
        if (head > 0)
        {
            await WriteRangeAsync(deviceOffset, new byte[head], cancellationToken).ConfigureAwait(false);
        }

        var tailStart = Math.Max(alignedEnd, deviceOffset + head);
        if (deviceOffset + length > tailStart)
        {
            await WriteRangeAsync(tailStart, new byte[deviceOffset + length - tailStart], cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes bytes at any device offset: aligned parts directly, a partial block by read-modify-write.</summary>
    private async Task WriteRangeAsync(long deviceOffset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var block = _device.BlockSize;
        var alignedStart = deviceOffset / block * block;
        var alignedEnd = (deviceOffset + data.Length + block - 1) / block * block;
        if (alignedStart == deviceOffset && alignedEnd == deviceOffset + data.Length)
        {
            await DeviceWriteAsync(deviceOffset, data, cancellationToken).ConfigureAwait(false);
            return;
        }

        var length = (int)(alignedEnd - alignedStart);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var memory = buffer.AsMemory(0, length);
            await _device.ReadAsync(alignedStart, memory[..block], cancellationToken).ConfigureAwait(false);
            if (length > block)
            {
                await _device.ReadAsync(alignedEnd - block, memory[(length - block)..], cancellationToken).ConfigureAwait(false);
            }

            data.CopyTo(memory[(int)(deviceOffset - alignedStart)..]);
            await DeviceWriteAsync(alignedStart, memory, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task ReadRangeAsync(long deviceOffset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        var block = _device.BlockSize;
        var alignedStart = deviceOffset / block * block;
        var alignedEnd = (deviceOffset + destination.Length + block - 1) / block * block;
        if (alignedStart == deviceOffset && alignedEnd == deviceOffset + destination.Length)
        {
            await DeviceReadAsync(deviceOffset, destination, cancellationToken).ConfigureAwait(false);
            return;
        }

        var length = (int)(alignedEnd - alignedStart);
        var buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            await DeviceReadAsync(alignedStart, buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            buffer.AsMemory((int)(deviceOffset - alignedStart), destination.Length).CopyTo(destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task DeviceWriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        for (var done = 0; done < data.Length; done += _device.MaxTransferBytes)
        {
            var length = Math.Min(_device.MaxTransferBytes, data.Length - done);
            await _device.WriteAsync(offset + done, data.Slice(done, length), cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task DeviceReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        for (var done = 0; done < destination.Length; done += _device.MaxTransferBytes)
        {
            var length = Math.Min(_device.MaxTransferBytes, destination.Length - done);
            await _device.ReadAsync(offset + done, destination.Slice(done, length), cancellationToken).ConfigureAwait(false);
        }
    }
}
