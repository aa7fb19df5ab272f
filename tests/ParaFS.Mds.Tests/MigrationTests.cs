using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

/// <summary>The MDS's part of migration: pending layouts, generations, acknowledgements, cut-over, abort, retired objects, draining targets. Runs on both stores.</summary>
public abstract class MigrationTests(TestStore store)
{
    private const ulong Root = 1;

    private static MigrateRequest Begin(ulong ino, string pool) => new() { Caller = new Caller(), Ino = ino, Policy = new LayoutPolicy { Pool = pool } };

    private async Task<(MdsFixture Mds, List<FakeOst> A, List<FakeOst> B)> StartAsync(TimeSpan? lease = null)
    {
        var mds = await MdsFixture.StartAsync(store, lease: lease);
        var a = await mds.AddTargetsAsync(2, "a");
        var b = await mds.AddTargetsAsync(2, "b");
        await using var client = await mds.ClientAsync();
        await client.CallAsync(Methods.MdsSetStripe, new SetStripeRequest { Caller = client.Caller, Ino = Root, Policy = new LayoutPolicy { Pool = "a", StripeCount = 2 } }, GetStripeReply.Parser);
        return (mds, a, b);
    }

    private static async Task<ulong> FileInPoolAAsync(TestClient client, string name)
    {
        var attr = await client.CreateAsync(Root, name);
        await client.CallAsync(Methods.MdsReportSize, new SizeReportRequest { Reports = { new SizeReport { Ino = attr.Ino, Size = 5_000_000 } } });
        return attr.Ino;
    }

