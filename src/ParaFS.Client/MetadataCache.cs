using System.Collections.Concurrent;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client;

/// <summary>
/// Attributes by inode, entries by (directory, name) and security.* extended attributes by
/// inode, each trusted for a short lifetime and dropped at once when the MDS calls back that they
/// changed. Expired entries are swept out once the cache holds many, so it does not grow by every
/// file the client ever looked at.
/// </summary>
internal sealed class MetadataCache(TimeSpan lifetime)
{
    /// <summary>Up to this many puts, nothing is swept.</summary>
    private const int SweepAbove = 16_384;

    private readonly ConcurrentDictionary<ulong, (AttrReply Reply, long Expires)> _attrs = new();
    private readonly ConcurrentDictionary<(ulong Parent, string Name), (ulong Ino, long Expires)> _entries = new();
    private readonly ConcurrentDictionary<ulong, SecurityXattrs> _securityXattrs = new();
    private readonly long[] _xattrDrops = new long[64];
    private readonly long[] _entryDrops = new long[64];
    private readonly long[] _attrDrops = new long[64];
    private readonly object _attrDropLock = new();
    private readonly object _entryLock = new();
    private readonly object _xattrLock = new();
    private readonly Dictionary<ulong, Changing> _changing = [];
    private long _sweepAt = SweepAbove;
    private long _putsSinceSweep;
    private int _sweeping;
    private int _changingCount;

    private long Expiry => Environment.TickCount64 + (long)lifetime.TotalMilliseconds;

    /// <summary>How many entries of all kinds are held (the sweep sets its next threshold by it; tests read it).</summary>
    public int Count => _attrs.Count + _entries.Count + _securityXattrs.Count;

    public AttrReply? GetAttr(ulong ino) =>
        _attrs.TryGetValue(ino, out var e) && e.Expires > Environment.TickCount64 ? e.Reply : null;

    /// <summary>
    /// Keeps the attributes unless the inode's were dropped since <paramref name="versions"/>
    /// (<see cref="AttrVersions"/>) were taken, before the call that answered them: a callback
    /// that overtook the answer, or this client's own change.
    /// </summary>
    public void PutAttr(AttrReply reply, long[] versions)
    {
        lock (_attrDropLock)
        {
            if (AttrUnchanged(reply.Attr.Ino, versions))
            {
                _attrs[reply.Attr.Ino] = (reply, Expiry);
            }
        }

        SweepIfLarge();
    }

    /// <summary>The drop counts of every attribute stripe, taken before a call that answers attributes (of an inode it may not know yet: a lookup).</summary>
    public long[] AttrVersions()
    {
        var versions = new long[_attrDrops.Length];
        for (var i = 0; i < versions.Length; i++)
        {
            versions[i] = Volatile.Read(ref _attrDrops[i]);
        }

        return versions;
    }

    /// <summary>Whether nothing dropped the attributes of <paramref name="ino"/> (or of an inode sharing its stripe) since <paramref name="versions"/> were taken.</summary>
    public bool AttrUnchanged(ulong ino, long[] versions)
    {
        var stripe = (int)(ino % (ulong)_attrDrops.Length);
        return Volatile.Read(ref _attrDrops[stripe]) == versions[stripe];
    }

    public ulong? GetEntry(ulong parent, string name) =>
        _entries.TryGetValue((parent, name), out var e) && e.Expires > Environment.TickCount64 ? e.Ino : null;

    /// <summary>
    /// Keeps the entry unless it was dropped since <paramref name="version"/> (<see cref="EntryVersion"/>)
    /// was taken, before the call that answered it: a callback that overtook the answer.
    /// </summary>
    public void PutEntry(ulong parent, string name, ulong ino, long version)
    {
        lock (_entryLock)
        {
            if (EntryVersion(parent, name) == version)
            {
                _entries[(parent, name)] = (ino, Expiry);
            }
        }

        SweepIfLarge();
    }

    /// <summary>The counts of every stripe, for a call that answers many entries (a directory listing).</summary>
    public long[] EntryVersions()
    {
        var versions = new long[_entryDrops.Length];
        for (var i = 0; i < versions.Length; i++)
        {
            versions[i] = Volatile.Read(ref _entryDrops[i]);
        }

        return versions;
    }

