using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;
using ParaFS.Common;
using ParaFS.Common.Interop;
using ParaFS.Common.Storage;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Backends.Dir;

/// <summary>
/// The <c>dir</c> backend: one file per object under a local file system (XFS or ext4 on a
/// kernel-attached namespace, typically). Reads and writes are positional (pread/pwrite through
/// <see cref="RandomAccess"/>) on cached handles, so operations on different ranges of one
/// object, and on different objects, run in parallel with no lock on the data path.
/// </summary>
public sealed class DirBackend : IObjectBackend, IFileObjectBackend
{
    public const string BackendName = "dir";

    /// <summary>Zeros for targets whose file system cannot punch holes.</summary>
    private static readonly byte[] Zeros = new byte[64 * 1024];

    /// <summary>How long a listing's snapshot serves its later pages (fsck asks for them back to back).</summary>
    private static readonly TimeSpan ListingLifetime = TimeSpan.FromMinutes(2);

    private readonly ObjectPaths _paths;

    /// <summary>The sorted ids of the last listing's walk, while it has pages left.</summary>
    private Listing? _listing;
    private long _walks;
    private readonly OpenObjectCache _open;
    private readonly string _target;
    private readonly ILogger _logger;

    /// <summary>Objects written since their last sync; true when the write created the object.</summary>
    private readonly ConcurrentDictionary<ulong, bool> _unsynced = new();

    private long _objects;
    private int _punchUnsupported;

    private DirBackend(string dataDirectory, string target, int openObjectLimit, ILogger logger)
    {
        DataDirectory = dataDirectory;
        _paths = new ObjectPaths(dataDirectory);
        _open = new OpenObjectCache(_paths, openObjectLimit);
        _target = target;
        _logger = logger;
    }

    public string Name => BackendName;

    public string DataDirectory { get; }

    /// <summary>Object files open in the handle cache now.</summary>
    public int OpenObjects => _open.Count;

    /// <summary>Writes that went to the device with O_DIRECT (for tests and diagnostics).</summary>
    internal long DirectWrites => Interlocked.Read(ref _directWrites);

    /// <summary>
    /// Opens the objects of a formatted data directory. <paramref name="target"/> names it in
    /// messages ("target 3 (pool fast)"). Whatever a previous process left unsynced is made durable
    /// first (syncfs), so from here on this process knows every object whose creation is not.
    /// </summary>
    public static DirBackend Open(string dataDirectory, string target, int openObjectLimit = 1024, ILogger? logger = null)
    {
        var backend = new DirBackend(dataDirectory, target, openObjectLimit, logger ?? NullLogger.Instance);
        Directory.CreateDirectory(backend._paths.Root);
        using (var root = Libc.OpenDirectory(backend._paths.Root))
        {
            if (Libc.Syncfs(root) != 0)
            {
                throw Libc.Failure(Libc.LastErrno, $"syncfs of {dataDirectory}");
            }
        }

        backend._objects = backend.EnumerateObjects().LongCount();
        Log.ObjectsCounted(backend._logger, backend._objects, dataDirectory);
        return backend;
    }

    /// <summary>Writes at least this large start their writeback at once (sync_file_range).</summary>
    private const int EarlyWritebackBytes = 256 * 1024;

    /// <summary>Writes at least this large, page aligned in the object and in memory, bypass the page cache (O_DIRECT).</summary>
    private const int DirectWriteBytes = 256 * 1024;

    /// <summary>Set when the data directory's file system refuses O_DIRECT (tmpfs): every write is buffered then.</summary>
    private int _directUnsupported;
    private long _directWrites;

