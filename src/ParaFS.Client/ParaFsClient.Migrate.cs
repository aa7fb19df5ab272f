using System.Buffers;
using System.Diagnostics;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client;

/// <summary>How a migration copies.</summary>
public sealed record MigrationOptions
{
    /// <summary>Bytes copied and compared as one unit.</summary>
    public int ChunkBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>Shared by every file of one run: limits the copy rate so training I/O keeps its latency. Null: no limit.</summary>
    public MigrationThrottle? Throttle { get; init; }

    /// <summary>For a drain: a file with no object on this target is left alone (0: every file migrates unless already on the policy's pool and layout).</summary>
    public uint AvoidTarget { get; init; }

    /// <summary>Times one chunk may be found changed under the copy before the file is given up (EAGAIN).</summary>
    public int ChunkAttempts { get; init; } = 16;

    /// <summary>Times the whole file may be started over (a truncate aborted the copy) before giving up.</summary>
    public int FileAttempts { get; init; } = 4;

    /// <summary>Told while a file waits for its open holders to switch layouts, and once more (nobody left) when the wait ends.</summary>
    public Action<HolderWait>? Waiting { get; init; }
}

/// <summary>A migration waiting before it copies or cuts over.</summary>
/// <param name="Ino">The file.</param>
/// <param name="Holders">Clients holding it open that have not switched to the new layout yet.</param>
/// <param name="RecoveryLeft">When the MDS started recently: how long clients from before its start still have to come back (their opens may not be counted yet).</param>
public readonly record struct HolderWait(ulong Ino, int Holders, TimeSpan RecoveryLeft)
{
    public bool Over => Holders == 0 && RecoveryLeft == TimeSpan.Zero;
}

public enum MigrationOutcome
{
    Migrated,

    /// <summary>The file already had the layout asked for (or no object on the drained target).</summary>
    AlreadyThere,
}

/// <summary>What one file's migration did.</summary>
/// <param name="Outcome">Migrated, or left alone because it already had the layout asked for.</param>
/// <param name="Layout">The file's layout afterwards.</param>
/// <param name="Bytes">Bytes read from the old objects to copy them (the whole chunks of holes found by SEEK_DATA are skipped, not read).</param>
/// <param name="Recopied">Chunks found changed during the copy or the verification and copied again.</param>
/// <param name="Restarts">Times the copy started over (a shrinking truncate abandoned it).</param>
/// <param name="AcknowledgementWait">How long the copy waited for clients holding the file open to switch to writing both layouts.</param>
/// <param name="CommitTime">The cut-over transaction, as the mover saw it.</param>
public sealed record MigrationResult(MigrationOutcome Outcome, Layout Layout, long Bytes, int Recopied, int Restarts, TimeSpan AcknowledgementWait, TimeSpan CommitTime);

/// <summary>A byte-rate limit shared by the files of one migration run.</summary>
public sealed class MigrationThrottle(long bytesPerSecond)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _granted;

    public long BytesPerSecond { get; } = bytesPerSecond;

    /// <summary>Waits until <paramref name="bytes"/> more fit under the rate.</summary>
    public Task TakeAsync(long bytes, CancellationToken cancellationToken)
    {
        var total = Interlocked.Add(ref _granted, bytes);
        var due = TimeSpan.FromSeconds((double)total / BytesPerSecond) - _clock.Elapsed;
        return due > TimeSpan.Zero ? Task.Delay(due, cancellationToken) : Task.CompletedTask;
    }
}

public sealed partial class ParaFsClient
{
    /// <summary>The granularity at which the first copy leaves zeros unwritten (the new objects read zeros there as holes).</summary>
    private const int ZeroBlockBytes = 64 * 1024;