    /// <summary>As <see cref="PutEntry(ulong, string, ulong, long)"/>, against counts taken with <see cref="EntryVersions"/>.</summary>
    public void PutEntry(ulong parent, string name, ulong ino, long[] versions) =>
        PutEntry(parent, name, ino, versions[EntryStripe(parent, name)]);

    /// <summary>Whether nothing dropped the entry (or one sharing its stripe) since <paramref name="versions"/> (<see cref="EntryVersions"/>) were taken.</summary>
    public bool EntryUnchanged(ulong parent, string name, long[] versions) => EntryVersion(parent, name) == versions[EntryStripe(parent, name)];

    /// <summary>A count that moves whenever the entry (or one sharing its stripe) is dropped.</summary>
    public long EntryVersion(ulong parent, string name) => Volatile.Read(ref _entryDrops[EntryStripe(parent, name)]);

    /// <summary>Forgets every entry and attribute: callbacks about them may have been lost (a connection to the MDS ended).</summary>
    public void DropAll()
    {
        lock (_entryLock)
        {
            for (var i = 0; i < _entryDrops.Length; i++)
            {
                Interlocked.Increment(ref _entryDrops[i]);
            }

            _entries.Clear();
        }

        lock (_attrDropLock)
        {
            for (var i = 0; i < _attrDrops.Length; i++)
            {
                Interlocked.Increment(ref _attrDrops[i]);
            }

            _attrs.Clear();
        }
    }

    private int EntryStripe(ulong parent, string name) => (int)((uint)HashCode.Combine(parent, name) % (uint)_entryDrops.Length);

    public void DropAttr(ulong ino)
    {
        lock (_attrDropLock)
        {
            Interlocked.Increment(ref _attrDrops[ino % (ulong)_attrDrops.Length]);
            if (Volatile.Read(ref _changingCount) == 0)
            {
                _attrs.TryRemove(ino, out _);
                return;
            }

            lock (_changing)
            {
                if (_changing.TryGetValue(ino, out var changing))
                {
                    changing.Changes++;
                }

                _attrs.TryRemove(ino, out _);
            }
        }
    }

    /// <summary>
    /// This client starts a call that changes directory <paramref name="ino"/> and answers with its
    /// attributes; the token goes to <see cref="EndChange"/>.
    /// </summary>
    public long BeginChange(ulong ino)
    {
        lock (_changing)
        {
            if (!_changing.TryGetValue(ino, out var changing))
            {
                _changing[ino] = changing = new Changing();
                Interlocked.Increment(ref _changingCount);
            }

            // A call that starts while another runs can commit before or after it: neither's
            // answer is known to be the latest (-1 matches no count).
            changing.Changes++;
            return ++changing.InFlight == 1 ? changing.Changes : -1;
        }
    }

    /// <summary>
    /// The call ended: its answer <paramref name="attrs"/> is kept only when the call ran alone (no
    /// other change of this client ran when it began or began while it ran) and nothing dropped
    /// the inode meanwhile. Overlapping calls may commit in one order and answer in the other, so
    /// then the attributes are dropped instead.
    /// </summary>
    public void EndChange(ulong ino, long token, AttrReply? attrs)
    {
        lock (_changing)
        {
            var changing = _changing[ino];
            var alone = changing.Changes == token;
            if (--changing.InFlight == 0)
            {
                _changing.Remove(ino);
                Interlocked.Decrement(ref _changingCount);
            }

            if (alone && attrs?.Attr?.Ino == ino)
            {
                _attrs[ino] = (attrs, Expiry);
            }
            else
            {
                _attrs.TryRemove(ino, out _);
            }
        }
    }

    public void DropEntry(ulong parent, string name)
    {
        lock (_entryLock)
        {
            Interlocked.Increment(ref _entryDrops[EntryStripe(parent, name)]);
            _entries.TryRemove((parent, name), out _);
        }
    }