    /// <summary>
    /// A large write that is page aligned in the object and in memory goes to the device with
    /// O_DIRECT: no copy into the page cache, no writeback later, and the fsync at the end has only
    /// the device flush and the size left to do. The kernel keeps buffered readers of the object
    /// coherent (it drops the cached pages of the range). False when the write must be buffered.
    /// </summary>
    private bool TryWriteDirect(ObjectLease lease, ulong objectId, long offset, ReadOnlyMemory<byte> data)
    {
        if (data.Length < DirectWriteBytes || offset % AlignedBuffers.Page != 0 || Volatile.Read(ref _directUnsupported) != 0)
        {
            return false;
        }

        // Held until the write is done: an array that is not pinned could move after the check.
        using var pin = data.Pin();
        if (!AlignedBuffers.IsPageAligned(pin, data.Length))
        {
            return false;
        }

        SafeFileHandle direct;
        try
        {
            direct = lease.Direct;
        }
        catch (ParaFsException e)
        {
            if (e.Errno == Errno.EINVAL)
            {
                Volatile.Write(ref _directUnsupported, 1);
                Log.DirectIoUnsupported(_logger, _target, e.Message);
            }

            return false;
        }

        var span = data.Span;
        var done = 0;
        while (done < span.Length)
        {
            var n = Libc.PwriteHandle(direct, span[done..], span.Length - done, offset + done);
            if (n <= 0)
            {
                var errno = n < 0 ? Libc.LastErrno : Errno.EIO;
                if (errno == Errno.EINTR)
                {
                    continue;
                }

                if (errno is Errno.ENOSPC or Errno.EDQUOT)
                {
                    throw Full($"writing {data.Length} bytes at {offset} of object {objectId}", Libc.Failure(errno, "direct write"));
                }

                throw Libc.Failure(errno, $"direct write of {data.Length} bytes at {offset} of object {objectId} on {_target}");
            }

            done += (int)n;
        }

        Interlocked.Increment(ref _directWrites);
        return true;
    }

