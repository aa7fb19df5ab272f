using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

/// <summary>
/// The MDS's lock calls: waiters are told when a lock is given back, and across a restart clients
/// bring their locks back in the recovery window, before anybody else is granted one.
/// </summary>
public sealed class LockServiceTests
{
    private const ulong Root = 1;

    private static LockRequest Lock(ulong ino, ulong owner, LockType type, ulong start, ulong end, bool flock = false) =>
        new() { Ino = ino, Owner = owner, Type = type, Start = start, End = end, Flock = flock, Pid = 4242 };

    private static SessionRequest Attach(ulong session, params LockRequest[] held) => new() { SessionId = session, ClientName = "test", HeldLocks = { held } };

    [Fact]
    public async Task A_session_refused_a_lock_it_waits_for_is_told_once_when_a_lock_on_the_file_is_given_back()
    {
        await using var mds = await MdsFixture.StartAsync(heartbeat: TimeSpan.FromMilliseconds(200), lease: TimeSpan.FromSeconds(1));
        var told = System.Threading.Channels.Channel.CreateUnbounded<ulong>();
        ValueTask OnPush(RpcPush push, RpcClientConnection connection)
        {
            if (push.Method == Methods.PushLockReleased)
            {
                told.Writer.TryWrite(push.ParseMessage(LockReleased.Parser).Ino);
            }

            return ValueTask.CompletedTask;
        }

        await using var holder = await mds.ClientAsync();
        await using var waiter = await mds.ClientAsync(onPush: OnPush);
        var ino = (await holder.MkdirAsync(Root, "d")).Ino;
        var other = (await holder.MkdirAsync(Root, "e")).Ino;
        Assert.True((await holder.CallAsync(Methods.MdsLock, Lock(ino, 1, LockType.Write, 0, 99), LockReply.Parser)).Granted);
        Assert.True((await holder.CallAsync(Methods.MdsLock, Lock(other, 1, LockType.Write, 0, 99), LockReply.Parser)).Granted);

        // Refused without waiting: nothing to tell. Refused with wait: told at the next give-back on the file, once.
        Assert.False((await waiter.CallAsync(Methods.MdsLock, Lock(ino, 2, LockType.Write, 10, 10), LockReply.Parser)).Granted);
        Assert.True((await holder.CallAsync(Methods.MdsLock, Lock(ino, 1, LockType.Unlock, 90, 99), LockReply.Parser)).Granted);
        Assert.True((await holder.CallAsync(Methods.MdsLock, Lock(ino, 1, LockType.Write, 90, 99), LockReply.Parser)).Granted);
        var waiting = Lock(ino, 2, LockType.Write, 10, 10);
        waiting.Wait = true;
        Assert.False((await waiter.CallAsync(Methods.MdsLock, waiting, LockReply.Parser)).Granted);
        Assert.True((await holder.CallAsync(Methods.MdsLock, Lock(ino, 1, LockType.Write, 200, 299), LockReply.Parser)).Granted); // taking more frees nothing
        Assert.False(told.Reader.TryRead(out _));
        Assert.True((await holder.CallAsync(Methods.MdsLock, Lock(ino, 1, LockType.Read, 0, 50), LockReply.Parser)).Granted); // write to read: readers may go on
        Assert.Equal(ino, await told.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True((await holder.CallAsync(Methods.MdsLock, Lock(ino, 1, LockType.Unlock, 0, ulong.MaxValue), LockReply.Parser)).Granted);
        await Task.Delay(300);
        Assert.False(told.Reader.TryRead(out _)); // once per refusal

        // A holder whose session ends after its lease (its client vanished) wakes the waiters too.
        waiting.Ino = other;
        Assert.False((await waiter.CallAsync(Methods.MdsLock, waiting, LockReply.Parser)).Granted);
        await holder.DisposeAsync();
        Assert.Equal(other, await told.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True((await waiter.CallAsync(Methods.MdsLock, waiting, LockReply.Parser)).Granted);
    }

    [Fact]
    public async Task Locks_held_before_a_restart_are_taken_back_and_others_wait_for_the_recovery_window()
    {
        var lease = TimeSpan.FromSeconds(2);
        await using var mds = await MdsFixture.StartAsync(lease: lease);
        await using var holder = await mds.ClientAsync();
        await using var late = await mds.ClientAsync();
        var ino = (await holder.MkdirAsync(Root, "locked")).Ino; // the MDS locks any inode; a directory needs no target
        var record = Lock(ino, owner: 1, LockType.Write, 0, 99);
        var shared = Lock(ino, owner: 2, LockType.Read, 0, ulong.MaxValue, flock: true);
        var lateLock = Lock(ino, owner: 3, LockType.Write, 500, 599);
        Assert.True((await holder.CallAsync(Methods.MdsLock, record, LockReply.Parser)).Granted);
        Assert.True((await holder.CallAsync(Methods.MdsLock, shared, LockReply.Parser)).Granted);
        Assert.True((await late.CallAsync(Methods.MdsLock, lateLock, LockReply.Parser)).Granted);

        await mds.RestartAsync();
        Assert.Equal(0, mds.Server.Sessions.Locks.Count);
        await using var other = await mds.ClientAsync();

        // Until the window ends, a new lock is neither granted nor tested (its holder may be on its way back); giving one back is fine.
        var early = await other.CallAsync(Methods.MdsLock, Lock(ino, 7, LockType.Write, 50, 60), LockReply.Parser);
        Assert.False(early.Granted);
        Assert.InRange(early.RecoveryMsLeft, 1u, (uint)lease.TotalMilliseconds);
        var earlyTest = await other.CallAsync(Methods.MdsLockTest, Lock(ino, 7, LockType.Read, 0, 10), LockReply.Parser);
        Assert.InRange(earlyTest.RecoveryMsLeft, 1u, (uint)lease.TotalMilliseconds);
        Assert.True((await other.CallAsync(Methods.MdsLock, Lock(ino, 7, LockType.Unlock, 0, ulong.MaxValue), LockReply.Parser)).Granted);

        // The holder comes back with its locks, on each of its connections: all taken back, once.
        // Both stay open to the end: a session left with no connection would end after its lease,
        // which here is also the recovery window, and its locks with it.
        await using var backFirst = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 });
        await using var backSecond = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 });
        foreach (var back in new[] { backFirst, backSecond })
        {
            var reply = await back.CallAsync(Methods.MdsSession, Attach(holder.SessionId, record, shared), SessionReply.Parser);
            Assert.Equal(holder.SessionId, reply.SessionId);
            Assert.Empty(reply.LostLocks);
            Assert.Equal(2, mds.Server.Sessions.Locks.Count);
        }

        await Eventually.TrueAsync(() => mds.Server.Sessions.RecoveryLeft == TimeSpan.Zero, "the end of the recovery window", TimeSpan.FromSeconds(10));

        // Now the taken-back locks stand in the way, as before the restart.
        var refused = await other.CallAsync(Methods.MdsLock, Lock(ino, 7, LockType.Write, 50, 60), LockReply.Parser);
        Assert.False(refused.Granted);
        Assert.Equal(0u, refused.RecoveryMsLeft);
        Assert.Equal((LockType.Write, 0ul, 99ul, 0u), (refused.Type, refused.Start, refused.End, refused.Pid));
        Assert.False((await other.CallAsync(Methods.MdsLock, Lock(ino, 8, LockType.Write, 0, ulong.MaxValue, flock: true), LockReply.Parser)).Granted);
        Assert.True((await other.CallAsync(Methods.MdsLock, Lock(ino, 7, LockType.Write, 100, 199), LockReply.Parser)).Granted);

        // A client back after the window, under a session this MDS never saw: its session ended
        // with the restart, so its lock is lost even though nobody took it since.
        await using (var tooLate = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 }))
        {
            var reply = await tooLate.CallAsync(Methods.MdsSession, Attach(late.SessionId, lateLock), SessionReply.Parser);
            Assert.Equal(lateLock, Assert.Single(reply.LostLocks));
        }

        // A live session that attaches again keeps what it holds; a lock another client took meanwhile is lost.
        await using (var again = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 }))
        {
            var stale = Lock(ino, 1, LockType.Write, 150, 160);
            var reply = await again.CallAsync(Methods.MdsSession, Attach(holder.SessionId, record, shared, stale), SessionReply.Parser);
            Assert.Equal(stale, Assert.Single(reply.LostLocks));
        }

        Assert.Equal(3, mds.Server.Sessions.Locks.Count);
    }
}
