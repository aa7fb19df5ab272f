using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client;

/// <summary>
/// Advisory locks (fcntl record locks and flock), kept by the MDS for every mount. A lock owner
/// is the caller's own 64-bit id (the kernel's lock owner through FUSE); the MDS keys it by this
/// client's session, so owners of different clients never mix.
/// </summary>
public sealed partial class ParaFsClient
{
    /// <summary>The first pause of a waiting lock request before it asks again; it doubles up to <see cref="LockRetryCeiling"/>.</summary>
    private static readonly TimeSpan LockRetryFloor = TimeSpan.FromMilliseconds(5);

    private static readonly TimeSpan LockRetryCeiling = TimeSpan.FromMilliseconds(200);

    /// <summary>The lock that stands in the way of <paramref name="request"/> (F_GETLK); type UNLOCK when there is none.</summary>
    public Task<LockReply> TestLockAsync(LockRequest request, CancellationToken cancellationToken = default) =>
        _mds.CallAsync(Methods.MdsLockTest, request, LockReply.Parser, idempotent: true, cancellationToken);

    /// <summary>
    /// Takes (or, type UNLOCK, gives back) a lock. Held by another owner: EAGAIN, or with
    /// <paramref name="wait"/> the request is asked again (after 5 ms, doubling to 200 ms) until
    /// it is granted or <paramref name="cancellationToken"/> fires.
    /// </summary>
    public async Task SetLockAsync(LockRequest request, bool wait, CancellationToken cancellationToken = default)
    {
        var pause = LockRetryFloor;
        while (true)
        {
            var reply = await _mds.CallAsync(Methods.MdsLock, request, LockReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false);
            if (reply.Granted)
            {
                return;
            }

            if (!wait)
            {
                throw new ParaFsException(Errno.EAGAIN, $"inode {request.Ino}: bytes {reply.Start}-{reply.End} hold a {(reply.Type == LockType.Write ? "write" : "read")} lock of another owner");
            }

            await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, LockRetryCeiling.Ticks));
        }
    }
}