    public ValueTask<long> WriteAsync(ulong objectId, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "write", offset, data.Length);
        try
        {
            using var lease = _open.Open(objectId, create: true);
            if (lease.Created)
            {
                Interlocked.Increment(ref _objects);
            }

            MarkUnsynced(objectId, lease.Created);
            if (!TryWriteDirect(lease, objectId, offset, data))
            {
                RandomAccess.Write(lease.File, data.Span, offset);
                if (data.Length >= EarlyWritebackBytes)
                {
                    // Streaming writes start their writeback now, so the device works while the
                    // client sends more and the fsync at the end finds little left to do. Only a
                    // hint: a failure here changes nothing, fdatasync reports real errors.
                    _ = Libc.SyncFileRange(lease.File, offset, data.Length, Libc.SyncFileRangeWrite);
                }
            }

            return ValueTask.FromResult(RandomAccess.GetLength(lease.File));
        }
        catch (IOException e) when (IsNoSpace(e))
        {
            throw Full($"writing {data.Length} bytes at {offset} of object {objectId}", e);
        }
    }

    public ValueTask<ObjectRead> ReadAsync(ulong objectId, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "read", offset, destination.Length);
        using var lease = _open.Open(objectId, create: false);
        if (!lease.IsOpen)
        {
            return ValueTask.FromResult(new ObjectRead(0, 0, false));
        }

        var size = RandomAccess.GetLength(lease.File);
        var wanted = (int)Math.Clamp(size - offset, 0, destination.Length);
        var span = destination.Span;
        var done = 0;
        while (done < wanted)
        {
            // Short only when a concurrent truncate moved the end: what was read is the answer.
            var n = RandomAccess.Read(lease.File, span[done..wanted], offset + done);
            if (n == 0)
            {
                break;
            }

            done += n;
        }

        return ValueTask.FromResult(new ObjectRead(done, size, true));
    }

    public ObjectFileRange OpenRange(ulong objectId, long offset, int length)
    {
        ObjectBounds.CheckRange(objectId, "read", offset, length);
        var lease = _open.Open(objectId, create: false);
        if (!lease.IsOpen)
        {
            return new ObjectFileRange(null, 0, false);
        }

        try
        {
            var size = RandomAccess.GetLength(lease.File);
            var wanted = (int)Math.Clamp(size - offset, 0, length);
            if (wanted == 0)
            {
                lease.Dispose();
                return new ObjectFileRange(null, size, true);
            }

            return new ObjectFileRange(new FilePayload(lease.File, offset, wanted, lease), size, true);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    public ValueTask PunchAsync(ulong objectId, long offset, long length, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "punch", offset, length);
        if (length == 0)
        {
            return ValueTask.CompletedTask;
        }

        using var lease = _open.Open(objectId, create: false);
        if (!lease.IsOpen)
        {
            return ValueTask.CompletedTask;
        }

        MarkUnsynced(objectId, created: false);
        if (Volatile.Read(ref _punchUnsupported) == 0)
        {
            if (Libc.Fallocate(lease.File, Libc.FallocFlPunchHole | Libc.FallocFlKeepSize, offset, length) == 0)
            {
                return ValueTask.CompletedTask;
            }

            var errno = Libc.LastErrno;
            if (errno != Errno.EOPNOTSUPP)
            {
                throw Libc.Failure(errno, $"punching [{offset}, {offset + length}) of object {objectId} on {_target}");
            }

            if (Interlocked.Exchange(ref _punchUnsupported, 1) == 0)
            {
                Log.PunchUnsupported(_logger, DataDirectory);
            }
        }

        WriteZeros(lease.File, objectId, offset, Math.Min(offset + length, RandomAccess.GetLength(lease.File)));
        return ValueTask.CompletedTask;
    }

    public ValueTask TruncateAsync(ulong objectId, long size, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "truncate", size, 0);
        try
        {
            using var lease = _open.Open(objectId, create: size > 0);
            if (!lease.IsOpen)
            {
                return ValueTask.CompletedTask;
            }

            if (lease.Created)
            {
                Interlocked.Increment(ref _objects);
            }

            MarkUnsynced(objectId, lease.Created);
            RandomAccess.SetLength(lease.File, size);
            return ValueTask.CompletedTask;
        }
        catch (IOException e) when (IsNoSpace(e))
        {
            throw Full($"truncating object {objectId} to {size} bytes", e);
        }
    }

    public ValueTask<ObjectAttributes> GetAttributesAsync(ulong objectId, CancellationToken cancellationToken)
    {
        var path = _paths.File(objectId);
        if (Libc.StatxPath(Libc.AtFdCwd, path, 0, Libc.StatxSize | Libc.StatxBlocks, out var stat) != 0)
        {
            var errno = Libc.LastErrno;
            return errno == Errno.ENOENT
                ? ValueTask.FromResult(new ObjectAttributes(false, 0, 0))
                : throw Libc.Failure(errno, $"statx of object {objectId} on {_target} ({path})");
        }

        return ValueTask.FromResult(new ObjectAttributes(true, (long)stat.Size, (long)stat.Blocks * 512));
    }

    public ValueTask<ObjectSeek> SeekAsync(ulong objectId, long offset, bool hole, CancellationToken cancellationToken)
    {
        ObjectBounds.CheckRange(objectId, "seek", offset, 0);
        using var lease = _open.Open(objectId, create: false);
        if (!lease.IsOpen)
        {
            return ValueTask.FromResult(new ObjectSeek(hole ? offset : null, 0));
        }

        var size = RandomAccess.GetLength(lease.File);
        if (offset >= size)
        {
            // lseek answers ENXIO past the end for both; past its end an object is all hole.
            return ValueTask.FromResult(new ObjectSeek(hole ? offset : null, size));
        }

        var found = Libc.SeekDataOrHole(lease.File, offset, hole);
        if (found >= 0)
        {
            return ValueTask.FromResult(new ObjectSeek(found, size));
        }

        // ENXIO: no data after the offset (or, for a hole, a truncate moved the end under us).
        var errno = Libc.LastErrno;
        return errno == Errno.ENXIO
            ? ValueTask.FromResult(new ObjectSeek(hole ? size : null, size))
            : throw Libc.Failure(errno, $"lseek {(hole ? "SEEK_HOLE" : "SEEK_DATA")} at {offset} of object {objectId} on {_target}");
    }

    public ValueTask<bool> DeleteAsync(ulong objectId, CancellationToken cancellationToken)
    {
        _unsynced.TryRemove(objectId, out _);
        var existed = _open.Delete(objectId);
        if (existed)
        {
            Interlocked.Decrement(ref _objects);
        }

        return ValueTask.FromResult(existed);
    }

    public ValueTask SyncAsync(IReadOnlyCollection<ulong> objectIds, CancellationToken cancellationToken)
    {
        var ids = objectIds.Count > 0 ? objectIds : (IReadOnlyCollection<ulong>)[.. _unsynced.Keys];
        foreach (var objectId in ids)
        {
            cancellationToken.ThrowIfCancellationRequested();
            SyncOne(objectId);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The tree's fan-out follows an id's low bytes, not its order, so a page in id order needs a
    /// walk of the whole tree. A listing's first page (after 0) walks it once and keeps the sorted
    /// ids; its later pages come from that snapshot while it is younger than
    /// <see cref="ListingLifetime"/>, so listing n objects costs one walk, not one per page. An
    /// object made or deleted during a listing may be missed or listed, as it could be between two
    /// walks: fsck, the one caller, reads the MDS after the targets for that reason.
    /// </summary>
    public ValueTask<ObjectPage> ListAsync(ulong after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var listing = Volatile.Read(ref _listing);
        if (after == 0 || listing is null || Stopwatch.GetElapsedTime(listing.TakenAt) > ListingLifetime)
        {
            var found = new List<ulong>();
            foreach (var id in EnumerateObjects())
            {
                if ((found.Count & 0xFFF) == 0)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                }

                found.Add(id);
            }

            var ids = found.ToArray();
            Array.Sort(ids);
            listing = new Listing(ids, Stopwatch.GetTimestamp());
            Interlocked.Increment(ref _walks);
        }

        var start = Array.BinarySearch(listing.Ids, after);
        start = start >= 0 ? start + 1 : ~start;
        var count = Math.Min(limit, listing.Ids.Length - start);
        var more = start + count < listing.Ids.Length;

        // Kept for the next page; dropped (its memory with it) once a listing has reached the end.
        Volatile.Write(ref _listing, more ? listing : null);
        return ValueTask.FromResult(new ObjectPage(listing.Ids.AsSpan(start, count).ToArray(), more));
    }

    /// <summary>Walks of the object tree for listings so far (for tests).</summary>
    internal long ListingWalks => Interlocked.Read(ref _walks);

    public StorageUsage GetUsage()
    {
        var drive = new DriveInfo(DataDirectory);
        return new StorageUsage(drive.TotalSize, drive.AvailableFreeSpace, Interlocked.Read(ref _objects));
    }

    public void Dispose() => _open.Dispose();

    /// <summary>Linux reports ENOSPC (28) and EDQUOT (122) as the IOException's HResult.</summary>
    internal static bool IsNoSpace(IOException e) => (e.HResult & 0xFFFF) is (int)Errno.ENOSPC or (int)Errno.EDQUOT;

    private void SyncOne(ulong objectId)
    {
        var created = _unsynced.TryRemove(objectId, out var c) && c;
        try
        {
            using (var lease = _open.Open(objectId, create: false))
            {
                if (!lease.IsOpen)
                {
                    return;
                }

                if (Libc.Fdatasync(lease.File) != 0)
                {
                    throw Libc.Failure(Libc.LastErrno, $"fdatasync of object {objectId} on {_target}");
                }
            }

            if (created)
            {
                // The new file's entry lives in its leaf directory, a new leaf's entry in its
                // parent: fsync(2) of the file alone makes neither durable. Directories created
                // for another object share these, so all three are synced whatever this open
                // created itself; on a journalling file system the later ones cost next to nothing.
                SyncDirectory(_paths.Leaf(objectId));
                SyncDirectory(_paths.Middle(objectId));
                SyncDirectory(_paths.Root);
            }
        }
        catch
        {
            _unsynced.AddOrUpdate(objectId, created, (_, was) => was || created);
            throw;
        }
    }

    private void SyncDirectory(string path)
    {
        using var directory = Libc.OpenDirectory(path);
        if (Libc.Fsync(directory) != 0)
        {
            throw Libc.Failure(Libc.LastErrno, $"fsync of directory {path} on {_target}");
        }
    }

    private void MarkUnsynced(ulong objectId, bool created)
    {
        if (created)
        {
            _unsynced[objectId] = true;
        }
        else if (!_unsynced.ContainsKey(objectId))
        {
            _unsynced.TryAdd(objectId, false);
        }
    }

    private void WriteZeros(SafeFileHandle file, ulong objectId, long from, long to)
    {
        try
        {
            for (var at = from; at < to; at += Zeros.Length)
            {
                RandomAccess.Write(file, Zeros.AsSpan(0, (int)Math.Min(Zeros.Length, to - at)), at);
            }
        }
        catch (IOException e) when (IsNoSpace(e))
        {
            throw Full($"zeroing [{from}, {to}) of object {objectId}", e);
        }
    }

    private ParaFsException Full(string what, Exception e)
    {
        var usage = GetUsage();
        return new ParaFsException(Errno.ENOSPC,
            $"{_target} is full: {what} failed ({usage.FreeBytes} of {usage.CapacityBytes} bytes free on {DataDirectory}): {e.Message}", e);
    }

    private IEnumerable<ulong> EnumerateObjects()
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 2, IgnoreInaccessible = true, AttributesToSkip = 0 };
        foreach (var path in Directory.EnumerateFiles(_paths.Root, "*", options))
        {
            if (ObjectPaths.TryParseName(Path.GetFileName(path.AsSpan()), out var id))
            {
                yield return id;
            }
        }
    }

    private sealed record Listing(ulong[] Ids, long TakenAt);
}