    [SuiteFact]
    public async Task Begin_adds_a_pending_layout_on_the_new_pool_and_is_resumable()
    {
        var (mds, a, b) = await StartAsync();
        await using var _ = mds;
        await using var client = await mds.ClientAsync();
        var ino = await FileInPoolAAsync(client, "f");
        var before = (await client.CallAsync(Methods.MdsGetStripe, new GetStripeRequest { Ino = ino }, GetStripeReply.Parser)).Layout;

        var begun = (await client.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "b"), GetStripeReply.Parser)).Layout;
        Assert.Equal(before.Generation + 1, begun.Generation);
        Assert.Equal(before.Objects, begun.Objects);
        Assert.Equal("b", begun.Pending.Pool);
        Assert.Equal(2, begun.Pending.Objects.Count);
        Assert.All(begun.Pending.Objects, o => Assert.Contains(o.TargetId, b.Select(t => t.TargetId)));

        // Again (a mover restarted): the same pending layout, no new generation.
        var again = (await client.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "b"), GetStripeReply.Parser)).Layout;
        Assert.Equal(begun, again);

        // Another pool while one migration runs: EBUSY, nothing changed.
        var busy = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "a"), GetStripeReply.Parser));
        Assert.Equal(Errno.EBUSY, busy.Errno);
        Assert.Equal(begun, (await client.CallAsync(Methods.MdsGetStripe, new GetStripeRequest { Ino = ino }, GetStripeReply.Parser)).Layout);
        Assert.Empty(a.Concat(b).SelectMany(t => t.Deletes));
    }

    [SuiteFact]
    public async Task Commit_waits_for_open_holders_and_old_objects_go_only_after_every_holder_moved_on()
    {
        var (mds, a, _) = await StartAsync();
        await using var _ = mds;
        await using var mover = await mds.ClientAsync();
        await using var holder = await mds.ClientAsync();
        var ino = await FileInPoolAAsync(mover, "held");
        var open = await holder.OpenAsync(ino, 2);
        var begun = (await mover.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "b"), GetStripeReply.Parser)).Layout;

        // The holder has not switched: the mover is told to wait, and a commit is refused.
        Assert.Equal(1u, (await mover.CallAsync(Methods.MdsLayoutWait, new LayoutWaitRequest { Ino = ino, Generation = begun.Generation }, LayoutWaitReply.Parser)).WaitingSessions);
        var early = await Assert.ThrowsAsync<RpcException>(() => mover.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = new Caller(), Ino = ino, Generation = begun.Generation }, GetStripeReply.Parser));
        Assert.Equal(Errno.EAGAIN, early.Errno);

        await holder.CallAsync(Methods.MdsLayoutAck, new LayoutAckRequest { Ino = ino, Generation = begun.Generation });
        Assert.Equal(0u, (await mover.CallAsync(Methods.MdsLayoutWait, new LayoutWaitRequest { Ino = ino, Generation = begun.Generation }, LayoutWaitReply.Parser)).WaitingSessions);
        var committed = (await mover.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = new Caller(), Ino = ino, Generation = begun.Generation }, GetStripeReply.Parser)).Layout;
        Assert.Equal(begun.Generation + 1, committed.Generation);
        Assert.Equal(begun.Pending.Objects, committed.Objects);
        Assert.Null(committed.Pending);
        Assert.Equal(begun.Objects, committed.Retired);

        // The holder still writes with the old generation: its old objects must stay.
        await mds.Server.Namespace.ReleaseRetiredAsync();
        await mds.Server.DrainDeletionsAsync();
        Assert.Empty(a.SelectMany(t => t.Deletes));

        await holder.CallAsync(Methods.MdsLayoutAck, new LayoutAckRequest { Ino = ino, Generation = committed.Generation });
        await mds.Server.DrainDeletionsAsync();
        Assert.Equal(begun.Objects.Select(o => o.ObjectId).Order(), a.SelectMany(t => t.Deletes).Order());
        Assert.Empty((await mover.CallAsync(Methods.MdsGetStripe, new GetStripeRequest { Ino = ino }, GetStripeReply.Parser)).Layout.Retired);
        await holder.CloseAsync(open.Handle);
    }

    [SuiteFact]
    public async Task After_a_restart_retired_objects_stay_and_cut_overs_wait_until_holders_had_their_lease_to_come_back()
    {
        var lease = TimeSpan.FromSeconds(2);
        var (mds, a, _) = await StartAsync(lease);
        await using var _ = mds;
        Assert.Equal(TimeSpan.Zero, mds.Server.Sessions.RecoveryLeft); // a new file system has no one to wait for
        await using var mover = await mds.ClientAsync();
        await using var holder = await mds.ClientAsync();
        var held = await FileInPoolAAsync(mover, "held");
        var moving = await FileInPoolAAsync(mover, "moving");
        var open = await holder.OpenAsync(held, 2);
        var begun = (await mover.CallAsync(Methods.MdsMigrateBegin, Begin(held, "b"), GetStripeReply.Parser)).Layout;
        await holder.CallAsync(Methods.MdsLayoutAck, new LayoutAckRequest { Ino = held, Generation = begun.Generation });
        var committed = (await mover.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = new Caller(), Ino = held, Generation = begun.Generation }, GetStripeReply.Parser)).Layout;
        var other = (await mover.CallAsync(Methods.MdsMigrateBegin, Begin(moving, "b"), GetStripeReply.Parser)).Layout;

        // The MDS restarts before the holder switched to the committed layout (its callback lost
        // with the MDS): the holder still reads and writes the old objects.
        await mds.RestartAsync();
        Assert.True(mds.Server.Sessions.RecoveryLeft > TimeSpan.Zero);
        await using var mover2 = await mds.ClientAsync();
        await mds.Server.Namespace.ReleaseRetiredAsync();
        await mds.Server.DrainDeletionsAsync();
        Assert.DoesNotContain(a.SelectMany(t => t.Deletes), id => begun.Objects.Any(o => o.ObjectId == id));

        // A mover is told to wait, and a cut-over is refused, while holders may be on their way back.
        var wait = await mover2.CallAsync(Methods.MdsLayoutWait, new LayoutWaitRequest { Ino = moving, Generation = other.Generation }, LayoutWaitReply.Parser);
        Assert.True(wait.WaitingSessions >= 1);
        Assert.InRange(wait.RecoveryMsLeft, 1u, (uint)lease.TotalMilliseconds); // the mover can say what it waits for
        var early = await Assert.ThrowsAsync<RpcException>(() => mover2.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = new Caller(), Ino = moving, Generation = other.Generation }, GetStripeReply.Parser));
        Assert.Equal(Errno.EAGAIN, early.Errno);
        Assert.Contains("started recently", early.Message);

        // The holder comes back with its handle at the old generation: it is reminded of the new layout.
        var reminded = new TaskCompletionSource<LayoutChanged>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var back = new RpcClient(mds.Server.Endpoint, new RpcClientOptions
        {
            ConnectionsPerServer = 1,
            PushHandler = (push, _) =>
            {
                if (push.Method == Methods.PushLayoutChanged)
                {
                    reminded.TrySetResult(push.ParseMessage(LayoutChanged.Parser));
                }

                return ValueTask.CompletedTask;
            },
        });
        var attach = new SessionRequest { SessionId = holder.SessionId, ClientName = "test" };
        attach.OpenHandles.Add(new OpenHandle { Handle = open.Handle, Ino = held, Flags = 2, LayoutGeneration = begun.Generation });
        await back.CallAsync(Methods.MdsSession, attach, SessionReply.Parser);
        var reminder = await reminded.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(held, reminder.Ino);
        Assert.Equal(committed.Generation, reminder.Generation);

        // The client's second connection attaches the same session and handles: callbacks were
        // reaching it through the first, so it is not reminded again.
        var again = 0;
        await using (var second = new RpcClient(mds.Server.Endpoint, new RpcClientOptions
        {
            ConnectionsPerServer = 1,
            PushHandler = (push, _) =>
            {
                if (push.Method == Methods.PushLayoutChanged)
                {
                    Interlocked.Increment(ref again);
                }

                return ValueTask.CompletedTask;
            },
        }))
        {
            await second.CallAsync(Methods.MdsSession, attach, SessionReply.Parser);
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.Equal(0, Volatile.Read(ref again));
        }

        // The window closes: the other file cuts over; the held file's old objects stay until its holder switches.
        while (mds.Server.Sessions.RecoveryLeft > TimeSpan.Zero)
        {
            await Task.Delay(100);
        }

        var after = await mover2.CallAsync(Methods.MdsLayoutWait, new LayoutWaitRequest { Ino = moving, Generation = other.Generation }, LayoutWaitReply.Parser);
        Assert.Equal(0u, after.WaitingSessions);
        Assert.Equal(0u, after.RecoveryMsLeft);
        await mover2.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = new Caller(), Ino = moving, Generation = other.Generation }, GetStripeReply.Parser);
        await mds.Server.Namespace.ReleaseRetiredAsync();
        await mds.Server.DrainDeletionsAsync();
        Assert.DoesNotContain(a.SelectMany(t => t.Deletes), id => begun.Objects.Any(o => o.ObjectId == id));
        Assert.Contains(a.SelectMany(t => t.Deletes), id => other.Objects.Any(o => o.ObjectId == id));

        using (await back.CallAsync(Methods.MdsLayoutAck, new LayoutAckRequest { Ino = held, Generation = committed.Generation }))
        {
        }
        await mds.Server.DrainDeletionsAsync();
        Assert.All(begun.Objects, o => Assert.Contains(o.ObjectId, a.SelectMany(t => t.Deletes)));
    }

    /// <summary>
    /// A client attaches its session on each of its connections. When the newest closes (a
    /// network break on one socket) while another stays, the session must live on there: before,
    /// it lost its connection, its lease ran out, and the MDS forgot the client's opens while the
    /// client went on using them (a migration then neither waited for it nor called it back).
    /// </summary>
    [SuiteFact]
    public async Task A_session_outlives_one_of_its_connections_and_its_callbacks_move_to_another()
    {
        var lease = TimeSpan.FromMilliseconds(500);
        var (mds, _, _) = await StartAsync(lease);
        await using var _ = mds;
        await using var mover = await mds.ClientAsync();
        var ino = await FileInPoolAAsync(mover, "held");
        var pushed = new TaskCompletionSource<LayoutChanged>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var holder = await mds.ClientAsync(onPush: (push, _) =>
        {
            if (push.Method == Methods.PushLayoutChanged)
            {
                pushed.TrySetResult(push.ParseMessage(LayoutChanged.Parser));
            }

            return ValueTask.CompletedTask;
        });
        var open = await holder.OpenAsync(ino, 2);

        // The same client's second connection attaches the session too, then breaks.
        var second = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 });
        var attach = new SessionRequest { SessionId = holder.SessionId, ClientName = "test" };
        attach.OpenHandles.Add(new OpenHandle { Handle = open.Handle, Ino = ino, Flags = 2, LayoutGeneration = 1 });
        Assert.Equal(holder.SessionId, (await second.CallAsync(Methods.MdsSession, attach, SessionReply.Parser)).SessionId);
        await second.DisposeAsync();

        await Task.Delay(lease * 3);
        Assert.Empty(mds.Server.Sessions.ExpireSessions(out var _));

        var begun = (await mover.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "b"), GetStripeReply.Parser)).Layout;
        var wait = await mover.CallAsync(Methods.MdsLayoutWait, new LayoutWaitRequest { Ino = ino, Generation = begun.Generation }, LayoutWaitReply.Parser);
        Assert.Equal(1u, wait.WaitingSessions);
        var callback = await pushed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(ino, callback.Ino);
        Assert.Equal(begun.Generation, callback.Generation);
    }

    [SuiteFact]
    public async Task Abort_keeps_the_old_layout_and_retires_the_new_objects()
    {
        var (mds, _, b) = await StartAsync();
        await using var _ = mds;
        await using var client = await mds.ClientAsync();
        var ino = await FileInPoolAAsync(client, "f");
        var begun = (await client.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "b"), GetStripeReply.Parser)).Layout;
        var aborted = (await client.CallAsync(Methods.MdsMigrateAbort, new MigrateRequest { Caller = new Caller(), Ino = ino }, GetStripeReply.Parser)).Layout;
        Assert.Equal("a", aborted.Pool);
        Assert.Equal(begun.Objects, aborted.Objects);
        Assert.Null(aborted.Pending);
        Assert.Equal(begun.Generation + 1, aborted.Generation);

        // A commit of the aborted copy is refused; nobody holds the file, so the new objects go.
        var stale = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = new Caller(), Ino = ino, Generation = begun.Generation }, GetStripeReply.Parser));
        Assert.Equal(Errno.EAGAIN, stale.Errno);
        await mds.Server.Namespace.ReleaseRetiredAsync();
        await mds.Server.DrainDeletionsAsync();
        Assert.Equal(begun.Pending.Objects.Select(o => o.ObjectId).Order(), b.SelectMany(t => t.Deletes).Order());
    }

    [SuiteFact]
    public async Task A_shrinking_truncate_during_a_migration_abandons_the_copy()
    {
        var (mds, a, _) = await StartAsync();
        await using var _ = mds;
        await using var client = await mds.ClientAsync();
        var ino = await FileInPoolAAsync(client, "f");
        var begun = (await client.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "b"), GetStripeReply.Parser)).Layout;
        var truncated = await client.SetAttrAsync(new SetAttrRequest { Ino = ino, Valid = (uint)SetAttrField.Size, Size = 1000 });
        Assert.Null(truncated.Layout.Pending);
        Assert.Equal(begun.Pending.Objects, truncated.Layout.Retired);
        Assert.NotEmpty(a.SelectMany(t => t.Truncates));
        var refused = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.MdsMigrateCommit, new MigrateRequest { Caller = new Caller(), Ino = ino, Generation = begun.Generation }, GetStripeReply.Parser));
        Assert.Equal(Errno.EAGAIN, refused.Errno);
    }

    [SuiteFact]
    public async Task Unlinking_a_migrating_file_deletes_the_objects_of_both_layouts()
    {
        var (mds, a, b) = await StartAsync();
        await using var _ = mds;
        await using var client = await mds.ClientAsync();
        var ino = await FileInPoolAAsync(client, "f");
        var begun = (await client.CallAsync(Methods.MdsMigrateBegin, Begin(ino, "b"), GetStripeReply.Parser)).Layout;
        await client.UnlinkAsync(Root, "f");
        await mds.Server.DrainDeletionsAsync();
        Assert.Equal(begun.Objects.Concat(begun.Pending.Objects).Select(o => o.ObjectId).Order(), a.Concat(b).SelectMany(t => t.Deletes).Order());
    }

    /// <summary>parafs fsck's view: the deletion queue in pages, oldest first, and the last object id handed out per target; root only.</summary>
    [SuiteFact]
    public async Task Object_bookkeeping_pages_the_deletion_queue_and_gives_each_targets_last_object_id()
    {
        var (mds, a, b) = await StartAsync();
        await using var _ = mds;
        await using var client = await mds.ClientAsync();
        var layouts = new List<Layout>();
        for (var i = 0; i < 3; i++)
        {
            var ino = await FileInPoolAAsync(client, $"f{i}");
            layouts.Add((await client.CallAsync(Methods.MdsGetStripe, new GetStripeRequest { Ino = ino }, GetStripeReply.Parser)).Layout);
        }

        // Pool a's targets stop answering, so the unlinks' deletions stay queued.
        foreach (var target in a)
        {
            await target.StopServingAsync();
        }

        await client.UnlinkAsync(Root, "f0");
        await client.UnlinkAsync(Root, "f1");
        await mds.Server.DrainDeletionsAsync();

        var denied = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.ObjectBookkeeping, new ObjectBookkeepingRequest { Caller = new Caller { Uid = 1000, Gid = 1000 }, Limit = 10 }, ObjectBookkeepingReply.Parser));
        Assert.Equal(Errno.EPERM, denied.Errno);

        var queued = new List<QueuedDeletion>();
        ObjectBookkeepingReply page;
        ulong after = 0;
        var pages = 0;
        do
        {
            page = await client.CallAsync(Methods.ObjectBookkeeping, new ObjectBookkeepingRequest { Caller = new Caller(), AfterDeletion = after, Limit = 3 }, ObjectBookkeepingReply.Parser);
            queued.AddRange(page.Deletions);
            after = page.NextAfter;
            pages++;
            var counters = page.Counters.ToDictionary(c => c.TargetId, c => c.LastObjectId);
            Assert.Equal(a.Concat(b).Select(t => t.TargetId).Order(), counters.Keys.Order());
            foreach (var target in a)
            {
                Assert.Equal(layouts.SelectMany(l => l.Objects).Where(o => o.TargetId == target.TargetId).Max(o => o.ObjectId), counters[target.TargetId]);
            }

            Assert.All(b, target => Assert.Equal(0UL, counters[target.TargetId]));
        }
        while (page.NextAfter != 0);

        Assert.Equal(3, pages);
        Assert.Equal(queued.Select(d => d.Id).Order(), queued.Select(d => d.Id));
        var expected = layouts.Take(2).SelectMany(l => l.Objects).Select(o => (o.TargetId, o.ObjectId)).Order();
        Assert.Equal(expected, queued.Select(d => (d.TargetId, d.ObjectId)).Order());
    }

    /// <summary>The startup scan for retired objects must not make a stop right after a start fail (it once did, with OperationCanceledException).</summary>
    [SuiteFact]
    public async Task An_mds_stopped_right_after_it_started_stops_cleanly()
    {
        for (var i = 0; i < 10; i++)
        {
            var mds = await MdsFixture.StartAsync(store);
            await mds.DisposeAsync();
        }
    }

    [SuiteFact]
    public async Task A_draining_target_gets_no_new_stripes_and_only_root_drains()
    {
        var (mds, a, _) = await StartAsync();
        await using var _ = mds;
        await using var client = await mds.ClientAsync();
        var denied = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.SetTargetState, new SetTargetStateRequest { Caller = new Caller { Uid = 1000, Gid = 1000 }, TargetId = a[0].TargetId, State = TargetState.Draining }, TargetInfo.Parser));
        Assert.Equal(Errno.EPERM, denied.Errno);
        var info = await client.CallAsync(Methods.SetTargetState, new SetTargetStateRequest { Caller = new Caller(), TargetId = a[0].TargetId, State = TargetState.Draining }, TargetInfo.Parser);
        Assert.Equal(TargetState.Draining, info.State);

        // Heartbeats keep it draining; new files in its pool all go to the other target.
        await a[0].HeartbeatAsync();
        for (var i = 0; i < 10; i++)
        {
            var ino = await FileInPoolAAsync(client, $"n{i}");
            var layout = (await client.CallAsync(Methods.MdsGetStripe, new GetStripeRequest { Ino = ino }, GetStripeReply.Parser)).Layout;
            Assert.Equal([a[1].TargetId], layout.Objects.Select(o => o.TargetId));
        }

        // ListFiles finds what is left on a target.
        var listed = await client.CallAsync(Methods.MdsListFiles, new ListFilesRequest { Limit = 100, TargetId = a[0].TargetId }, ListFilesReply.Parser);
        Assert.Empty(listed.Files);
        var all = await client.CallAsync(Methods.MdsListFiles, new ListFilesRequest { Limit = 100 }, ListFilesReply.Parser);
        Assert.Equal(10, all.Files.Count);
    }
}

public sealed class MigrationTestsOnSqlite() : MigrationTests(TestStore.Sqlite);

public sealed class MigrationTestsOnPostgres() : MigrationTests(TestStore.Postgres)
{
    public static string? SkipReason => TestPostgres.SkipReason;
}