    /// <summary>
    /// What the MDS last said of a security.* attribute of <paramref name="ino"/>: true with its
    /// value, or with null when the inode has none of that name. Every caller may read security.*
    /// attributes, so one answer serves all. The kernel asks for security.capability before every
    /// write(2) to see whether the write must drop it.
    /// </summary>
    public bool TryGetSecurityXattr(ulong ino, string name, out byte[]? value)
    {
        value = null;
        if (!_securityXattrs.TryGetValue(ino, out var known) || known.Expires <= Environment.TickCount64)
        {
            return false;
        }

        foreach (var (n, v) in known.Values)
        {
            if (n == name)
            {
                value = v;
                return true;
            }
        }

        return false;
    }

    /// <summary>A count that moves whenever the xattrs of <paramref name="ino"/> (or of an inode sharing its stripe) are dropped; taken before asking the MDS.</summary>
    public long XattrVersion(ulong ino) => Volatile.Read(ref _xattrDrops[ino % (ulong)_xattrDrops.Length]);

    /// <summary>
    /// Keeps the answer for <paramref name="name"/> (null: absent) beside what is known of the
    /// inode's other security.* attributes, unless the inode's xattrs were dropped since
    /// <paramref name="version"/> was taken (the answer may predate the change that dropped them).
    /// </summary>
    public void PutSecurityXattr(ulong ino, string name, byte[]? value, long version)
    {
        lock (_xattrLock)
        {
            if (XattrVersion(ino) == version)
            {
                PutSecurityXattr(ino, name, value);
            }
        }
    }

    /// <summary>Keeps the answer for <paramref name="name"/> (null: absent): for a file this client has just made.</summary>
    public void PutSecurityXattr(ulong ino, string name, byte[]? value)
    {
        var expires = Expiry;
        _securityXattrs.AddOrUpdate(
            ino,
            _ => new SecurityXattrs([(name, value)], expires),
            (_, known) => new SecurityXattrs([.. known.Expires > Environment.TickCount64 ? known.Values.Where(v => v.Name != name) : [], (name, value)], expires));
        SweepIfLarge();
    }

    /// <summary>Forgets the inode's extended attributes: they changed (here or, as the MDS calls back, elsewhere).</summary>
    public void DropXattrs(ulong ino)
    {
        lock (_xattrLock)
        {
            Interlocked.Increment(ref _xattrDrops[ino % (ulong)_xattrDrops.Length]);
            _securityXattrs.TryRemove(ino, out _);
        }
    }

    /// <summary>
    /// Sweeps out expired entries once as many puts have come since the last sweep as it left
    /// behind (and more than <see cref="SweepAbove"/>): each put pays for a constant share of the
    /// sweeps, and the hot path only counts (ConcurrentDictionary.Count takes every lock).
    /// </summary>
    private void SweepIfLarge()
    {
        var puts = Interlocked.Increment(ref _putsSinceSweep);
        if (puts <= Volatile.Read(ref _sweepAt) || Interlocked.Exchange(ref _sweeping, 1) != 0)
        {
            return; // small enough, or another caller is sweeping
        }

        var now = Environment.TickCount64;
        Sweep(_attrs, e => e.Expires, now);
        Sweep(_entries, e => e.Expires, now);
        Sweep(_securityXattrs, e => e.Expires, now);
        Volatile.Write(ref _sweepAt, Math.Max(SweepAbove, Count));
        Interlocked.Exchange(ref _putsSinceSweep, 0);
        Volatile.Write(ref _sweeping, 0);
    }

    /// <summary>Removes the entries expired at <paramref name="now"/>; one put again meanwhile stays (only the exact expired value is removed).</summary>
    private static void Sweep<TKey, TValue>(ConcurrentDictionary<TKey, TValue> cache, Func<TValue, long> expires, long now)
        where TKey : notnull
    {
        foreach (var entry in cache)
        {
            if (expires(entry.Value) <= now)
            {
                cache.TryRemove(entry);
            }
        }
    }

    /// <summary>Calls of this client changing one inode: how many run, and a count of changes (each begun call, each drop) since the first began.</summary>
    private sealed class Changing
    {
        public int InFlight;
        public long Changes;
    }

    private sealed record SecurityXattrs((string Name, byte[]? Value)[] Values, long Expires);
}
