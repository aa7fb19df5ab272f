namespace ParaFS.Common;

/// <summary>The two families of advisory locks; as on Linux, one never conflicts with the other.</summary>
public enum LockKind
{
    /// <summary>fcntl record locks (F_SETLK, F_OFD_SETLK): byte ranges, owned by a process or an open file description.</summary>
    Posix = 0,

    /// <summary>flock(2): the whole file, owned by an open file description.</summary>
    Flock = 1,
}

/// <summary>
/// A granted lock. <see cref="Owner"/> is the client's lock owner (the kernel's), unique within
/// its session; <see cref="End"/> is inclusive (ulong.MaxValue: to the end of the file, however
/// long it grows).
/// </summary>
public sealed record HeldLock(ulong Session, ulong Owner, LockKind Kind, bool Write, ulong Start, ulong End, uint Pid)
{
    public bool SameOwner(ulong session, ulong owner) => Session == session && Owner == owner;

    public bool Overlaps(ulong start, ulong end) => Start <= end && start <= End;
}

/// <summary>
/// Advisory locks by inode. The MDS keeps one for every client: it is the one place all mounts
/// ask, so a lock taken on one node is seen on every other (Linux's own lock code only sees its
/// node). A client keeps one of its own granted locks (session 0), to take them back after an
/// MDS restart or failover. POSIX rules: a request replaces what its owner held in the range (a
/// read lock over part of a write lock splits it), an owner never conflicts with itself, read
/// locks share, a write lock excludes. At the MDS locks end with their session (the client's
/// lease) (README: "Advisory locks").
/// </summary>
public sealed class LockTable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<long, List<HeldLock>> _byIno = [];

    /// <summary>Sessions refused a lock they will wait for, by inode (the MDS wakes them when a lock there is given back).</summary>
    private readonly Dictionary<long, HashSet<ulong>> _waiters = [];

    /// <summary>Locks held on all inodes.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _byIno.Values.Sum(l => l.Count);
            }
        }
    }

    /// <summary>A lock of another owner that a request for this range would conflict with, or null.</summary>
    public HeldLock? FindConflict(long ino, ulong session, ulong owner, LockKind kind, bool write, ulong start, ulong end)
    {
        lock (_gate)
        {
            return ConflictLocked(ino, session, owner, kind, write, start, end);
        }
    }

    /// <summary>
    /// Takes (write false: shared; true: exclusive) the range for the owner, or, with
    /// <paramref name="unlock"/>, gives it back. Returns the conflicting lock, and changes
    /// nothing, when another owner holds a conflicting one; null when done. A refused request
    /// that will <paramref name="wait"/> puts its session among the inode's waiters (see
    /// <see cref="TakeWaiters"/>), in the same step, so no release after the refusal goes unseen.
    /// </summary>
    public HeldLock? TrySet(long ino, ulong session, ulong owner, LockKind kind, bool write, bool unlock, ulong start, ulong end, uint pid, bool wait = false)
    {
        if (start > end)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"lock range starts at {start} after its end {end}");
        }

        lock (_gate)
        {
            if (!unlock && ConflictLocked(ino, session, owner, kind, write, start, end) is { } conflict)
            {
                if (wait)
                {
                    if (!_waiters.TryGetValue(ino, out var waiting))
                    {
                        _waiters[ino] = waiting = [];
                    }

                    waiting.Add(session);
                }

                return conflict;
            }

            ApplyLocked(ino, session, owner, kind, write, unlock, start, end, pid);
            return null;
        }
    }

    /// <summary>
    /// Records what an authority (the MDS) granted or took back, without looking for conflicts: a
    /// client's copy of its own locks, where replies for different owners may arrive in another
    /// order than the MDS ran them.
    /// </summary>
    public void Record(long ino, ulong owner, LockKind kind, bool write, bool unlock, ulong start, ulong end, uint pid)
    {
        if (start > end)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"lock range starts at {start} after its end {end}");
        }

        lock (_gate)
        {
            ApplyLocked(ino, 0, owner, kind, write, unlock, start, end, pid);
        }
    }

    /// <summary>Every lock held, with its inode.</summary>
    public IReadOnlyList<(long Ino, HeldLock Lock)> Snapshot()
    {
        lock (_gate)
        {
            return [.. _byIno.SelectMany(e => e.Value.Select(l => (e.Key, l)))];
        }
    }

    private void ApplyLocked(long ino, ulong session, ulong owner, LockKind kind, bool write, bool unlock, ulong start, ulong end, uint pid)
    {
        if (!_byIno.TryGetValue(ino, out var locks))
        {
            if (unlock)
            {
                return;
            }

            _byIno[ino] = locks = [];
        }

        // The owner's locks in the range give way: whole, or cut to what lies outside it.
        var kept = new List<HeldLock>();
        foreach (var held in locks)
        {
            if (held.Kind != kind || !held.SameOwner(session, owner) || !held.Overlaps(start, end))
            {
                kept.Add(held);
                continue;
            }

            if (held.Start < start)
            {
                kept.Add(held with { End = start - 1 });
            }

            if (held.End > end)
            {
                kept.Add(held with { Start = end + 1 });
            }
        }

        if (!unlock)
        {
            kept.Add(new HeldLock(session, owner, kind, write, start, end, pid));
            Coalesce(kept, session, owner, kind, write);
        }

        if (kept.Count == 0)
        {
            _byIno.Remove(ino);
        }
        else
        {
            _byIno[ino] = kept;
        }
    }

    /// <summary>
    /// The sessions waiting for a lock on <paramref name="ino"/>, taken off the list: a lock there
    /// was given back (or turned from write to read), so each should ask again.
    /// </summary>
    public IReadOnlyList<ulong> TakeWaiters(long ino)
    {
        lock (_gate)
        {
            return _waiters.Remove(ino, out var waiting) ? [.. waiting] : [];
        }
    }

    /// <summary>Drops every lock of a session (its client is gone for good) and its waits; returns the inodes where it held locks.</summary>
    public IReadOnlyList<long> ReleaseSession(ulong session)
    {
        lock (_gate)
        {
            var released = new List<long>();
            foreach (var (ino, locks) in _byIno.ToList())
            {
                if (locks.RemoveAll(l => l.Session == session) > 0)
                {
                    released.Add(ino);
                }

                if (locks.Count == 0)
                {
                    _byIno.Remove(ino);
                }
            }

            foreach (var (ino, waiting) in _waiters.ToList())
            {
                if (waiting.Remove(session) && waiting.Count == 0)
                {
                    _waiters.Remove(ino);
                }
            }

            return released;
        }
    }

    /// <summary>The locks held on one inode, in no particular order.</summary>
    public IReadOnlyList<HeldLock> Held(long ino)
    {
        lock (_gate)
        {
            return _byIno.TryGetValue(ino, out var locks) ? [.. locks] : [];
        }
    }

    private HeldLock? ConflictLocked(long ino, ulong session, ulong owner, LockKind kind, bool write, ulong start, ulong end) =>
        _byIno.TryGetValue(ino, out var locks)
            ? locks.FirstOrDefault(l => l.Kind == kind && !l.SameOwner(session, owner) && l.Overlaps(start, end) && (write || l.Write))
            : null;

    /// <summary>Joins the owner's locks of one type that overlap or touch, so a range is held as one lock.</summary>
    private static void Coalesce(List<HeldLock> locks, ulong session, ulong owner, LockKind kind, bool write)
    {
        var mine = locks.Where(l => l.Kind == kind && l.Write == write && l.SameOwner(session, owner)).OrderBy(l => l.Start).ToList();
        if (mine.Count < 2)
        {
            return;
        }

        locks.RemoveAll(l => l.Kind == kind && l.Write == write && l.SameOwner(session, owner));
        var current = mine[0];
        foreach (var next in mine.Skip(1))
        {
            if (current.End == ulong.MaxValue || next.Start <= current.End + 1)
            {
                current = current with { End = Math.Max(current.End, next.End), Pid = next.Pid };
            }
            else
            {
                locks.Add(current);
                current = next;
            }
        }

        locks.Add(current);
    }
}
