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
        var conflict = _sessions.Locks.TrySet(
            (long)request.Ino, session.Id, request.Owner, Kind(request), request.Type == LockType.Write, request.Type == LockType.Unlock,
            request.Start, request.End, request.Pid);
        return conflict is null ? new LockReply { Granted = true, Type = LockType.Unlock } : Describe(conflict, session);
    }

    /// <summary>The lock that would stand in the way of the request (F_GETLK), or type UNLOCK.</summary>
    public LockReply TestLock(RequestContext context, LockRequest request)
    {
        var session = Locker(context, request);
        var conflict = request.Type == LockType.Unlock
            ? null
            : _sessions.Locks.FindConflict((long)request.Ino, session.Id, request.Owner, Kind(request), request.Type == LockType.Write, request.Start, request.End);
        return conflict is null ? new LockReply { Granted = true, Type = LockType.Unlock } : Describe(conflict, session);
    }

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
