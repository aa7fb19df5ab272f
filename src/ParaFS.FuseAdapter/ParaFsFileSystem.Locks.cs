using System.Collections.Concurrent;
using ParaFS.Common;
using ParaFS.Fuse;
using ParaFS.Protocol.Mds;

namespace ParaFS.FuseAdapter;

/// <summary>
/// fcntl record locks and flock(2), held at the MDS so that every mount sees them. The kernel ends
/// a process's record locks with the FLUSH of any close of the file (its lock owner), and flock
/// and OFD locks with the RELEASE of their open file description: this side gives them back to
/// the MDS there. It remembers which owners may hold locks, so a close without locks costs no MDS
/// call.
/// </summary>
public sealed partial class ParaFsFileSystem
{
    /// <summary>Record-lock owners that may hold locks on an inode (their FLUSH gives them back).</summary>
    private readonly ConcurrentDictionary<(ulong Ino, ulong Owner), byte> _recordLockOwners = new();

    /// <summary>Per open handle, the owners that took locks through it (its RELEASE gives back what is left).</summary>
    private readonly ConcurrentDictionary<ulong, ConcurrentDictionary<(ulong Owner, bool Flock), byte>> _lockOwnersByHandle = new();

    public async ValueTask<FuseLock> GetLockAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong owner, FuseLock request, bool flock)
    {
        try
        {
            var reply = await client.TestLockAsync(Request(nodeId, owner, request, flock), context.Cancellation).ConfigureAwait(false);
            return reply.Type == LockType.Unlock
                ? request with { Type = FuseLock.Unlock }
                : new FuseLock(reply.Start, reply.End, reply.Type == LockType.Write ? FuseLock.WriteLock : FuseLock.ReadLock, reply.Pid);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    public async ValueTask SetLockAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong owner, FuseLock request, bool flock, bool wait)
    {
        if (request.Type is not (FuseLock.ReadLock or FuseLock.WriteLock or FuseLock.Unlock) || request.Start > request.End)
        {
            throw new FuseException(EINVAL, $"lock type {request.Type}, bytes {request.Start}-{request.End}");
        }

        var unlock = request.Type == FuseLock.Unlock;
        if (unlock && !MayHoldLocks(nodeId, fileHandle, owner, flock))
        {
            return;
        }

        if (!unlock)
        {
            // Noted before the MDS grants it: a close racing the grant then gives it back.
            _lockOwnersByHandle.GetOrAdd(fileHandle, static _ => new()).TryAdd((owner, flock), 0);
            if (!flock)
            {
                _recordLockOwners.TryAdd((nodeId, owner), 0);
            }
        }

        try
        {
            // A waiting request ends with the kernel's interrupt (EINTR; the kernel restarts it).
            await client.SetLockAsync(Request(nodeId, owner, request, flock), wait, context.Cancellation).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw Translate(e);
        }
    }

    /// <summary>FLUSH: a close by the lock owner ends its record locks on the inode (POSIX).</summary>
    private async Task ReleaseRecordLocksAsync(ulong nodeId, ulong owner)
    {
        if (_recordLockOwners.TryRemove((nodeId, owner), out _))
        {
            await client.SetLockAsync(Request(nodeId, owner, WholeFile, flock: false), wait: false, NotInterruptible).ConfigureAwait(false);
        }
    }

    /// <summary>RELEASE: the open file description is gone, and with it its flock and OFD locks (and any record lock left).</summary>
    private async Task ReleaseHandleLocksAsync(ulong nodeId, ulong fileHandle)
    {
        if (!_lockOwnersByHandle.TryRemove(fileHandle, out var owners))
        {
            return;
        }

        foreach (var (owner, flock) in owners.Keys)
        {
            if (!flock)
            {
                _recordLockOwners.TryRemove((nodeId, owner), out _);
            }

            await client.SetLockAsync(Request(nodeId, owner, WholeFile, flock), wait: false, NotInterruptible).ConfigureAwait(false);
        }
    }

    private static readonly FuseLock WholeFile = new(0, FuseLock.ToEnd, FuseLock.Unlock, 0);

    private bool MayHoldLocks(ulong nodeId, ulong fileHandle, ulong owner, bool flock) =>
        flock
            ? _lockOwnersByHandle.TryGetValue(fileHandle, out var owners) && owners.ContainsKey((owner, true))
            : _recordLockOwners.ContainsKey((nodeId, owner));

    private static LockRequest Request(ulong nodeId, ulong owner, FuseLock request, bool flock) => new()
    {
        Ino = nodeId,
        Owner = owner,
        Flock = flock,
        Type = request.Type switch
        {
            FuseLock.ReadLock => LockType.Read,
            FuseLock.WriteLock => LockType.Write,
            _ => LockType.Unlock,
        },
        Start = request.Start,
        End = request.End,
        Pid = request.Pid,
    };
}
