using ParaFS.Common;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Sessions;

/// <summary>One open file handle of a client session.</summary>
public sealed record OpenFile(ulong Handle, long Ino, uint Flags, ulong SessionId);

/// <summary>A client's session: its connection (for callbacks) and the files it holds open.</summary>
public sealed class ClientSession(ulong id, string clientName)
{
    public ulong Id { get; } = id;

    public string ClientName { get; } = clientName;

    /// <summary>Where callbacks go: the newest of <see cref="Attached"/> that is still open.</summary>
    public RpcServerConnection? Connection { get; set; }

    /// <summary>Every open connection that attached this session (a client keeps several); changed under the table's lock.</summary>
    internal List<RpcServerConnection> Attached { get; } = [];

    /// <summary>When the connection went away; the session is released a lease after that.</summary>
    public long DisconnectedAtMs { get; set; }

    public Dictionary<ulong, OpenFile> Opens { get; } = [];

    /// <summary>Per inode, the newest layout generation this client has acknowledged (or was given at open).</summary>
    public Dictionary<long, ulong> LayoutSeen { get; } = [];
}

/// <summary>
/// Client sessions and their open files, in memory. After an MDS restart the clients bring their
/// handles back (SessionRequest.open_handles). A session whose client is gone for longer than the
/// lease releases its opens, so unlinked-but-open files are reclaimed.
/// </summary>
public sealed class SessionTable
{
    private readonly object _lock = new();
    private readonly Dictionary<ulong, ClientSession> _sessions = [];
    private readonly Dictionary<ulong, OpenFile> _handles = [];
    private readonly Dictionary<long, int> _openCounts = [];
    private readonly Dictionary<long, Removal> _removing = [];

    /// <summary>Inodes a removal found open with no name left (orphans kept for their opens), until reclaimed.</summary>
    private readonly HashSet<long> _keptOpen = [];
    private long _lastId = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() << 16;

    private long _recoveryEndsAt;

    public SessionTable(TimeSpan lease)
    {
        Lease = lease;
    }

    public TimeSpan Lease { get; }

    /// <summary>The advisory locks clients hold; a session's go with it.</summary>
    public LockTable Locks { get; } = new();

    /// <summary>
    /// Starts the recovery window of an MDS that took over existing data (a restart, or a standby
    /// taking over): for one lease, clients that held files open may still be on their way back
    /// with their handles, so this table does not yet know every holder (see <see cref="RecoveryLeft"/>).
    /// </summary>
    public void StartRecovery() => Volatile.Write(ref _recoveryEndsAt, Environment.TickCount64 + (long)Lease.TotalMilliseconds);

    /// <summary>How much of the recovery window is left; zero once every returning client has had its lease to come back.</summary>
    public TimeSpan RecoveryLeft => TimeSpan.FromMilliseconds(Math.Max(0, Volatile.Read(ref _recoveryEndsAt) - Environment.TickCount64));

    public ulong NewId() => (ulong)Interlocked.Increment(ref _lastId);

    /// <summary>
    /// Creates a session, or takes back an existing one when its client reconnects.
    /// <paramref name="mayHaveMissedCallbacks"/> says whether callbacks could have gone astray
    /// before this attach: the session had no other live connection (a break, an MDS restart), or
    /// it brings handles this table did not know. A client attaches on each of its connections,
    /// and the later attaches of one reconnect are neither. <paramref name="known"/>: the session
    /// asked for was still here (not new, not ended after its lease, not lost with a restart).
    /// </summary>
    public ClientSession Attach(ulong requestedId, string clientName, RpcServerConnection connection, IEnumerable<(OpenFile Open, ulong LayoutGeneration)> handles, out bool mayHaveMissedCallbacks, out bool known)
    {
        lock (_lock)
        {
            known = requestedId != 0 && _sessions.ContainsKey(requestedId);
            if (requestedId == 0 || !_sessions.TryGetValue(requestedId, out var session))
            {
                session = new ClientSession(requestedId != 0 ? requestedId : NewId(), clientName);
                _sessions[session.Id] = session;
            }

            if (connection.State is ClientSession previous && previous != session)
            {
                // The connection served another session before (the client started a new one).
                LeaveLocked(previous, connection);
            }

            session.Connection = connection;
            session.Attached.RemoveAll(c => c.IsClosed || c == connection);
            mayHaveMissedCallbacks = session.Attached.Count == 0;
            session.Attached.Add(connection);
            session.DisconnectedAtMs = 0;
            foreach (var (open, generation) in handles)
            {
                mayHaveMissedCallbacks |= RestoreOpenLocked(session, open, generation);
            }

            connection.State = session;
            return session;
        }
    }

