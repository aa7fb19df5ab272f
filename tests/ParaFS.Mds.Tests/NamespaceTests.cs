using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;
using Empty = ParaFS.Protocol.Ost.Empty;

namespace ParaFS.Mds.Tests;

public abstract class NamespaceTests(TestStore store)
{
    private const ulong Root = 1;

    [SuiteFact]
    public async Task Concurrent_creates_and_renames_in_one_directory_lose_and_duplicate_nothing()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(4);
        var clients = new List<TestClient>();
        for (var c = 0; c < 8; c++)
        {
            clients.Add(await mds.ClientAsync());
        }

        var dir = await clients[0].MkdirAsync(Root, "busy");
        await Task.WhenAll(clients.Select((client, c) => Task.Run(async () =>
        {
            for (var i = 0; i < 60; i++)
            {
                await client.CreateAsync(dir.Ino, $"c{c}-{i}");
                if (i % 2 == 0)
                {
                    await client.RenameAsync(dir.Ino, $"c{c}-{i}", dir.Ino, $"r{c}-{i}");
                }
            }
        })));

        var names = (await clients[0].ReaddirAllAsync(dir.Ino, 37)).Select(e => e.Name).ToList();
        var expected = Enumerable.Range(0, 8).SelectMany(c => Enumerable.Range(0, 60).Select(i => i % 2 == 0 ? $"r{c}-{i}" : $"c{c}-{i}")).Order().ToList();
        Assert.Equal(expected, names.Order().ToList());
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }
    }

    [SuiteFact]
    public async Task A_listing_in_progress_sees_every_entry_that_stays_exactly_once()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(1);
        await using var client = await mds.ClientAsync();
        var dir = await client.MkdirAsync(Root, "d");
        for (var i = 0; i < 100; i++)
        {
            await client.MkdirAsync(dir.Ino, $"stay{i:D3}");
            await client.MkdirAsync(dir.Ino, $"go{i:D3}");
        }

        var seen = new List<string>();
        ulong cookie = 0;
        var round = 0;
        while (true)
        {
            var page = await client.CallAsync(Methods.MdsReaddir, new ReaddirRequest { Caller = client.Caller, Ino = dir.Ino, Cookie = cookie, Limit = 16 }, ReaddirReply.Parser);
            seen.AddRange(page.Entries.Select(e => e.Name));
            if (!page.More)
            {
                break;
            }

            cookie = page.Entries[^1].Cookie;

            // The directory changes under the listing: removals and additions between pages.
            await client.RmdirAsync(dir.Ino, $"go{round:D3}");
            await client.MkdirAsync(dir.Ino, $"new{round}");
            round++;
        }

        var stayed = seen.Where(n => n.StartsWith("stay", StringComparison.Ordinal)).ToList();
        Assert.Equal(100, stayed.Count);
        Assert.Equal(stayed.Count, stayed.Distinct().Count());
        Assert.Equal(seen.Count, seen.Distinct().Count());
    }

    [SuiteFact]
    public async Task Rename_over_a_file_replaces_it_atomically_and_deletes_its_objects()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        var osts = await mds.AddTargetsAsync(2);
        await using var client = await mds.ClientAsync();
        var a = await client.CreateAsync(Root, "a");
        var b = await client.CreateAsync(Root, "b");
        var bLayout = (await client.GetAttrAsync(b.Ino)).Layout;
        await client.RenameAsync(Root, "a", Root, "b");

        Assert.Equal(a.Ino, (await client.LookupAsync(Root, "b")).Attr.Ino);
        await Assert.ThrowsAsync<RpcException>(() => client.LookupAsync(Root, "a"));
        await mds.Server.DrainDeletionsAsync();
        var deleted = osts.SelectMany(o => o.Deletes.Select(d => (o.TargetId, d))).ToHashSet();
        Assert.All(bLayout.Objects, o => Assert.Contains((o.TargetId, o.ObjectId), deleted));
    }

    [SuiteFact]
    public async Task Rename_exchange_swaps_two_names_and_moves_directories_between_parents()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await using var client = await mds.ClientAsync();
        var left = await client.MkdirAsync(Root, "left");
        var right = await client.MkdirAsync(Root, "right");
        var inner = await client.MkdirAsync(left.Ino, "inner");
        var file = await client.CreateAsync(right.Ino, "file", FileType.Fifo);
        await client.RenameAsync(left.Ino, "inner", right.Ino, "file", flags: 2);

        Assert.Equal(inner.Ino, (await client.LookupAsync(right.Ino, "file")).Attr.Ino);
        Assert.Equal(file.Ino, (await client.LookupAsync(left.Ino, "inner")).Attr.Ino);
        Assert.Equal(right.Ino, (await client.LookupAsync(inner.Ino, "..")).Attr.Ino);
        Assert.Equal(2u, (await client.GetAttrAsync(left.Ino)).Attr.Nlink);
        Assert.Equal(3u, (await client.GetAttrAsync(right.Ino)).Attr.Nlink);
    }

    [SuiteFact]
    public async Task Hard_links_count_names_and_the_last_unlink_deletes_the_objects()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        var osts = await mds.AddTargetsAsync(1);
        await using var client = await mds.ClientAsync();
        var file = await client.CreateAsync(Root, "one");
        var linked = await client.LinkAsync(file.Ino, Root, "two");
        Assert.Equal(2u, linked.Attr.Nlink);

        await client.UnlinkAsync(Root, "one");
        Assert.Equal(1u, (await client.LookupAsync(Root, "two")).Attr.Nlink);
        await mds.Server.DrainDeletionsAsync();
        Assert.Empty(osts[0].Deletes);

        await client.UnlinkAsync(Root, "two");
        await mds.Server.DrainDeletionsAsync();
        Assert.Single(osts[0].Deletes);
        var e = await Assert.ThrowsAsync<RpcException>(() => client.GetAttrAsync(file.Ino));
        Assert.Equal(Errno.ENOENT, e.Errno);
    }

    [SuiteFact]
    public async Task Unlink_of_an_open_file_keeps_its_objects_until_the_last_close_on_any_client()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        var osts = await mds.AddTargetsAsync(2);
        await using var first = await mds.ClientAsync();
        await using var second = await mds.ClientAsync();
        var created = await first.CreateOpenAsync(Root, "open-me");
        var other = await second.OpenAsync(created.Attr.Ino, flags: 0);

        await first.UnlinkAsync(Root, "open-me");
        await Assert.ThrowsAsync<RpcException>(() => first.LookupAsync(Root, "open-me"));
        var orphan = await first.GetAttrAsync(created.Attr.Ino);
        Assert.Equal(0u, orphan.Attr.Nlink);

        await first.CloseAsync(created.Handle);
        await mds.Server.DrainDeletionsAsync();
        Assert.All(osts, o => Assert.Empty(o.Deletes));

        await second.CloseAsync(other.Handle);
        await mds.Server.DrainDeletionsAsync();
        Assert.Equal(2, osts.Sum(o => o.Deletes.Count));
        await Assert.ThrowsAsync<RpcException>(() => first.GetAttrAsync(created.Attr.Ino));
    }

    /// <summary>
    /// A file that lost its name while open and is still held when an MDS restarts: its holder
    /// comes back with the handle within the recovery window, the MDS's check for unclaimed
    /// orphans after the window leaves it, and its last close after that deletes it.
    /// </summary>
    [SuiteFact]
    public async Task An_orphan_held_open_across_a_restart_goes_at_its_last_close_after_the_recovery_window()
    {
        await using var mds = await MdsFixture.StartAsync(store, lease: TimeSpan.FromSeconds(2));
        var osts = await mds.AddTargetsAsync(1);
        ulong session;
        EntryReply created;
        await using (var before = await mds.ClientAsync())
        {
            session = before.SessionId;
            created = await before.CreateOpenAsync(Root, "held");
            await before.UnlinkAsync(Root, "held");
            await mds.RestartAsync();
        }

        await using var rpc = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 });
        await rpc.CallAsync(Methods.MdsSession, new SessionRequest
        {
            SessionId = session,
            ClientName = "test",
            OpenHandles = { new OpenHandle { Handle = created.Handle, Ino = created.Attr.Ino, Flags = 2 } },
        }, SessionReply.Parser);
        while (mds.Server.Sessions.RecoveryLeft > TimeSpan.Zero)
        {
            await Task.Delay(100);
        }

        // What the MDS's own check does once the window is over: the orphan is held, so it stays.
        Assert.Equal(0, await mds.Server.Namespace.ReclaimOrphansAsync());
        Assert.Equal(0u, (await rpc.CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Ino = created.Attr.Ino }, AttrReply.Parser)).Attr.Nlink);

        await rpc.CallAsync(Methods.MdsClose, new CloseRequest { Handle = created.Handle }, Empty.Parser);
        var gone = await Assert.ThrowsAsync<RpcException>(() => rpc.CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Ino = created.Attr.Ino }, AttrReply.Parser));
        Assert.Equal(Errno.ENOENT, gone.Errno);
        await mds.Server.DrainDeletionsAsync();
        Assert.Single(osts[0].Deletes);
    }

    [SuiteFact]
    public async Task A_client_that_vanishes_releases_its_opens_after_the_lease()
    {
        await using var mds = await MdsFixture.StartAsync(store, lease: TimeSpan.FromMilliseconds(500));
        var osts = await mds.AddTargetsAsync(1);
        await using var survivor = await mds.ClientAsync();
        var ghost = await mds.ClientAsync();
        var created = await ghost.CreateOpenAsync(Root, "ghost-file");
        await survivor.UnlinkAsync(Root, "ghost-file");
        await ghost.DisposeAsync();

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (osts[0].Deletes.IsEmpty && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Single(osts[0].Deletes);
        await Assert.ThrowsAsync<RpcException>(() => survivor.GetAttrAsync(created.Attr.Ino));
    }

    [SuiteFact]
    public async Task Queued_object_deletions_survive_an_mds_restart_and_reach_a_target_that_comes_back()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        var osts = await mds.AddTargetsAsync(1);
        await using (var client = await mds.ClientAsync())
        {
            await client.CreateAsync(Root, "doomed");
            await osts[0].StopServingAsync();
            await client.UnlinkAsync(Root, "doomed");
        }

        await mds.Server.DrainDeletionsAsync();
        await mds.RestartAsync();

        // The target comes back on a new address and heartbeats it.
        await using var back = await FakeOst.StartAsync(mds.Server, "default", 1L << 30);
        await mds.Server.Targets.HeartbeatAsync(new TargetHeartbeatRequest { TargetId = osts[0].TargetId, Address = back.Address });
        await mds.Server.DrainDeletionsAsync();
        Assert.Single(back.Deletes);
    }

    [SuiteFact]
    public async Task Truncate_cuts_each_object_on_its_target_to_its_share_of_the_new_size()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        var osts = await mds.AddTargetsAsync(4);
        await using var client = await mds.ClientAsync();
        await client.CallAsync(Methods.MdsSetStripe, new SetStripeRequest { Caller = client.Caller, Ino = Root, Policy = new LayoutPolicy { StripeSize = 65536, StripeCount = 4 } });
        var file = await client.CreateOpenAsync(Root, "t");
        await client.CallAsync(Methods.MdsReportSize, new SizeReportRequest { Reports = { new SizeReport { Ino = file.Attr.Ino, Size = 10 * 65536 } } });
        Assert.Equal(10ul * 65536, (await client.GetAttrAsync(file.Attr.Ino)).Attr.Size);

        // 5.5 stripes: objects 0 and 1 keep two stripes' worth, 2 keeps one, 3 keeps one and a half... per RAID-0.
        var size = (5 * 65536) + 32768;
        var attr = await client.SetAttrAsync(new SetAttrRequest { Ino = file.Attr.Ino, Valid = (uint)SetAttrField.Size, Size = (ulong)size, Handle = file.Handle });
        Assert.Equal((ulong)size, attr.Attr.Size);
        var map = new StripeMap(65536, 4);
        var cut = osts.SelectMany(o => o.Truncates.Select(t => (o.TargetId, t.Object, t.Size))).ToList();
        foreach (var (o, index) in file.Layout.Objects.Select((o, i) => (o, i)))
        {
            var expected = map.ObjectSize(index, size);
            if (expected < map.ObjectSize(index, 10 * 65536))
            {
                Assert.Contains((o.TargetId, o.ObjectId, (ulong)expected), cut);
            }
        }

        Assert.Equal(new ulong[] { 131072, 98304, 65536, 65536 }, file.Layout.Objects.Select((_, i) => (ulong)map.ObjectSize(i, size)));
    }

    [SuiteFact]
    public async Task A_larger_size_report_wins_and_a_smaller_one_changes_nothing()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(1);
        await using var client = await mds.ClientAsync();
        var file = await client.CreateAsync(Root, "grow");
        await client.CallAsync(Methods.MdsReportSize, new SizeReportRequest { Reports = { new SizeReport { Ino = file.Ino, Size = 5000, MtimeNs = 100 } } });
        await client.CallAsync(Methods.MdsReportSize, new SizeReportRequest { Reports = { new SizeReport { Ino = file.Ino, Size = 3000, MtimeNs = 50 } } });
        Assert.Equal(5000ul, (await client.GetAttrAsync(file.Ino)).Attr.Size);
    }

    [SuiteFact]
    public async Task Another_client_is_told_when_an_entry_changes()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(1);
        var changed = new TaskCompletionSource<EntryChanged>();
        await using var watcher = await mds.ClientAsync(onPush: (push, _) =>
        {
            if (push.Method == Methods.PushEntryChanged)
            {
                changed.TrySetResult(push.ParseMessage(EntryChanged.Parser));
            }

            return ValueTask.CompletedTask;
        });
        await using var actor = await mds.ClientAsync();
        await actor.CreateAsync(Root, "news");
        var push = await changed.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Root, push.Parent);
        Assert.Equal("news", push.Name);
    }

    [SuiteFact]
    public async Task Xattrs_round_trip_and_trusted_ones_are_hidden_from_users()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(1);
        await using var root = await mds.ClientAsync();
        var file = await root.CreateAsync(Root, "x", mode: 0x1B6);
        await root.SetXattrAsync(file.Ino, "user.a", [1, 2, 3]);
        await root.SetXattrAsync(file.Ino, "trusted.b", [4]);
        await root.SetXattrAsync(file.Ino, "user.a", [9], flags: 2);
        Assert.Equal(new byte[] { 9 }, await root.GetXattrAsync(file.Ino, "user.a"));

        await using var user = await mds.ClientAsync(uid: 1000, gid: 1000);
        var names = await user.CallAsync(Methods.MdsListXattr, new XattrRequest { Caller = user.Caller, Ino = file.Ino }, XattrReply.Parser);
        Assert.Equal(["user.a"], names.Names);
    }
}

public sealed class NamespaceTestsOnSqlite() : NamespaceTests(TestStore.Sqlite);

public sealed class NamespaceTestsOnPostgres() : NamespaceTests(TestStore.Postgres)
{
    public static string? SkipReason => TestPostgres.SkipReason;
}
