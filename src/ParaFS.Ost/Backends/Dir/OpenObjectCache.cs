using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;
using ParaFS.Common;
using ParaFS.Common.Interop;

namespace ParaFS.Ost.Backends.Dir;

/// <summary>
/// The object files a dir target keeps open: a bounded, approximately least-recently-used cache
/// of handles. A hit takes no lock. Each handle is reference counted (the cache holds one
/// reference, every operation using it another) and closed when the last goes, so evicting a
/// handle that a concurrent read or write is using closes it only once that operation is done.
/// Opening, creating and deleting an object take one of 64 striped locks, so a delete cannot
/// interleave with an open of the same object and leave a handle to an unlinked file cached.
/// </summary>
internal sealed class OpenObjectCache : IDisposable
{
    private const int StripeCount = 64;
    private const FileShare Sharing = FileShare.ReadWrite | FileShare.Delete;

    private readonly ConcurrentDictionary<ulong, ObjectHandle> _handles = new();
    private readonly Lock[] _stripes = [.. Enumerable.Range(0, StripeCount).Select(_ => new Lock())];
    private readonly ObjectPaths _paths;
    private readonly int _capacity;
    private int _count;
    private int _evicting;

    public OpenObjectCache(ObjectPaths paths, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _paths = paths;
        _capacity = capacity;
    }

    /// <summary>Handles the cache holds now (handles evicted but still in use are not counted).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>
    /// A lease on the object's open file. An object that does not exist gives a lease that is not
    /// open, unless <paramref name="create"/> asks for it to be created.
    /// </summary>
    public ObjectLease Open(ulong objectId, bool create)
    {
        if (_handles.TryGetValue(objectId, out var cached) && cached.TryAddReference())
        {
            cached.Touch();
            return new ObjectLease(cached, created: false);
        }

        return OpenSlow(objectId, create);
    }

    /// <summary>Closes the object's cached handle (once in-flight users are done) and unlinks its file; true when it existed.</summary>
    public bool Delete(ulong objectId)
    {
        lock (Stripe(objectId))
        {
            Forget(objectId);
            var path = _paths.File(objectId);
            if (Libc.Unlink(path) == 0)
            {
                return true;
            }

            var errno = Libc.LastErrno;
            return errno is Errno.ENOENT ? false : throw Libc.Failure(errno, $"cannot remove {path}");
        }
    }

    public void Dispose()
    {
        foreach (var id in _handles.Keys)
        {
            Forget(id);
        }
    }

    private ObjectLease OpenSlow(ulong objectId, bool create)
    {
        ObjectLease lease;
        lock (Stripe(objectId))
        {
            if (_handles.TryGetValue(objectId, out var cached) && cached.TryAddReference())
            {
                cached.Touch();
                return new ObjectLease(cached, created: false);
            }

            var (file, created) = OpenFile(objectId, create);
            if (file is null)
            {
                return default;
            }

            var handle = new ObjectHandle(file, _paths.File(objectId));
            handle.TryAddReference();

            // A handle whose count reached zero has already left the dictionary, and only this
            // stripe adds: the slot is free.
            _handles[objectId] = handle;
            Interlocked.Increment(ref _count);
            lease = new ObjectLease(handle, created);
        }

        EvictIfOver();
        return lease;
    }

    private (SafeFileHandle? File, bool Created) OpenFile(ulong objectId, bool create)
    {
        var path = _paths.File(objectId);
        try
        {
            return (File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, Sharing), false);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            if (!create)
            {
                return (null, false);
            }
        }

        Directory.CreateDirectory(_paths.Leaf(objectId));
        return (File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, Sharing), true);
    }

    private void Forget(ulong objectId)
    {
        if (_handles.TryRemove(objectId, out var handle))
        {
            Interlocked.Decrement(ref _count);
            handle.Release();
        }
    }

    /// <summary>
    /// Past capacity, one caller evicts the least recently used handles down to 7/8 of it, so the
    /// scan runs once per capacity/8 opens rather than on every open. Handles opened during a scan
    /// are not in its snapshot, and their openers, finding the scan under way, leave them to it:
    /// so the evicting caller looks again once done, or the cache could stay over capacity for as
    /// long as every later open finds its object cached.
    /// </summary>
    private void EvictIfOver()
    {
        while (Volatile.Read(ref _count) > _capacity && Interlocked.Exchange(ref _evicting, 1) == 0)
        {
            bool evicted;
            try
            {
                evicted = EvictLeastRecentlyUsed();
            }
            finally
            {
                Volatile.Write(ref _evicting, 0);
            }

            if (!evicted)
            {
                return;
            }
        }
    }

    /// <summary>Evicts down to 7/8 of capacity; false when nothing was over (a concurrent delete was on its way out).</summary>
    private bool EvictLeastRecentlyUsed()
    {
        var entries = _handles.ToArray();
        var excess = entries.Length - (_capacity - (_capacity / 8));
        if (excess <= 0)
        {
            return false;
        }

        var lastUsed = entries.Select(e => e.Value.LastUsed).ToArray();
        Array.Sort(lastUsed, entries);
        foreach (var entry in entries.AsSpan(0, excess))
        {
            if (_handles.TryRemove(entry))
            {
                Interlocked.Decrement(ref _count);
                entry.Value.Release();
            }
        }

        return true;
    }

    private Lock Stripe(ulong objectId) => _stripes[(int)(objectId % StripeCount)];
}

/// <summary>
/// An open object file with a reference count: the cache's reference plus one per operation using
/// it. Besides the ordinary descriptor it may hold a second one opened with O_DIRECT, for large
/// aligned writes, opened on first use and closed with the first.
/// </summary>
internal sealed class ObjectHandle(SafeFileHandle file, string path)
{
    private readonly Lock _directLock = new();
    private int _references = 1;
    private long _lastUsed = Environment.TickCount64;
    private SafeFileHandle? _direct;

    public SafeFileHandle File { get; } = file;

    /// <summary>The object opened with O_DIRECT (opened now if it is not yet); throws <see cref="ParaFsException"/> (EINVAL where the file system refuses O_DIRECT).</summary>
    public SafeFileHandle Direct
    {
        get
        {
            if (Volatile.Read(ref _direct) is { } direct)
            {
                return direct;
            }

            lock (_directLock)
            {
                return _direct ??= Libc.OpenDirect(path);
            }
        }
    }

    public long LastUsed => Volatile.Read(ref _lastUsed);

    public void Touch()
    {
        var now = Environment.TickCount64;
        if (Volatile.Read(ref _lastUsed) != now)
        {
            Volatile.Write(ref _lastUsed, now);
        }
    }

    /// <summary>Takes a reference unless the handle is already being closed.</summary>
    public bool TryAddReference()
    {
        var current = Volatile.Read(ref _references);
        while (current > 0)
        {
            var seen = Interlocked.CompareExchange(ref _references, current + 1, current);
            if (seen == current)
            {
                return true;
            }

            current = seen;
        }

        return false;
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            File.Dispose();
            _direct?.Dispose();
        }
    }
}

/// <summary>One operation's use of an open object file; disposing it gives the reference back.</summary>
internal readonly struct ObjectLease(ObjectHandle? handle, bool created) : IDisposable
{
    public bool IsOpen => handle is not null;

    /// <summary>True when this open created the object (its directory entry is not durable yet).</summary>
    public bool Created => created;

    public SafeFileHandle File => handle!.File;

    /// <inheritdoc cref="ObjectHandle.Direct"/>
    public SafeFileHandle Direct => handle!.Direct;

    public void Dispose() => handle?.Release();
}
