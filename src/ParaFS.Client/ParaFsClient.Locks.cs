using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client;

/// <summary>
/// Advisory locks (fcntl record locks and flock), kept by the MDS for every mount. A lock owner
/// is the caller's own 64-bit id (the kernel's lock owner through FUSE); the MDS keys it by this
/// client's session, so owners of different clients never mix. A waiting request asks again when
/// the MDS says a lock on the file was given back, and on its own at most a second after its last
/// try. The client keeps a copy of what the MDS granted it, and takes those locks back when it
/// re-attaches after an MDS restart or failover; until the MDS's recovery window ends, new
/// requests wait.
/// </summary>
public sealed partial class ParaFsClient
{
    /// <summary>
    /// The first pause of a waiting lock request before it asks again unless woken by the MDS; it
    /// doubles up to <see cref="LockRetryCeiling"/>. Only a wake-up that went astray (a broken
    /// connection) waits this long.
    /// </summary>
    private static readonly TimeSpan LockRetryFloor = TimeSpan.FromMilliseconds(100);

    private static readonly TimeSpan LockRetryCeiling = TimeSpan.FromSeconds(1);

    /// <summary>How often a request asks again while the MDS is in its recovery window.</summary>
    private static readonly TimeSpan LockRecoveryPoll = TimeSpan.FromMilliseconds(500);

    /// <summary>The locks the MDS granted this client (session 0 here), brought back on re-attach.</summary>
    private readonly LockTable _heldLocks = new();

    /// <summary>Per inode with waiting lock requests, what wakes them (<see cref="Methods.PushLockReleased"/>).</summary>
    private readonly Dictionary<ulong, LockWake> _lockWakes = [];

    /// <summary>When a wait for the MDS's recovery was last logged (Environment.TickCount64), so a burst of requests logs once.</summary>
    private long _recoveryWaitLogged = long.MinValue / 2;

    /// <summary>Locks this client holds, as the MDS granted them.</summary>
    public int HeldLockCount => _heldLocks.Count;

    /// <summary>The lock that stands in the way of <paramref name="request"/> (F_GETLK); type UNLOCK when there is none.</summary>
    public async Task<LockReply> TestLockAsync(LockRequest request, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var reply = await _mds.CallAsync(Methods.MdsLockTest, request, LockReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
            if (reply.RecoveryMsLeft == 0)
            {
                return reply;
            }

            await WaitForLockRecoveryAsync(reply, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Takes (or, type UNLOCK, gives back) a lock. Held by another owner: EAGAIN, or with
    /// <paramref name="wait"/> the request is asked again when the MDS says a lock on the file
    /// was given back (and after 100 ms, doubling to 1 s, in case that word went astray), until
    /// it is granted or <paramref name="cancellationToken"/> fires. While the MDS is in its
    /// recovery window every request waits for it to end.
    /// </summary>
    public async Task SetLockAsync(LockRequest request, bool wait, CancellationToken cancellationToken = default)
    {
        request = request.Wait == wait ? request : new LockRequest(request) { Wait = wait };
        var wake = wait ? JoinLockWake(request.Ino) : null;
        try
        {
            var pause = LockRetryFloor;
            while (true)
            {
                // Taken before asking: a release between the refusal and the wait still wakes it.
                var woken = wake?.Signal.Task;
                var reply = await _mds.CallAsync(Methods.MdsLock, request, LockReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
                if (reply.Granted)
                {
                    _heldLocks.Record((long)request.Ino, request.Owner, Kind(request), request.Type == LockType.Write, request.Type == LockType.Unlock, request.Start, request.End, request.Pid);
                    return;
                }

                if (reply.RecoveryMsLeft > 0)
                {
                    await WaitForLockRecoveryAsync(reply, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (woken is null)
                {
                    throw new ParaFsException(Errno.EAGAIN, $"inode {request.Ino}: bytes {reply.Start}-{reply.End} hold a {(reply.Type == LockType.Write ? "write" : "read")} lock of another owner");
                }

                using (var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
                {
                    await Task.WhenAny(woken, Task.Delay(pause, stop.Token)).ConfigureAwait(false);
                    await stop.CancelAsync().ConfigureAwait(false);
                }

                cancellationToken.ThrowIfCancellationRequested();
                pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, LockRetryCeiling.Ticks));
            }
        }
        finally
        {
            if (wake is not null)
            {
                LeaveLockWake(request.Ino, wake);
            }
        }
    }

    /// <summary>The MDS says a lock on <paramref name="ino"/> was given back: this client's waiting requests ask again.</summary>
    private void WakeLockWaiters(ulong ino)
    {
        lock (_lockWakes)
        {
            if (_lockWakes.TryGetValue(ino, out var wake))
            {
                var fired = wake.Signal;
                wake.Signal = new(TaskCreationOptions.RunContinuationsAsynchronously);
                fired.TrySetResult();
            }
        }
    }

    private LockWake JoinLockWake(ulong ino)
    {
        lock (_lockWakes)
        {
            if (!_lockWakes.TryGetValue(ino, out var wake))
            {
                _lockWakes[ino] = wake = new LockWake();
            }

            wake.Waiters++;
            return wake;
        }
    }

    private void LeaveLockWake(ulong ino, LockWake wake)
    {
        lock (_lockWakes)
        {
            if (--wake.Waiters == 0)
            {
                _lockWakes.Remove(ino);
            }
        }
    }

    private async Task WaitForLockRecoveryAsync(LockReply reply, CancellationToken cancellationToken)
    {
        var now = Environment.TickCount64;
        var last = Volatile.Read(ref _recoveryWaitLogged);
        if (now - last > 10_000 && Interlocked.CompareExchange(ref _recoveryWaitLogged, now, last) == last)
        {
            Log.LockWaitsForRecovery(_logger, _mds.Endpoint, reply.RecoveryMsLeft / 1000.0);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(reply.RecoveryMsLeft, LockRecoveryPoll.TotalMilliseconds)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>What a re-attach brings back: every lock the MDS granted this client.</summary>
    private IEnumerable<LockRequest> HeldLocks() => _heldLocks.Snapshot().Select(e => new LockRequest
    {
        Ino = (ulong)e.Ino,
        Owner = e.Lock.Owner,
        Flock = e.Lock.Kind == LockKind.Flock,
        Type = e.Lock.Write ? LockType.Write : LockType.Read,
        Start = e.Lock.Start,
        End = e.Lock.End,
        Pid = e.Lock.Pid,
    });

    /// <summary>The MDS did not take these back on re-attach: they are no longer this client's.</summary>
    private void LocksLost(IReadOnlyList<LockRequest> lost)
    {
        foreach (var request in lost)
        {
            Log.LockLost(_logger, _mds.Endpoint, request.Flock ? "flock" : "fcntl", request.Ino, request.Start, request.End);
            _heldLocks.Record((long)request.Ino, request.Owner, Kind(request), write: false, unlock: true, request.Start, request.End, request.Pid);
        }
    }

    private static LockKind Kind(LockRequest request) => request.Flock ? LockKind.Flock : LockKind.Posix;

    /// <summary>The waiting lock requests of one inode: how many, and what the next wake-up completes.</summary>
    private sealed class LockWake
    {
        public TaskCompletionSource Signal { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Waiters { get; set; }
    }
}