    /// <summary>
    /// A connection closed. Its session's callbacks move to another connection the client
    /// attached it on; only when none is left does the lease start to run out.
    /// </summary>
    public void Detached(RpcServerConnection connection)
    {
        lock (_lock)
        {
            if (connection.State is ClientSession session)
            {
                LeaveLocked(session, connection);
            }
        }
    }

    private static void LeaveLocked(ClientSession session, RpcServerConnection connection)
    {
        session.Attached.RemoveAll(c => c.IsClosed || c == connection);
        if (session.Connection == connection)
        {
            session.Connection = session.Attached.Count > 0 ? session.Attached[^1] : null;
            session.DisconnectedAtMs = session.Connection is null ? Environment.TickCount64 : 0;
        }
    }

    /// <summary>
    /// Registers an open handle; <paramref name="layoutGeneration"/> is the layout the open's reply
    /// carries. Throws <see cref="InodeBeingRemovedException"/> while a removal has claimed the
    /// inode (<see cref="TryClaimRemoval"/>): the open is to wait for it and run again.
    /// </summary>
    public OpenFile AddOpen(ClientSession session, long ino, uint flags, ulong layoutGeneration)
    {
        lock (_lock)
        {
            if (_removing.TryGetValue(ino, out var removal))
            {
                throw new InodeBeingRemovedException(ino, removal.Done.Task);
            }

            var open = new OpenFile(NewId(), ino, flags, session.Id);
            AddOpenLocked(session, open);
            SeenLocked(session, ino, layoutGeneration);
            return open;
        }
    }

    /// <summary>Registers a handle an earlier MDS gave out (a replayed reply), unless it is registered already.</summary>
    public void RestoreOpen(ClientSession session, OpenFile open, ulong layoutGeneration)
    {
        lock (_lock)
        {
            RestoreOpenLocked(session, open, layoutGeneration);
        }
    }

    /// <summary>A client says it does its I/O on <paramref name="ino"/> with <paramref name="generation"/> now.</summary>
    public void AcknowledgeLayout(ClientSession session, long ino, ulong generation)
    {
        lock (_lock)
        {
            SeenLocked(session, ino, generation);
        }
    }

    /// <summary>
    /// Sessions that hold <paramref name="ino"/> open and have not acknowledged
    /// <paramref name="generation"/>. A session whose client is gone counts until its lease ends.
    /// </summary>
    public IReadOnlyList<ClientSession> NotAcknowledged(long ino, ulong generation)
    {
        lock (_lock)
        {
            return [.. _sessions.Values.Where(s => s.Opens.Values.Any(o => o.Ino == ino) && s.LayoutSeen.GetValueOrDefault(ino) < generation)];
        }
    }

    /// <summary>Closes a handle; returns it (null if unknown) and whether it was the inode's last open anywhere.</summary>
    public (OpenFile? Open, bool Last) Close(ulong handle)
    {
        lock (_lock)
        {
            if (!_handles.Remove(handle, out var open))
            {
                return (null, false);
            }

            if (_sessions.TryGetValue(open.SessionId, out var session))
            {
                session.Opens.Remove(handle);
                if (!session.Opens.Values.Any(o => o.Ino == open.Ino))
                {
                    session.LayoutSeen.Remove(open.Ino);
                }
            }

            return (open, DecrementLocked(open.Ino));
        }
    }

    public OpenFile? FindHandle(ulong handle)
    {
        lock (_lock)
        {
            return _handles.GetValueOrDefault(handle);
        }
    }

    public bool IsOpen(long ino)
    {
        lock (_lock)
        {
            return _openCounts.ContainsKey(ino);
        }
    }

    /// <summary>
    /// A removal that is about to delete <paramref name="ino"/> asks that nobody holds it open.
    /// When nobody does, the inode stays claimed until <see cref="ReleaseRemoval"/>: an open in
    /// the meantime is refused with <see cref="InodeBeingRemovedException"/>, so it cannot read
    /// the inode from a snapshot taken before the deletion commits and register a handle on a
    /// file that is then gone (PostgreSQL runs write transactions side by side). Several
    /// removals may claim one inode (two names of it going at once); each releases its own claim.
    /// </summary>
    public bool TryClaimRemoval(long ino)
    {
        lock (_lock)
        {
            if (_openCounts.ContainsKey(ino))
            {
                _keptOpen.Add(ino);
                return false;
            }

            if (!_removing.TryGetValue(ino, out var removal))
            {
                _removing[ino] = removal = new Removal();
            }

            removal.Claims++;
            return true;
        }
    }

    /// <summary>
    /// Whether <paramref name="ino"/> may be an orphan its opens kept: a removal asked for it
    /// (<see cref="TryClaimRemoval"/>, which removals call only once no name is left) and found
    /// it open, and it has not been reclaimed since. The last close of any other inode has
    /// nothing to reclaim, and needs no store transaction.
    /// </summary>
    public bool MayBeKeptOpen(long ino)
    {
        lock (_lock)
        {
            return _keptOpen.Contains(ino);
        }
    }

