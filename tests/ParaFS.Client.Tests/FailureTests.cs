using System.Security.Cryptography;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client.Tests;

public sealed class FailureTests
{
    private const ulong Root = ParaFsClient.RootIno;
    private static readonly Caller Me = TestCluster.RootCaller;

    [Fact]
    public async Task An_ost_restarted_mid_stream_costs_retries_never_wrong_data()
    {
        await using var cluster = await TestCluster.StartAsync();
        // Synchronous writes: each call's own outcome is what is checked here.
        await using var client = await cluster.ClientAsync(new ClientOptions { OstAttempts = 6, WriteBehind = false });
        var (attr, handle) = await client.CreateAsync(Me, Root, "stream", FileType.Regular, 0x1A4, openFlags: 2);
        await client.SetStripeAsync(Me, attr.Attr.Ino, new LayoutPolicy { StripeSize = 65536, StripeCount = 4 });

        var chunk = 256 * 1024;
        var data = RandomNumberGenerator.GetBytes(chunk * 40);
        var acknowledged = new bool[40];
        var failures = 0;
        var writer = Task.Run(async () =>
        {
            for (var i = 0; i < 40; i++)
            {
                try
                {
                    await client.WriteAsync(handle!, (long)i * chunk, data.AsMemory(i * chunk, chunk));
                    acknowledged[i] = true;
                }
                catch (ParaFsException e) when (e.Errno == Errno.EIO)
                {
                    Interlocked.Increment(ref failures);
                }
            }
        });

        await Task.Delay(50);
        await cluster.StopOstAsync(1);
        await Task.Delay(300);
        await cluster.StartOstAsync(1);
        await writer;

        // Every acknowledged chunk reads back exactly; a failed one (EIO) may hold old or new bytes but nothing else.
        var read = new byte[data.Length];
        await client.ReadAsync(handle!, 0, read);
        for (var i = 0; i < 40; i++)
        {
            var got = read.AsSpan(i * chunk, chunk);
            var want = data.AsSpan(i * chunk, chunk);
            if (acknowledged[i])
            {
                Assert.True(got.SequenceEqual(want), $"acknowledged chunk {i} reads back wrong");
            }
            else
            {
                for (var b = 0; b < chunk; b++)
                {
                    Assert.True(got[b] == 0 || got[b] == want[b], $"chunk {i} byte {b} holds a byte never written");
                }
            }
        }

        Assert.True(acknowledged.Count(a => a) >= 30, $"only {acknowledged.Count(a => a)} of 40 writes got through a 300 ms outage ({failures} failed)");
    }

    [Fact]
    public async Task A_create_and_a_rename_whose_replies_are_lost_after_the_commit_are_answered_once()
    {
        var lost = new List<uint>();
        var renameLost = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bool LoseOnce(uint method)
        {
            lock (lost)
            {
                if (method is not (Methods.MdsCreate or Methods.MdsRename) || lost.Contains(method))
                {
                    return false;
                }

                lost.Add(method);
            }

            if (method == Methods.MdsRename)
            {
                renameLost.TrySetResult();
            }

            return true;
        }

        await using var cluster = await TestCluster.StartAsync(targets: 2, loseReply: LoseOnce);
        await using var client = await cluster.ClientAsync();

        // O_CREAT|O_EXCL: run a second time, the create would fail with EEXIST.
        var (created, handle) = await client.CreateAsync(Me, Root, "ckpt.tmp", FileType.Regular, 0x1A4, openFlags: 2, exclusive: true);
        Assert.Equal(1, cluster.Mds.Namespace.RepliesReplayed);
        var data = RandomNumberGenerator.GetBytes(3 * 1024 * 1024);
        await client.WriteAsync(handle!, 0, data);
        await client.FsyncAsync(handle!);
        await client.ReleaseAsync(handle!);

        // The rename's reply is lost too, and the MDS restarts meanwhile (a crash right after the
        // commit); the retry is answered by whichever MDS it reaches, from the record.
        var first = cluster.Mds;
        var rename = client.RenameAsync(Me, Root, "ckpt.tmp", Root, "ckpt");
        await renameLost.Task;
        await cluster.RestartMdsAsync(downFor: TimeSpan.FromMilliseconds(200));
        await rename;
        Assert.Equal(2, first.Namespace.RepliesReplayed + cluster.Mds.Namespace.RepliesReplayed);
        Assert.Equal([Methods.MdsCreate, Methods.MdsRename], lost);

        var renamed = await client.LookupAsync(Me, Root, "ckpt");
        Assert.Equal(created.Attr.Ino, renamed.Attr.Ino);
        var old = await Assert.ThrowsAnyAsync<ParaFsException>(() => client.LookupAsync(Me, Root, "ckpt.tmp"));
        Assert.Equal(Errno.ENOENT, old.Errno);
        var reader = await client.OpenAsync(Me, renamed.Attr.Ino, 0);
        var read = new byte[data.Length];
        await client.ReadAsync(reader, 0, read);
        Assert.Equal(data, read);
        await client.ReleaseAsync(reader);
    }

