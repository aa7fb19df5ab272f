using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Client;

public sealed partial class ParaFsClient
{
    /// <summary>lseek(2) whence values for holes and data (linux/fs.h).</summary>
    public const int SeekData = 3;
    public const int SeekHole = 4;

    /// <summary>O_TRUNC (asm-generic/fcntl.h).</summary>
    private const uint OpenTruncate = 0x200;

    /// <summary>The largest file offset: Linux's signed 64-bit off_t.</summary>
    public const long MaxFileSize = long.MaxValue;

    /// <summary>open(2): the MDS checks permissions and registers the handle; attributes come fresh from the MDS (close-to-open).</summary>
    public async Task<FileHandle> OpenAsync(Caller caller, ulong ino, uint flags, CancellationToken cancellationToken = default)
    {
        var truncating = (flags & OpenTruncate) != 0;
        if (truncating)
        {
            // The MDS must know how far this client wrote, or it would cut too little.
            await SettleWritesAsync(ino).ConfigureAwait(false);
            await ReportPendingAsync(ino, cancellationToken).ConfigureAwait(false);
        }

        var versions = _cache.AttrVersions();
        var reply = await _mds.CallAsync(Methods.MdsOpen, new OpenRequest { Caller = caller, Ino = ino, Flags = flags }, OpenReply.Parser, idempotent: false, cancellationToken).ConfigureAwait(false);
        if (truncating)
        {
            foreach (var other in HandlesOf(ino))
            {
                other.ResetSize((long)reply.Attr.Size);
            }
        }

        var handle = new FileHandle(reply.Handle, reply.Attr, reply.Layout ?? new Layout(), flags, _options.PerFileRequests);
        _open[handle.Handle] = handle;
        _cache.PutAttr(new AttrReply { Attr = reply.Attr, Layout = reply.Layout }, versions);
        return handle;
    }