    /// <summary>
    /// Moves a file's data onto the layout <paramref name="policy"/> describes (DESIGN.md, "Moving
    /// between vendors") while any client keeps using it: the MDS gives the file a pending layout,
    /// every client holding it open switches to writing both and says so, then this copies the old
    /// objects into the new ones (holes skipped), makes them durable, compares both sides chunk by
    /// chunk, byte for byte, and copies again, re-reading until stable, every chunk that differs (a
    /// write that landed during its copy), and asks the MDS to cut over. Nobody waits for the copy; the old
    /// objects are deleted by the MDS once every open holder has moved on. An interrupted
    /// migration leaves the file whole on its old layout; running it again resumes.
    /// </summary>
    public async Task<MigrationResult> MigrateAsync(Caller caller, ulong ino, LayoutPolicy policy, MigrationOptions? options = null, Action<long>? copied = null, CancellationToken cancellationToken = default)
    {
        options ??= new MigrationOptions();
        var current = (await GetStripeAsync(ino, cancellationToken).ConfigureAwait(false)).Layout
            ?? throw new ParaFsException(Errno.EINVAL, $"inode {ino} is not a regular file; only files migrate");
        if (current.Pending is null && AlreadyThere(current, policy, options.AvoidTarget))
        {
            return new MigrationResult(MigrationOutcome.AlreadyThere, current, 0, 0, 0, TimeSpan.Zero, TimeSpan.Zero);
        }

        using var window = new SemaphoreSlim(_options.PerFileRequests);

        // Three chunk buffers (copy, re-read, the new side when verifying), pooled: a run over
        // many files must not allocate them afresh for each one.
        byte[][] buffers = [ArrayPool<byte>.Shared.Rent(options.ChunkBytes), ArrayPool<byte>.Shared.Rent(options.ChunkBytes), ArrayPool<byte>.Shared.Rent(options.ChunkBytes)];
        try
        {
            return await MigrateWithAsync(caller, ino, policy, options, copied, window, buffers, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Array.ForEach(buffers, b => ArrayPool<byte>.Shared.Return(b));
        }
    }

    private async Task<MigrationResult> MigrateWithAsync(
        Caller caller, ulong ino, LayoutPolicy policy, MigrationOptions options, Action<long>? copied, SemaphoreSlim window, byte[][] buffers, CancellationToken cancellationToken)
    {

        long bytes = 0;
        var recopied = 0;
        var waited = TimeSpan.Zero;
        for (var restart = 0; ; restart++)
        {
            var begun = (await _mds.CallAsync(Methods.MdsMigrateBegin, new MigrateRequest { Caller = caller, Ino = ino, Policy = policy }, GetStripeReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false)).Layout;
            var pending = begun.Pending ?? throw new ParaFsException(Errno.EIO, $"the MDS began a migration of inode {ino} but returned no pending layout");
            var source = (Layout: begun, Map: LayoutView.MapOf(begun));
            var target = (Layout: pending, Map: LayoutView.MapOf(pending));

            var started = Stopwatch.GetTimestamp();
            await WaitForSwitchAsync(ino, begun.Generation, options.Waiting, cancellationToken).ConfigureAwait(false);
            waited += Stopwatch.GetElapsedTime(started);

            // Everything written before every holder switched is in the old objects, up to the
            // larger of the MDS's size and the objects' own extent (a size report may lag).
            var end = await CopyExtentAsync(ino, source, cancellationToken).ConfigureAwait(false);
            bytes += await CopyAllAsync(source, target, window, end, buffers, options, copied, cancellationToken).ConfigureAwait(false);

            await SyncObjectsAsync([pending], cancellationToken).ConfigureAwait(false);
            recopied += await VerifyAsync(ino, source, target, window, end, buffers, options, cancellationToken).ConfigureAwait(false);
            await SyncObjectsAsync([pending], cancellationToken).ConfigureAwait(false);

            var committing = Stopwatch.GetTimestamp();
            try
            {
                var committed = (await _mds.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = caller, Ino = ino, Generation = begun.Generation }, GetStripeReply.Parser, idempotent: false, cancellationToken).ConfigureAwait(false)).Layout;
                _cache.DropAttr(ino);
                return new MigrationResult(MigrationOutcome.Migrated, committed, bytes, recopied, restart, waited, Stopwatch.GetElapsedTime(committing));
            }
            catch (ParaFsException e) when (e.Errno == Errno.EAGAIN && restart + 1 < options.FileAttempts)
            {
                // A shrinking truncate abandoned this copy, or a client had not switched yet: again.
            }
        }
    }

    /// <summary>
    /// The first half of a migration: the file gets its pending layout and every client holding it
    /// open writes to both from now on. <see cref="MigrateAsync"/> later finishes it (copy, verify,
    /// cut-over); until then the file works as before, only its writes go twice.
    /// </summary>
    public async Task<Layout> BeginMigrationAsync(Caller caller, ulong ino, LayoutPolicy policy, CancellationToken cancellationToken = default)
    {
        var begun = (await _mds.CallAsync(Methods.MdsMigrateBegin, new MigrateRequest { Caller = caller, Ino = ino, Policy = policy }, GetStripeReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false)).Layout;
        await WaitForSwitchAsync(ino, begun.Generation, null, cancellationToken).ConfigureAwait(false);
        _cache.DropAttr(ino);
        return begun;
    }

    /// <summary>Gives up a migration in progress (the file keeps its old layout; the new objects are deleted).</summary>
    public async Task<Layout> AbortMigrationAsync(Caller caller, ulong ino, CancellationToken cancellationToken = default)
    {
        var reply = await _mds.CallAsync(Methods.MdsMigrateAbort, new MigrateRequest { Caller = caller, Ino = ino }, GetStripeReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
        _cache.DropAttr(ino);
        return reply.Layout;
    }

    /// <summary>Regular files in inode order (all, or those with an object on <paramref name="targetId"/>), for drains.</summary>
    public Task<ListFilesReply> ListFilesAsync(ulong afterIno, int limit, uint targetId = 0, CancellationToken cancellationToken = default) =>
        _mds.CallAsync(Methods.MdsListFiles, new ListFilesRequest { AfterIno = afterIno, Limit = (uint)limit, TargetId = targetId }, ListFilesReply.Parser, idempotent: true, cancellationToken);

    /// <summary>Sets a target up, draining (nothing new is placed on it) or retired. Root only.</summary>
    public Task<TargetInfo> SetTargetStateAsync(Caller caller, uint targetId, TargetState state, CancellationToken cancellationToken = default) =>
        _mds.CallAsync(Methods.SetTargetState, new SetTargetStateRequest { Caller = caller, TargetId = targetId, State = state }, TargetInfo.Parser, idempotent: true, cancellationToken);

    private static bool AlreadyThere(Layout layout, LayoutPolicy policy, uint avoidTarget)
    {
        if (avoidTarget != 0)
        {
            return layout.Objects.All(o => o.TargetId != avoidTarget) && (policy.Pool.Length == 0 || layout.Pool == policy.Pool);
        }

        return (policy.Pool.Length == 0 || layout.Pool == policy.Pool)
            && (policy.StripeSize == 0 || layout.StripeSize == policy.StripeSize)
            && (policy.StripeCount == 0 || layout.StripeCount == policy.StripeCount || (policy.StripeCount < 0 && layout.StripeCount > 0));
    }

    /// <summary>Waits until every client holding the file open writes to both layouts (the MDS repeats its callback to the others).</summary>
    private async Task WaitForSwitchAsync(ulong ino, ulong generation, Action<HolderWait>? waiting, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var reply = await _mds.CallAsync(Methods.MdsLayoutWait, new LayoutWaitRequest { Ino = ino, Generation = generation }, LayoutWaitReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
            if (reply.WaitingSessions == 0)
            {
                if (attempt > 0)
                {
                    waiting?.Invoke(new HolderWait(ino, 0, TimeSpan.Zero));
                }

                return;
            }

            // While the MDS recovers it counts one holder more: the clients that may still come back.
            var recovery = TimeSpan.FromMilliseconds(reply.RecoveryMsLeft);
            waiting?.Invoke(new HolderWait(ino, (int)reply.WaitingSessions - (recovery > TimeSpan.Zero ? 1 : 0), recovery));

            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(500, 10 << Math.Min(attempt, 6))), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>How far the file's data can reach: the MDS's size, or further where the objects already hold more.</summary>
    private async Task<long> CopyExtentAsync(ulong ino, (Layout Layout, StripeMap Map) source, CancellationToken cancellationToken)
    {
        var size = (long)(await GetAttrAsync(ino, fresh: true, cancellationToken).ConfigureAwait(false)).Attr.Size;
        var ends = await Task.WhenAll(source.Layout.Objects.Select(async (o, index) =>
        {
            var attr = await GetObjectAttrAsync(o.TargetId, o.ObjectId, cancellationToken).ConfigureAwait(false);
            return attr.Exists && attr.Size > 0 ? source.Map.FileOffset(index, (long)attr.Size - 1) + 1 : 0;
        })).ConfigureAwait(false);
        return Math.Max(size, ends.DefaultIfEmpty(0).Max());
    }

    /// <summary>
    /// The first pass: per chunk, one read and the writes of its data (<see cref="StartDataWrites"/>),
    /// the read of each chunk running while the chunk before it is written (two buffers in turn). After a chunk of
    /// zeros the old objects are asked where data starts again (SEEK_DATA), and the whole chunks
    /// of the hole before it are neither read nor written: a sparse file costs what it holds. A
    /// write that lands on the old objects while its chunk is copied may be overwritten in the new
    /// ones by the older bytes; the verification after the whole copy finds every such chunk (old
    /// and new differ) and copies it again with <see cref="CopyChunkAsync"/>. Returns the bytes
    /// read (holes skipped are not counted; <paramref name="copied"/> hears of them too, for progress).
    /// </summary>
    private async Task<long> CopyAllAsync(
        (Layout Layout, StripeMap Map) source, (Layout Layout, StripeMap Map) target, SemaphoreSlim window, long end, byte[][] buffers,
        MigrationOptions options, Action<long>? copied, CancellationToken cancellationToken)
    {
        long done = 0;
        Task writing = Task.CompletedTask;
        for (long offset = 0, turn = 0; offset < end; turn++)
        {
            var length = (int)Math.Min(options.ChunkBytes, end - offset);
            var chunk = buffers[turn & 1].AsMemory(0, length);
            try
            {
                await ReadObjectsAsync(source.Layout, source.Map, window, offset, chunk, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                // The other buffer is read into next: its write must be over first (and its failure seen).
                await writing.ConfigureAwait(false);
            }

            var write = StartDataWrites(target, window, offset, chunk, cancellationToken);
            writing = write ?? Task.CompletedTask;
            done += length;
            copied?.Invoke(length);
            offset += length;
            if (options.Throttle is { } throttle)
            {
                await throttle.TakeAsync(length, cancellationToken).ConfigureAwait(false);
            }

            if (write is null && offset < end)
            {
                var skipped = await SkipHoleAsync([source], offset, end, options.ChunkBytes, cancellationToken).ConfigureAwait(false);
                copied?.Invoke(skipped);
                offset += skipped;
            }
        }

        await writing.ConfigureAwait(false);
        return done;
    }

    /// <summary>
    /// Starts the writes of the runs of a chunk that hold data, in 64 KiB blocks: the new objects
    /// are empty, so a block of zeros left unwritten reads back the same and stays a hole. A chunk
    /// of data without such blocks goes in one write. Null when the chunk holds no data at all.
    /// </summary>
    private Task? StartDataWrites((Layout Layout, StripeMap Map) target, SemaphoreSlim window, long offset, Memory<byte> chunk, CancellationToken cancellationToken)
    {
        List<Task>? writes = null;
        var start = -1;
        for (var at = 0; ; at += ZeroBlockBytes)
        {
            var block = at < chunk.Length ? chunk.Span.Slice(at, Math.Min(ZeroBlockBytes, chunk.Length - at)) : default;
            var data = block.ContainsAnyExcept((byte)0);
            if (data && start < 0)
            {
                start = at;
            }
            else if (!data && start >= 0)
            {
                (writes ??= []).Add(WriteObjectsAsync(target.Layout, target.Map, window, offset + start, chunk[start..Math.Min(at, chunk.Length)], cancellationToken));
                start = -1;
            }

            if (at >= chunk.Length)
            {
                return writes is null ? null : Task.WhenAll(writes);
            }
        }
    }

    /// <summary>
    /// How far from <paramref name="offset"/> (a chunk boundary) whole chunks hold no data on any of
    /// <paramref name="sides"/>: up to the chunk where the nearest data starts, or to the end.
    /// </summary>
    private async Task<long> SkipHoleAsync((Layout Layout, StripeMap Map)[] sides, long offset, long end, int chunkBytes, CancellationToken cancellationToken)
    {
        var found = await Task.WhenAll(sides.Select(side => NextDataAsync(side.Layout, side.Map, offset, cancellationToken))).ConfigureAwait(false);
        var next = found.Where(f => f.HasValue).Min() ?? end;
        return Math.Max(0, Math.Min(end, next / chunkBytes * chunkBytes) - offset);
    }

    /// <summary>
    /// Copies one chunk old -> new, then reads the old chunk again: if a write landed on it
    /// meanwhile (its copy to the new objects may have come before ours), copies again.
    /// Returns how many extra copies it took.
    /// </summary>
    private async Task<int> CopyChunkAsync(
        ulong ino, (Layout Layout, StripeMap Map) source, (Layout Layout, StripeMap Map) target, SemaphoreSlim window,
        long offset, Memory<byte> first, Memory<byte> again, MigrationOptions options, CancellationToken cancellationToken)
    {
        await ReadObjectsAsync(source.Layout, source.Map, window, offset, first, cancellationToken).ConfigureAwait(false);
        for (var attempt = 0; attempt < options.ChunkAttempts; attempt++)
        {
            await WriteObjectsAsync(target.Layout, target.Map, window, offset, first, cancellationToken).ConfigureAwait(false);

            await ReadObjectsAsync(source.Layout, source.Map, window, offset, again, cancellationToken).ConfigureAwait(false);
            if (first.Span.SequenceEqual(again.Span))
            {
                return attempt;
            }

            again.CopyTo(first);
        }

        throw new ParaFsException(Errno.EAGAIN, $"inode {ino} at offset {offset} changed {options.ChunkAttempts} times while being copied; run the migration again when it is written less");
    }

    /// <summary>
    /// Compares old and new chunk by chunk, byte for byte (both sides read at once); a chunk that
    /// differs is copied again and compared again.
    /// </summary>
    private async Task<int> VerifyAsync(
        ulong ino, (Layout Layout, StripeMap Map) source, (Layout Layout, StripeMap Map) target, SemaphoreSlim window,
        long end, byte[][] buffers, MigrationOptions options, CancellationToken cancellationToken)
    {
        var recopied = 0;
        for (long offset = 0; offset < end;)
        {
            var length = (int)Math.Min(options.ChunkBytes, end - offset);
            var attempt = 0;
            while (true)
            {
                await Task.WhenAll(
                    ReadObjectsAsync(source.Layout, source.Map, window, offset, buffers[0].AsMemory(0, length), cancellationToken),
                    ReadObjectsAsync(target.Layout, target.Map, window, offset, buffers[2].AsMemory(0, length), cancellationToken)).ConfigureAwait(false);
                if (buffers[0].AsSpan(0, length).SequenceEqual(buffers[2].AsSpan(0, length)))
                {
                    break;
                }

                if (++attempt >= options.ChunkAttempts)
                {
                    throw new ParaFsException(Errno.EIO, $"inode {ino}: the copy at offset {offset} does not match its source after {attempt} attempts; the old layout is kept (run the migration again)");
                }

                recopied += 1 + await CopyChunkAsync(ino, source, target, window, offset, buffers[0].AsMemory(0, length), buffers[1].AsMemory(0, length), options, cancellationToken).ConfigureAwait(false);
            }

            var zeros = !buffers[0].AsSpan(0, length).ContainsAnyExcept((byte)0);
            offset += length;
            if (zeros && offset < end)
            {
                // Both sides read zeros here: skip the chunks where neither holds data.
                offset += await SkipHoleAsync([source, target], offset, end, options.ChunkBytes, cancellationToken).ConfigureAwait(false);
            }
        }

        return recopied;
    }
}
