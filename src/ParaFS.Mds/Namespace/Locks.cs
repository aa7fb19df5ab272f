using ParaFS.Common;
using ParaFS.Mds.Sessions;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

/// <summary>Advisory locks (fcntl record locks and flock): held in the session table's <see cref="LockTable"/>.</summary>
public sealed partial class MdsNamespace
{
    /// <summary>Takes or gives back a lock for the calling session's owner; not granted: the lock in the way.</summary>
    public LockReply SetLock(RequestContext context, LockRequest request)
    {
        var session = Locker(context, request);
        if (request.Type != LockType.Unlock && InRecovery() is { } wait)
        {
            return wait;
        }

        var conflict = _sessions.Locks.TrySet(
            (long)request.Ino, session.Id, request.Owner, Kind(request), request.Type == LockType.Write, request.Type == LockType.Unlock,
            request.Start, request.End, request.Pid, request.Wait);
        if (conflict is not null)
        {
            return Describe(conflict, session);
        }

        // A write lock frees nothing; a read lock may have replaced a write lock, and an unlock frees its range.
        if (request.Type != LockType.Write)
        {
            WakeLockWaiters([(long)request.Ino]);
        }

        return new LockReply { Granted = true, Type = LockType.Unlock };
    }

    /// <summary>Tells the sessions waiting for a lock on these inodes to ask again.</summary>
    public void WakeLockWaiters(IEnumerable<long> inodes)
    {
        foreach (var ino in inodes)
        {
            if (_sessions.Locks.TakeWaiters(ino) is { Count: > 0 } waiting)
            {
                _notifier.LockReleased(ino, waiting);
            }
        }
    }

    /// <summary>The lock that would stand in the way of the request (F_GETLK), or type UNLOCK.</summary>
    public LockReply TestLock(RequestContext context, LockRequest request)
    {
        var session = Locker(context, request);
        if (request.Type != LockType.Unlock && InRecovery() is { } wait)
        {
            return wait;
        }

        var conflict = request.Type == LockType.Unlock
            ? null
            : _sessions.Locks.FindConflict((long)request.Ino, session.Id, request.Owner, Kind(request), request.Type == LockType.Write, request.Start, request.End);
        return conflict is null ? new LockReply { Granted = true, Type = LockType.Unlock } : Describe(conflict, session);
    }

    /// <summary>
    /// Takes back the locks a returning client holds: any while this MDS is in its recovery window
    /// (no new lock is granted before it ends) or while the session lasted (they are still here,
    /// or were given back and are free again), none for a session that ended after its lease
    /// (another client may have taken and given them back since). Returns those not taken back.
    /// </summary>
    private List<LockRequest> ReclaimLocks(ClientSession session, IEnumerable<LockRequest> held, bool sessionKnown)
    {
        var lost = new List<LockRequest>();
        var mayReclaim = sessionKnown || _sessions.RecoveryLeft > TimeSpan.Zero;
        foreach (var request in held)
        {
            var valid = request.Start <= request.End && request.Type is (LockType.Read or LockType.Write);
            if (!valid || !mayReclaim || _sessions.Locks.TrySet(
                (long)request.Ino, session.Id, request.Owner, Kind(request), request.Type == LockType.Write, unlock: false, request.Start, request.End, request.Pid) is not null)
            {
                lost.Add(request);
            }
        }

        return lost;
    }

    /// <summary>While clients may still come back for locks they held before a restart, no new lock is granted or tested.</summary>
    private LockReply? InRecovery() =>
        _sessions.RecoveryLeft is { TotalMilliseconds: > 0 } left
            ? new LockReply { Granted = false, Type = LockType.Unlock, RecoveryMsLeft = (uint)Math.Ceiling(left.TotalMilliseconds) }
            : null;

    private static ClientSession Locker(RequestContext context, LockRequest request)
    {
        if (request.Start > request.End)
        {
            throw new ParaFsException(Errno.EINVAL, $"lock range of inode {request.Ino} starts at {request.Start}, after its end {request.End}");
        }

        if (request.Type is not (LockType.Read or LockType.Write or LockType.Unlock))
        {
            throw new ParaFsException(Errno.EINVAL, $"lock type {(int)request.Type} is not read, write or unlock");
        }

        return context.Session ?? throw new ParaFsException(Errno.EINVAL, "a lock needs a session: attach one first (MdsSession)");
    }

    private static LockKind Kind(LockRequest request) => request.Flock ? LockKind.Flock : LockKind.Posix;

    /// <summary>The lock in the way; its pid only for the caller's own client (another machine's pid means nothing here).</summary>
    private static LockReply Describe(HeldLock held, ClientSession asking) => new()
    {
        Granted = false,
        Type = held.Write ? LockType.Write : LockType.Read,
        Start = held.Start,
        End = held.End,
        Pid = held.Session == asking.Id ? held.Pid : 0,
    };
}