    /// <summary>close(2)'s flush: the MDS learns the size and mtime this client wrote, so the next opener anywhere sees them.</summary>
    public async Task FlushAsync(FileHandle handle, CancellationToken cancellationToken = default)
    {
        await SettleWritesAsync(handle.Ino).ConfigureAwait(false);
        await ReportPendingAsync(handle.Ino, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The last close of a handle: reports what was written and releases the MDS handle (an unlinked file may then be deleted).</summary>
    public async Task ReleaseAsync(FileHandle handle, CancellationToken cancellationToken = default)
    {
        if (!_open.ContainsKey(handle.Handle))
        {
            return;
        }

        if (_writes.TryGetValue(handle.Ino, out var writes))
        {
            // close(2) already had its flush report errors; here the bytes only have to land.
            await writes.DrainAsync().ConfigureAwait(false);
        }

        var report = handle.PendingReport();
        handle.ReadAhead.Drop();

        // The handle stays in the open set until the MDS has closed it: if this call is the first
        // after an MDS restart, the reconnect brings the handle back before the close arrives.
        await _mds.CallAsync(Methods.MdsClose, new CloseRequest { Handle = handle.Handle, Size = report }, Empty.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
        _open.TryRemove(handle.Handle, out _);
        _cache.DropAttr(handle.Ino);
        if (!HandlesOf(handle.Ino).Any() && _writes.TryGetValue(handle.Ino, out var idle) && idle.IsIdle)
        {
            _writes.TryRemove(KeyValuePair.Create(handle.Ino, idle));
        }
    }

    /// <summary>fsync(2): every object of the file is made durable on its OST, then the MDS commits size and mtime. Any failure is returned.</summary>
    public async Task FsyncAsync(FileHandle handle, CancellationToken cancellationToken = default)
    {
        await SettleWritesAsync(handle.Ino).ConfigureAwait(false);
        await RefreshLayoutIfStaleAsync(handle, cancellationToken).ConfigureAwait(false);
        var view = handle.View;
        await SyncObjectsAsync(view.Pending is { } pending ? [view.Layout, pending] : [view.Layout], cancellationToken).ConfigureAwait(false);
        await ReportPendingAsync(handle.Ino, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads up to <paramref name="destination"/>.Length bytes at <paramref name="offset"/>, never past
    /// the file's size. Each stripe-sized piece is read from its OST in parallel, straight into the
    /// destination; holes read as zeros. Sequential readers are served from read-ahead.
    /// </summary>
    public async Task<int> ReadAsync(FileHandle handle, long offset, Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (offset < 0)
        {
            throw new ParaFsException(Errno.EINVAL, $"read of inode {handle.Ino} at negative offset {offset}");
        }

        if (_writes.TryGetValue(handle.Ino, out var writes) && !writes.IsIdle)
        {
            // Read-your-writes: what this client accepted must be on the OSTs before it is read back.
            await writes.DrainAsync().ConfigureAwait(false);
        }

        var size = handle.Size;
        if (offset + destination.Length > size)
        {
            // Another client may have grown the file since we opened it: ask once the cache expires.
            size = Math.Max(size, (long)(await GetAttrAsync(handle.Ino, cancellationToken: cancellationToken).ConfigureAwait(false)).Attr.Size);
            handle.LearnSize(size);
        }

        var length = (int)Math.Clamp(size - offset, 0, destination.Length);
        if (length == 0)
        {
            return 0;
        }

        await RefreshLayoutIfStaleAsync(handle, cancellationToken).ConfigureAwait(false);
        var target = destination[..length];
        var sequential = handle.NoteRead(offset, length);
        if (await TryReadAheadAsync(handle, offset, target).ConfigureAwait(false))
        {
            StartReadAhead(handle, offset + length, size, sequential);
            return length;
        }

        await ReadStripesAsync(handle, offset, target, cancellationToken).ConfigureAwait(false);
        StartReadAhead(handle, offset + length, size, sequential);
        return length;
    }

    /// <summary>
    /// Writes <paramref name="data"/> at <paramref name="offset"/> (the end of file with O_APPEND):
    /// split by stripes, all pieces sent in parallel, bounded by the file's and the client's windows.
    /// The size extension is reported to the MDS on fsync, flush, close, or within a second.
    /// </summary>
    public Task<int> WriteAsync(FileHandle handle, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default) =>
        WriteAsync(handle, offset, data, dataOwner: null, cancellationToken);

    /// <summary>
    /// <inheritdoc cref="WriteAsync(FileHandle, long, ReadOnlyMemory{byte}, CancellationToken)" path="/summary"/>
    /// With <paramref name="dataOwner"/>, a write-behind keeps <paramref name="data"/> itself
    /// instead of a copy (the FUSE request buffer), and the client disposes the owner once it no
    /// longer needs the bytes: after the send, or at once when the call fails or waits for its OSTs.
    /// </summary>
    /// <param name="handle">An open handle with write access.</param>
    /// <param name="offset">Where the bytes go (ignored for O_APPEND: the end of file).</param>
    /// <param name="data">The bytes; valid until <paramref name="dataOwner"/> is disposed.</param>
    /// <param name="dataOwner">Keeps <paramref name="data"/> valid until disposed; null: the client copies what it keeps.</param>
    /// <param name="cancellationToken">Cancels waiting (for room in the write-behind window, or for the OSTs).</param>
    public async Task<int> WriteAsync(FileHandle handle, long offset, ReadOnlyMemory<byte> data, IDisposable? dataOwner, CancellationToken cancellationToken)
    {
        try
        {
            return await WriteCoreAsync(handle, offset, data, dataOwner, () => dataOwner = null, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            dataOwner?.Dispose();
        }
    }

    // handedOff is called when the write-behind has taken dataOwner over (its caller then no longer disposes it).
    private async Task<int> WriteCoreAsync(FileHandle handle, long offset, ReadOnlyMemory<byte> data, IDisposable? dataOwner, Action handedOff, CancellationToken cancellationToken)
    {
        if (!handle.IsWritable)
        {
            throw new ParaFsException(Errno.EBADF, $"inode {handle.Ino} was opened read-only");
        }

        if (handle.IsAppend)
        {
            offset = await CurrentSizeAsync(handle, cancellationToken).ConfigureAwait(false);
        }

        if (offset < 0)
        {
            throw new ParaFsException(Errno.EINVAL, $"write to inode {handle.Ino} at negative offset {offset}");
        }

        if (offset > MaxFileSize - data.Length)
        {
            throw new ParaFsException(Errno.EFBIG, $"a write of {data.Length} bytes at {offset} to inode {handle.Ino} is past the largest file size");
        }

        if (data.IsEmpty)
        {
            return 0;
        }

        var writes = WritesOf(handle.Ino);
        writes.ThrowIfFailed(handle.Ino);
        await RefreshLayoutIfStaleAsync(handle, cancellationToken).ConfigureAwait(false);
        DropReadAhead(handle);
        if (!_options.WriteBehind)
        {
            // Registered like a write-behind, so a layout switch knows when it has landed.
            var landed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            writes.Begin(offset, offset + data.Length, landed.Task);
            try
            {
                await SendStripesAsync(handle, offset, data, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                writes.End(landed.Task, failure: null);
                landed.TrySetResult();
            }

            handle.Wrote(offset + data.Length, NowNs());
            return data.Length;
        }

        // Write-behind: the bytes are copied (the caller's buffer is the kernel request's), the
        // write is registered behind any overlapping one in flight, and the call returns.
        var units = (data.Length + WriteBudgetUnit - 1) / WriteBudgetUnit;
        await AcquireWriteBudgetAsync(handle, units, cancellationToken).ConfigureAwait(false);
        IDisposable keep;
        if (dataOwner is not null)
        {
            keep = dataOwner;
            handedOff();
        }
        else
        {
            var copy = RpcBuffer.Rent(data.Length);
            data.CopyTo(copy.Memory);
            keep = copy;
            data = copy.Memory[..data.Length];
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var before = writes.Begin(offset, offset + data.Length, done.Task);
        handle.Wrote(offset + data.Length, NowNs());

        // The sends start on the thread pool: the caller's reply (and its next write) need not
        // wait for the socket writes.
        ThreadPool.UnsafeQueueUserWorkItem(static s => _ = s.Client.SendBehindAsync(s.Handle, s.Writes, s.Offset, s.Data, s.Keep, s.Before, s.Done, s.Units),
            (Client: this, Handle: handle, Writes: writes, Offset: offset, Data: data, Keep: keep, Before: before, Done: done, Units: units), preferLocal: false);
        return data.Length;
    }

    /// <summary>The unit write-behind budgets are counted in.</summary>
    internal const int WriteBudgetUnit = 256 * 1024;

    private WriteBehind WritesOf(ulong ino) => _writes.GetOrAdd(ino, _ => new WriteBehind());

    /// <summary>Waits for the inode's writes in flight, then returns (once) any failure among them.</summary>
    private async Task SettleWritesAsync(ulong ino)
    {
        if (_writes.TryGetValue(ino, out var writes))
        {
            await writes.DrainAsync().ConfigureAwait(false);
            writes.ThrowIfFailed(ino);
        }
    }

    private async Task AcquireWriteBudgetAsync(FileHandle handle, int units, CancellationToken cancellationToken)
    {
        handle.WriteBudget ??= new SemaphoreSlim(Math.Max(1, _options.WriteBehindPerFileBytes / WriteBudgetUnit));
        for (var i = 0; i < units; i++)
        {
            await handle.WriteBudget.WaitAsync(cancellationToken).ConfigureAwait(false);
            await _writeBudget.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    // keep owns data (a copy, or the FUSE request buffer) and is disposed once the bytes are sent.
    private async Task SendBehindAsync(FileHandle handle, WriteBehind writes, long offset, ReadOnlyMemory<byte> data, IDisposable keep, Task[] before, TaskCompletionSource done, int units)
    {
        ParaFsException? failure = null;
        try
        {
            await Task.WhenAll(before).ConfigureAwait(false);
            await SendStripesAsync(handle, offset, data, CancellationToken.None).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            failure = e;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            failure = new ParaFsException(Errno.EIO, $"write of inode {handle.Ino} at {offset} failed: {e.Message}", e);
        }
        finally
        {
            keep.Dispose();
            handle.WriteBudget!.Release(units);
            _writeBudget.Release(units);
            writes.End(done.Task, failure);
            done.TrySetResult();
        }
    }

    /// <summary>
    /// Sends a write to the file's objects and, while the file migrates, then to the pending
    /// layout's: the old objects first, so a mover that re-reads them after copying sees every
    /// write that could still be missing from the new ones.
    /// </summary>
    private async Task SendStripesAsync(FileHandle handle, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var view = handle.View;
        await WriteObjectsAsync(view.Layout, view.Map, handle.Window, offset, data, cancellationToken).ConfigureAwait(false);
        if (view.Pending is { } pending)
        {
            await WriteObjectsAsync(pending, view.PendingMap, handle.Window, offset, data, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes file bytes at <paramref name="offset"/> to the objects of <paramref name="layout"/>, every stripe in parallel.</summary>
    private Task WriteObjectsAsync(Layout layout, StripeMap map, SemaphoreSlim window, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var objects = layout.Objects;
        return Task.WhenAll(map.Split(offset, data.Length).Select(async extent =>
        {
            var piece = data.Slice((int)(extent.FileOffset - offset), extent.Length);
            var request = new WriteRequest { ObjectId = objects[extent.ObjectIndex].ObjectId, Offset = (ulong)extent.ObjectOffset };
            await WithWindowAsync(window, async () =>
            {
                using var reply = await _objects.CallAsync(objects[extent.ObjectIndex].TargetId, Methods.OstWrite, request, piece, default, cancellationToken).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
        }));
    }

    /// <summary>Makes every object of <paramref name="layouts"/> durable on its OST.</summary>
    private Task SyncObjectsAsync(IEnumerable<Layout> layouts, CancellationToken cancellationToken) =>
        Task.WhenAll(layouts.SelectMany(l => l.Objects).GroupBy(o => o.TargetId).Select(async group =>
        {
            var request = new SyncRequest();
            request.ObjectIds.AddRange(group.Select(o => o.ObjectId).Distinct());
            using var reply = await _objects.CallAsync(group.Key, Methods.OstSync, request, default, default, cancellationToken).ConfigureAwait(false);
        }));

    /// <summary>fallocate(PUNCH_HOLE | KEEP_SIZE): the range reads as zeros afterwards and its space is freed on the OSTs.</summary>
    public async Task PunchHoleAsync(FileHandle handle, long offset, long length, CancellationToken cancellationToken = default)
    {
        if (offset < 0 || length <= 0 || offset > MaxFileSize - length)
        {
            throw new ParaFsException(Errno.EINVAL, $"punch of inode {handle.Ino}: offset {offset} and length {length} are not a valid range");
        }

        await SettleWritesAsync(handle.Ino).ConfigureAwait(false);
        await RefreshLayoutIfStaleAsync(handle, cancellationToken).ConfigureAwait(false);
        DropReadAhead(handle);

        // Per object, the punched pieces are contiguous in object space except across rows; merge
        // what is adjacent so a large punch is one call per object and row run.
        var size = await CurrentSizeAsync(handle, cancellationToken).ConfigureAwait(false);
        var punched = Math.Min(length, Math.Max(0, size - offset));
        var writes = WritesOf(handle.Ino);
        var landed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        writes.Begin(offset, offset + punched, landed.Task);
        var view = handle.View;
        try
        {
            await PunchObjectsAsync(view.Layout, view.Map, offset, punched, cancellationToken).ConfigureAwait(false);
            if (view.Pending is { } pending)
            {
                await PunchObjectsAsync(pending, view.PendingMap, offset, punched, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            writes.End(landed.Task, failure: null);
            landed.TrySetResult();
        }

        handle.Wrote(0, NowNs());
    }

    private Task PunchObjectsAsync(Layout layout, StripeMap map, long offset, long length, CancellationToken cancellationToken)
    {
        var objects = layout.Objects;
        return Task.WhenAll(PunchRanges(map, offset, length).Select(async p =>
        {
            var request = new PunchRequest { ObjectId = objects[p.ObjectIndex].ObjectId, Offset = (ulong)p.Offset, Length = (ulong)p.Length };
            using var reply = await _objects.CallAsync(objects[p.ObjectIndex].TargetId, Methods.OstPunch, request, default, default, cancellationToken).ConfigureAwait(false);
        }));
    }

    /// <summary>
    /// lseek SEEK_DATA / SEEK_HOLE. Each object of the layout is asked (in parallel) for its next
    /// data or hole past the point where the file offset falls in it, and the answers are mapped
    /// back to file offsets: the nearest wins. RAID-0 maps an object's bytes to file offsets in
    /// order, so the first data (or hole) of an object after that point is the first of the file
    /// that the object holds. The end of file is a hole; what this client wrote and has not yet
    /// sent counts once it lands (the writes are drained first). An OST older than the call
    /// (ENOSYS) is taken to hold data throughout, as Linux answers for a file system without holes.
    /// </summary>
    public async Task<long> SeekAsync(FileHandle handle, long offset, int whence, CancellationToken cancellationToken = default)
    {
        if (whence is not (SeekData or SeekHole))
        {
            throw new ParaFsException(Errno.EINVAL, $"whence {whence} is not SEEK_DATA or SEEK_HOLE");
        }

        if (_writes.TryGetValue(handle.Ino, out var writes) && !writes.IsIdle)
        {
            await writes.DrainAsync().ConfigureAwait(false);
        }

        var size = await CurrentSizeAsync(handle, cancellationToken).ConfigureAwait(false);
        if (offset < 0 || offset >= size)
        {
            throw new ParaFsException(Errno.ENXIO, $"offset {offset} is at or past the end of inode {handle.Ino} ({size} bytes)");
        }

        await RefreshLayoutIfStaleAsync(handle, cancellationToken).ConfigureAwait(false);
        var view = handle.View;
        var hole = whence == SeekHole;
        var nearest = await SeekLayoutAsync(view.Layout, view.Map, offset, hole, cancellationToken).ConfigureAwait(false);

        if (hole)
        {
            return Math.Min(nearest ?? size, size);
        }

        return nearest is { } data && data < size
            ? data
            : throw new ParaFsException(Errno.ENXIO, $"inode {handle.Ino} holds no data at or after offset {offset} (size {size})");
    }

    /// <summary>The file offset where the layout's next data starts at or after <paramref name="offset"/>; null: none.</summary>
    private Task<long?> NextDataAsync(Layout layout, StripeMap map, long offset, CancellationToken cancellationToken) =>
        SeekLayoutAsync(layout, map, offset, hole: false, cancellationToken);

    /// <summary>The nearest of every object's next data (or hole), as a file offset; null: no object has one.</summary>
    private async Task<long?> SeekLayoutAsync(Layout layout, StripeMap map, long offset, bool hole, CancellationToken cancellationToken)
    {
        var objects = layout.Objects;
        if (objects.Count == 0 || map.StripeCount == 0)
        {
            return null;
        }

        var found = await Task.WhenAll(Enumerable.Range(0, Math.Min(objects.Count, map.StripeCount))
            .Select(k => SeekObjectAsync(objects[k], map, k, offset, hole, cancellationToken))).ConfigureAwait(false);
        return found.Where(f => f.HasValue).Min();
    }

    /// <summary>The file offset of object <paramref name="index"/>'s next data or hole at or after file offset <paramref name="offset"/>; null: none.</summary>
    private async Task<long?> SeekObjectAsync(StripeObject entry, StripeMap map, int index, long offset, bool hole, CancellationToken cancellationToken)
    {
        var (holding, at) = map.Locate(offset);
        var rowStart = at / map.StripeSize * map.StripeSize;

        // The first byte of this object at or after the offset: in the offset's own stripe row if
        // the object comes after the one holding the offset, in the next row if it comes before.
        var from = index == holding ? at : index > holding ? rowStart : rowStart + map.StripeSize;
        try
        {
            var request = new SeekRequest { ObjectId = entry.ObjectId, Offset = (ulong)from, Hole = hole };
            using var reply = await _objects.CallAsync(entry.TargetId, Methods.OstSeek, request, default, default, cancellationToken).ConfigureAwait(false);
            var found = reply.ParseMessage(SeekReply.Parser);
            return found.Found ? map.FileOffset(index, (long)found.Offset) : null;
        }
        catch (RpcException e) when (e.Errno == Errno.ENOSYS)
        {
            return hole ? null : map.FileOffset(index, from);
        }
    }

    /// <summary>
    /// The file's size now: what the MDS has (other handles of this client may have reported more
    /// since this one opened, and then closed) and what this client's open handles wrote.
    /// </summary>
    private async Task<long> CurrentSizeAsync(FileHandle handle, CancellationToken cancellationToken)
    {
        var attr = await GetAttrAsync(handle.Ino, cancellationToken: cancellationToken).ConfigureAwait(false);
        // GetAttrAsync folds in every open handle of this client; this one may already be closing.
        return Math.Max((long)attr.Attr.Size, handle.Size);
    }

    private static long NowNs() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    private static List<(int ObjectIndex, long Offset, long Length)> PunchRanges(StripeMap map, long offset, long length)
    {
        var ranges = new List<(int ObjectIndex, long Offset, long Length)>();
        var last = new Dictionary<int, int>();
        foreach (var extent in map.Split(offset, length))
        {
            if (last.TryGetValue(extent.ObjectIndex, out var at) && ranges[at].Offset + ranges[at].Length == extent.ObjectOffset)
            {
                ranges[at] = (extent.ObjectIndex, ranges[at].Offset, ranges[at].Length + extent.Length);
                continue;
            }

            last[extent.ObjectIndex] = ranges.Count;
            ranges.Add((extent.ObjectIndex, extent.ObjectOffset, extent.Length));
        }

        return ranges;
    }

    private Task ReadStripesAsync(FileHandle handle, long offset, Memory<byte> target, CancellationToken cancellationToken)
    {
        var view = handle.View;
        return ReadObjectsAsync(view.Layout, view.Map, handle.Window, offset, target, cancellationToken);
    }

    /// <summary>Reads file bytes at <paramref name="offset"/> from the objects of <paramref name="layout"/>, every stripe in parallel; what no object holds reads as zeros.</summary>
    private Task ReadObjectsAsync(Layout layout, StripeMap map, SemaphoreSlim window, long offset, Memory<byte> target, CancellationToken cancellationToken)
    {
        var objects = layout.Objects;
        return Task.WhenAll(map.Split(offset, target.Length).Select(async extent =>
        {
            var piece = target.Slice((int)(extent.FileOffset - offset), extent.Length);
            var request = new ReadRequest { ObjectId = objects[extent.ObjectIndex].ObjectId, Offset = (ulong)extent.ObjectOffset, Length = (uint)extent.Length };
            await WithWindowAsync(window, async () =>
            {
                using var reply = await _objects.CallAsync(objects[extent.ObjectIndex].TargetId, Methods.OstRead, request, default, piece, cancellationToken).ConfigureAwait(false);
                var got = Math.Min(reply.Payload.Length, piece.Length);
                if (!reply.PayloadInDestination)
                {
                    reply.Payload.Span[..got].CopyTo(piece.Span);
                }

                // Past the end of an object (a hole at its tail, or never written) reads as zeros.
                piece.Span[got..].Clear();
            }, cancellationToken).ConfigureAwait(false);
        }));
    }

    private async Task WithWindowAsync(SemaphoreSlim window, Func<Task> call, CancellationToken cancellationToken)
    {
        await window.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _globalWindow.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await call().ConfigureAwait(false);
            }
            finally
            {
                _globalWindow.Release();
            }
        }
        finally
        {
            window.Release();
        }
    }

    private async Task RefreshLayoutIfStaleAsync(FileHandle handle, CancellationToken cancellationToken)
    {
        if (handle.LayoutStale)
        {
            var reply = await GetAttrAsync(handle.Ino, fresh: true, cancellationToken).ConfigureAwait(false);
            handle.SetLayout(reply.Layout ?? new Layout());
            DropReadAhead(handle);
        }
    }

    private async Task<bool> TryReadAheadAsync(FileHandle handle, long offset, Memory<byte> target)
    {
        if (handle.ReadAhead.Find(offset, target.Length) is not { } window)
        {
            return false;
        }

        try
        {
            var valid = await window.Filled.ConfigureAwait(false);
            var start = (int)(offset - window.Start);
            if (start + target.Length > valid)
            {
                return false;
            }

            window.Memory.Slice(start, target.Length).CopyTo(target);
            handle.ReadAhead.NoteServed();
            return true;
        }
        finally
        {
            window.Release();
        }
    }

    /// <summary>
    /// After two reads in a row that continue each other, fetches the next rows of stripes from
    /// every target at once, within the memory budget, while less than half a window is ahead.
    /// </summary>
    private void StartReadAhead(FileHandle handle, long from, long size, int sequential)
    {
        if (sequential < 2 || from >= size || handle.Map.StripeCount == 0 || _options.ReadAheadRows <= 0)
        {
            return;
        }

        var row = (long)handle.Map.StripeSize * handle.Map.StripeCount;
        var windowBytes = (int)Math.Min(row * _options.ReadAheadRows, int.MaxValue / 2);
        var start = handle.ReadAhead.NextStart(from, windowBytes);
        var length = start < 0 ? 0 : (int)Math.Min(windowBytes, size - start);
        if (length <= 0)
        {
            return;
        }

        if (Interlocked.Add(ref _readAheadBytes, length) > _options.ReadAheadMemory)
        {
            Interlocked.Add(ref _readAheadBytes, -length);
            return;
        }

        var next = new ReadAheadBuffer(start, length, bytes => Interlocked.Add(ref _readAheadBytes, -bytes));
        next.Filled = FillAsync(handle, next);
        handle.ReadAhead.Add(next);
    }

    private async Task<int> FillAsync(FileHandle handle, ReadAheadBuffer window)
    {
        try
        {
            await ReadStripesAsync(handle, window.Start, window.Memory, CancellationToken.None).ConfigureAwait(false);
            return window.Length;
        }
        catch (ParaFsException)
        {
            // A failed read-ahead is not an error: the reader reads for itself and sees the error then.
            return 0;
        }
    }

    private static void DropReadAhead(FileHandle handle) => handle.ReadAhead.Drop();
}