    [Fact]
    public async Task A_call_to_an_ost_that_stays_down_fails_with_EIO_naming_the_target()
    {
        await using var cluster = await TestCluster.StartAsync(targets: 2);
        await using var client = await cluster.ClientAsync(new ClientOptions { OstAttempts = 2, OstCallTimeout = TimeSpan.FromSeconds(2) });
        var (_, handle) = await client.CreateAsync(Me, Root, "down", FileType.Regular, 0x1A4, openFlags: 2);
        await client.WriteAsync(handle!, 0, new byte[4 * 1024 * 1024]);
        await cluster.StopOstAsync(0);

        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<ParaFsException>(() => client.FsyncAsync(handle!));
        Assert.Equal(Errno.EIO, e.Errno);
        Assert.Contains("did not answer", e.Message, StringComparison.Ordinal);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30), "the failure took too long: no endless hang allowed");
    }

    [Fact]
    public async Task A_write_behind_that_fails_is_reported_by_fsync_and_then_by_nothing_else()
    {
        await using var cluster = await TestCluster.StartAsync(targets: 1);
        await using var client = await cluster.ClientAsync(new ClientOptions { OstAttempts = 2, OstCallTimeout = TimeSpan.FromSeconds(2) });
        var (_, handle) = await client.CreateAsync(Me, Root, "behind", FileType.Regular, 0x1A4, openFlags: 2);
        await cluster.StopOstAsync(0);

        // Accepted at once: the bytes are copied and sent in the background.
        Assert.Equal(65536, await client.WriteAsync(handle!, 0, new byte[65536]));
        var e = await Assert.ThrowsAsync<ParaFsException>(() => client.FsyncAsync(handle!));
        Assert.Equal(Errno.EIO, e.Errno);
        Assert.Contains("an earlier write to inode", e.Message, StringComparison.Ordinal);

        // Reported once, as the kernel reports a writeback error once per file description.
        await cluster.StartOstAsync(0);
        await client.WriteAsync(handle!, 0, new byte[] { 1, 2, 3 });
        await client.FsyncAsync(handle!);
        var read = new byte[3];
        Assert.Equal(3, await client.ReadAsync(handle!, 0, read));
        Assert.Equal(new byte[] { 1, 2, 3 }, read);
    }

    [Fact]
    public async Task Overlapping_writes_behind_land_in_the_order_they_were_made()
    {
        await using var cluster = await TestCluster.StartAsync(targets: 2);
        await using var client = await cluster.ClientAsync();
        var (_, handle) = await client.CreateAsync(Me, Root, "order", FileType.Regular, 0x1A4, openFlags: 2);
        var expected = new byte[1 << 20];
        var random = new Random(7);
        for (var i = 0; i < 200; i++)
        {
            var offset = random.Next(0, expected.Length - 70_000);
            var data = new byte[random.Next(1, 70_000)];
            random.NextBytes(data);
            data.CopyTo(expected, offset);
            await client.WriteAsync(handle!, offset, data);
        }

        await client.FlushAsync(handle!);
        await using var other = await cluster.ClientAsync();
        var reader = await other.OpenAsync(Me, handle!.Ino, 0);
        var read = new byte[expected.Length];
        var n = await other.ReadAsync(reader, 0, read);
        Assert.True(read.AsSpan(0, n).SequenceEqual(expected.AsSpan(0, n)));
    }

    [Fact]
    public async Task An_open_file_keeps_working_across_an_mds_restart()
    {
        await using var cluster = await TestCluster.StartAsync(targets: 2);
        using var log = new CapturingLoggerProvider();
        await using var client = await ParaFsClient.ConnectAsync(cluster.MdsEndpoint, loggerFactory: log);
        var (attr, handle) = await client.CreateAsync(Me, Root, "survivor", FileType.Regular, 0x1A4, openFlags: 2);
        var first = RandomNumberGenerator.GetBytes(300_000);
        await client.WriteAsync(handle!, 0, first);
        await client.FsyncAsync(handle!);

        // Down for longer than the client's one-second check: it says so once, and says when it is
        // back. Nothing before that: no check runs until the first connection is up.
        await cluster.RestartMdsAsync(downFor: TimeSpan.FromMilliseconds(1500));
        var warnings = log.Warnings.ToList();
        var whole = $"the client's log: {string.Join(" | ", log.Lines.Select(l => $"{l.Level}: {l.Text}"))}";
        Assert.True(warnings.Count == 1, $"expected one warning, got {warnings.Count}; {whole}");
        Assert.Contains($"no connection to the MDS at {cluster.MdsEndpoint}: trying again every second; files held open (1) are kept", warnings[0], StringComparison.Ordinal);
        await Eventually.TrueAsync(() => log.Count($"connected to the MDS at {cluster.MdsEndpoint} again after") == 1, $"the client's line saying the MDS is back; {whole}");

        var second = RandomNumberGenerator.GetBytes(200_000);
        await client.WriteAsync(handle!, first.Length, second);
        await client.FsyncAsync(handle!);

        // The MDS took the handle back with the session: unlinking keeps the file until close.
        await client.RemoveAsync(Me, Root, "survivor", directory: false);
        var orphan = await client.GetAttrAsync(attr.Attr.Ino, fresh: true);
        Assert.Equal(500_000ul, orphan.Attr.Size);
        var read = new byte[500_000];
        Assert.Equal(500_000, await client.ReadAsync(handle!, 0, read));
        Assert.True(read.AsSpan(0, first.Length).SequenceEqual(first));
        Assert.True(read.AsSpan(first.Length).SequenceEqual(second));
        await client.ReleaseAsync(handle!);
        await Assert.ThrowsAsync<Protocol.Rpc.RpcException>(() => client.GetAttrAsync(attr.Attr.Ino, fresh: true));
    }

    [Fact]
    public async Task Advisory_locks_are_taken_back_after_an_mds_restart_before_anyone_else_gets_them()
    {
        await using var cluster = await TestCluster.StartAsync(targets: 1, lease: TimeSpan.FromSeconds(3));
        using var log = new CapturingLoggerProvider();
        await using var holder = await ParaFsClient.ConnectAsync(cluster.MdsEndpoint, loggerFactory: log);
        var (attr, handle) = await holder.CreateAsync(Me, Root, "lockfile", FileType.Regular, 0x1A4, openFlags: 2);
        var ino = attr.Attr.Ino;
        await holder.SetLockAsync(new LockRequest { Ino = ino, Owner = 1, Type = LockType.Write, Start = 0, End = 99, Pid = 10 }, wait: false);
        await holder.SetLockAsync(new LockRequest { Ino = ino, Owner = 1, Type = LockType.Unlock, Start = 40, End = 59 }, wait: false);
        await holder.SetLockAsync(new LockRequest { Ino = ino, Owner = 2, Flock = true, Type = LockType.Write, Start = 0, End = ulong.MaxValue, Pid = 11 }, wait: false);
        Assert.Equal(3, holder.HeldLockCount); // 0-39 and 60-99 of the record lock, and the flock

        await cluster.RestartMdsAsync();
        await holder.GetAttrAsync(ino, fresh: true); // reconnects now, rather than at the next second's check
        Assert.Equal(3, cluster.Mds.Sessions.Locks.Count);

        // Another client asks during the recovery window: it waits for the window to end, and is then refused.
        await using var other = await cluster.ClientAsync();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<ParaFsException>(() => other.SetLockAsync(new LockRequest { Ino = ino, Owner = 5, Type = LockType.Read, Start = 70, End = 70 }, wait: false));
        Assert.Equal(Errno.EAGAIN, refused.Errno);
        Assert.Equal(TimeSpan.Zero, cluster.Mds.Sessions.RecoveryLeft);
        Assert.True(started.Elapsed > TimeSpan.FromSeconds(1), $"the refusal came after {started.Elapsed}, before the window could have ended");
        var holderOf = await other.TestLockAsync(new LockRequest { Ino = ino, Owner = 5, Type = LockType.Write, Start = 0, End = 10 });
        Assert.Equal((LockType.Write, 0ul, 39ul), (holderOf.Type, holderOf.Start, holderOf.End));
        await Assert.ThrowsAsync<ParaFsException>(() => other.SetLockAsync(new LockRequest { Ino = ino, Owner = 6, Flock = true, Type = LockType.Read, Start = 0, End = ulong.MaxValue }, wait: false));
        await other.SetLockAsync(new LockRequest { Ino = ino, Owner = 5, Type = LockType.Write, Start = 40, End = 59 }, wait: false); // the hole stayed a hole

        // Given back, the range is the other client's; a waiter gets it when the holder lets go.
        var waiter = other.SetLockAsync(new LockRequest { Ino = ino, Owner = 6, Flock = true, Type = LockType.Write, Start = 0, End = ulong.MaxValue }, wait: true);
        await Task.Delay(300);
        Assert.False(waiter.IsCompleted);
        await holder.SetLockAsync(new LockRequest { Ino = ino, Owner = 2, Flock = true, Type = LockType.Unlock, Start = 0, End = ulong.MaxValue }, wait: false);
        await waiter.WaitAsync(TimeSpan.FromSeconds(10));
        await holder.ReleaseAsync(handle!);
        Assert.DoesNotContain(log.Warnings, w => w.Contains("did not take back", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Fsync_makes_data_durable_on_the_osts_and_the_size_durable_at_the_mds()
    {
        var data = RandomNumberGenerator.GetBytes(1_000_000);
        await using var cluster = await TestCluster.StartAsync(targets: 4);
        ulong ino;
        await using (var client = await cluster.ClientAsync())
        {
            var (attr, handle) = await client.CreateAsync(Me, Root, "durable", FileType.Regular, 0x1A4, openFlags: 2);
            ino = attr.Attr.Ino;
            await client.WriteAsync(handle!, 0, data);
            await client.FsyncAsync(handle!);
        }

        for (var i = 0; i < 4; i++)
        {
            await cluster.StopOstAsync(i);
            await cluster.StartOstAsync(i);
        }

        await cluster.RestartMdsAsync();
        await using var reader = await cluster.ClientAsync();
        var opened = await reader.OpenAsync(Me, ino, 0);
        Assert.Equal(data.Length, opened.Size);
        var read = new byte[data.Length];
        Assert.Equal(data.Length, await reader.ReadAsync(opened, 0, read));
        Assert.True(read.AsSpan().SequenceEqual(data));
    }
}
