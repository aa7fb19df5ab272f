using System.Collections.Concurrent;

namespace ParaFS.FuseAdapter;

/// <summary>
/// What the kernel was told to keep for the lease (directory entries, or inodes' attributes): the
/// MDS revokes each by callback when it changes, and when a connection to the MDS ends (its
/// callbacks may be lost with it) everything still kept is revoked from here. Holds at most
/// <paramref name="capacity"/> keys; past that, answers get the short timeout.
/// </summary>
internal sealed class TrustedSet<TKey>(int capacity)
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, long> _entries = new();
    private int _count;
    private long _nextSweep;

    /// <summary>How many keys are held (tests).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Records that the kernel keeps <paramref name="key"/> until <paramref name="expiresAt"/> (Environment.TickCount64); false when full.</summary>
    public bool TryAdd(TKey key, long expiresAt)
    {
        if (_entries.TryGetValue(key, out _))
        {
            _entries[key] = expiresAt;
            return true;
        }

        if (Interlocked.Increment(ref _count) > capacity)
        {
            Interlocked.Decrement(ref _count);
            SweepExpired();
            return false;
        }

        if (!_entries.TryAdd(key, expiresAt))
        {
            Interlocked.Decrement(ref _count);
            _entries[key] = expiresAt;
        }

        return true;
    }

    public void Remove(TKey key)
    {
        if (_entries.TryRemove(key, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    /// <summary>Removes and returns every key the kernel may still keep.</summary>
    public List<TKey> TakeAll()
    {
        var now = Environment.TickCount64;
        var taken = new List<TKey>();
        foreach (var (key, expiresAt) in _entries)
        {
            if (_entries.TryRemove(key, out _))
            {
                Interlocked.Decrement(ref _count);
                if (expiresAt > now)
                {
                    taken.Add(key);
                }
            }
        }

        return taken;
    }

    /// <summary>Drops the entries the kernel no longer keeps, at most once a second (a full table of live entries is not walked on every lookup).</summary>
    private void SweepExpired()
    {
        var now = Environment.TickCount64;
        var due = Volatile.Read(ref _nextSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + 1000, due) != due)
        {
            return;
        }

        foreach (var entry in _entries)
        {
            if (entry.Value <= now && _entries.TryRemove(entry))
            {
                Interlocked.Decrement(ref _count);
            }
        }
    }
}