    /// <summary>An orphan is deleted (or was already gone): its last close need not look again.</summary>
    public void Reclaimed(long ino)
    {
        lock (_lock)
        {
            _keptOpen.Remove(ino);
        }
    }

    /// <summary>Ends a claim of <see cref="TryClaimRemoval"/>, once the removal's transaction has committed or failed; opens waiting on it run again.</summary>
    public void ReleaseRemoval(long ino)
    {
        Removal? done = null;
        lock (_lock)
        {
            if (_removing.TryGetValue(ino, out var removal) && --removal.Claims == 0)
            {
                _removing.Remove(ino);
                done = removal;
            }
        }

        done?.Done.TrySetResult();
    }

    /// <summary>
    /// Releases sessions whose client has been gone longer than the lease, with their opens and
    /// locks; returns the inodes that lost their last open, and in <paramref name="lockInodes"/>
    /// those where locks were given back (their waiters are to be told).
    /// </summary>
    public IReadOnlyList<long> ExpireSessions(out IReadOnlyList<long> lockInodes)
    {
        var now = Environment.TickCount64;
        var released = new List<long>();
        var unlocked = new List<long>();
        lockInodes = unlocked;
        lock (_lock)
        {
            foreach (var session in _sessions.Values.ToList())
            {
                if (session.Connection is null && session.DisconnectedAtMs != 0 && now - session.DisconnectedAtMs > Lease.TotalMilliseconds)
                {
                    foreach (var open in session.Opens.Values)
                    {
                        _handles.Remove(open.Handle);
                        if (DecrementLocked(open.Ino))
                        {
                            released.Add(open.Ino);
                        }
                    }

                    _sessions.Remove(session.Id);
                    unlocked.AddRange(Locks.ReleaseSession(session.Id));
                }
            }
        }

        return released;
    }

    /// <summary>The connection a session's callbacks go to, or null (no such session, or none open).</summary>
    public RpcServerConnection? ConnectionOf(ulong sessionId)
    {
        lock (_lock)
        {
            return _sessions.TryGetValue(sessionId, out var session) && session.Connection is { IsClosed: false } connection ? connection : null;
        }
    }

    /// <summary>
    /// The callback connections of every session but the one <paramref name="except"/> serves, for
    /// callbacks about a change made over <paramref name="except"/>. A client spreads its calls over
    /// several connections and takes callbacks on one: its own changes are not called back to it,
    /// whichever connection carried them (it has updated its caches itself). With
    /// <paramref name="originToo"/> only <paramref name="except"/> itself is left out: a layout
    /// change, which the client that asked for it learns of by the callback like any holder.
    /// </summary>
    public IReadOnlyList<RpcServerConnection> Connections(RpcServerConnection? except, bool originToo = false)
    {
        var origin = originToo ? null : except?.State as ClientSession;
        lock (_lock)
        {
            return [.. _sessions.Values.Where(s => s != origin).Select(s => s.Connection).OfType<RpcServerConnection>().Where(c => c != except && !c.IsClosed)];
        }
    }

    private static void SeenLocked(ClientSession session, long ino, ulong generation)
    {
        if (generation > session.LayoutSeen.GetValueOrDefault(ino))
        {
            session.LayoutSeen[ino] = generation;
        }
    }

    /// <summary>Takes back a handle a returning client holds; true when this table did not know it.</summary>
    private bool RestoreOpenLocked(ClientSession session, OpenFile open, ulong layoutGeneration)
    {
        var unknown = !_handles.ContainsKey(open.Handle);
        if (unknown)
        {
            AddOpenLocked(session, open with { SessionId = session.Id });
        }

        SeenLocked(session, open.Ino, layoutGeneration);
        return unknown;
    }

    private void AddOpenLocked(ClientSession session, OpenFile open)
    {
        session.Opens[open.Handle] = open;
        _handles[open.Handle] = open;
        _openCounts[open.Ino] = _openCounts.GetValueOrDefault(open.Ino) + 1;
    }

    private bool DecrementLocked(long ino)
    {
        var left = _openCounts.GetValueOrDefault(ino) - 1;
        if (left <= 0)
        {
            _openCounts.Remove(ino);
            return true;
        }

        _openCounts[ino] = left;
        return false;
    }

    private sealed class Removal
    {
        public int Claims;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>An open met an inode a removal is deleting; <see cref="Removed"/> completes once that removal is over, and the open runs again.</summary>
public sealed class InodeBeingRemovedException(long ino, Task removed) : Exception($"inode {ino} is being removed; the open waits for the removal and runs again")
{
    public Task Removed { get; } = removed;
}
