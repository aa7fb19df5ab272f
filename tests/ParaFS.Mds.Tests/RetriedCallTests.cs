using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;
using Empty = ParaFS.Protocol.Ost.Empty;

namespace ParaFS.Mds.Tests;

/// <summary>
/// Calls sent again with the same replay tag (a client whose connection broke before the reply,
/// or whose MDS restarted after the commit) get the first call's reply and run once. Runs on both stores.
/// </summary>
public abstract class RetriedCallTests(TestStore store)
{
    private const ulong Root = 1;
    private const ulong Client = 0xC0FFEE0000000001;

    private static ReplayTag Tag(uint slot, ulong xid, bool resent = false) => new() { Client = Client, Slot = slot, Xid = xid, Resent = resent };

    [SuiteFact]
    public async Task A_retried_create_rename_unlink_and_link_get_their_first_replies_and_run_once()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(2);
        await using var client = await mds.ClientAsync();
        var caller = client.Caller;
        Assert.True(client.Rpc.ServerInfo?.KeepsReplies, "the MDS does not say in its handshake that it keeps replies");

        var create = new CreateRequest { Caller = caller, Parent = Root, Name = "a", Type = FileType.Regular, Mode = 0x1A4, Exclusive = true };
        var first = await client.Rpc.CallAsync(Methods.MdsCreate, create, EntryReply.Parser, replay: Tag(1, 1));
        var again = await client.Rpc.CallAsync(Methods.MdsCreate, create, EntryReply.Parser, replay: Tag(1, 1, resent: true));
        Assert.Equal(first.Attr.Ino, again.Attr.Ino);

        // A new call in the same slot runs: the name exists now.
        var exists = await Assert.ThrowsAsync<RpcException>(() => client.Rpc.CallAsync(Methods.MdsCreate, create, EntryReply.Parser, replay: Tag(1, 2)));
        Assert.Equal(Errno.EEXIST, exists.Errno);

        var link = new LinkRequest { Caller = caller, Ino = first.Attr.Ino, NewParent = Root, NewName = "hard" };
        var linked = await client.Rpc.CallAsync(Methods.MdsLink, link, AttrReply.Parser, replay: Tag(2, 3));
        var linkedAgain = await client.Rpc.CallAsync(Methods.MdsLink, link, AttrReply.Parser, replay: Tag(2, 3, resent: true));
        Assert.Equal(2u, linked.Attr.Nlink);
        Assert.Equal(2u, linkedAgain.Attr.Nlink);

        var rename = new RenameRequest { Caller = caller, Parent = Root, Name = "a", NewParent = Root, NewName = "b" };
        await client.Rpc.CallAsync(Methods.MdsRename, rename, Empty.Parser, replay: Tag(1, 4));
        await client.Rpc.CallAsync(Methods.MdsRename, rename, Empty.Parser, replay: Tag(1, 4, resent: true));

        var unlink = new RemoveRequest { Caller = caller, Parent = Root, Name = "hard" };
        await client.Rpc.CallAsync(Methods.MdsRemove, unlink, Empty.Parser, replay: Tag(3, 5));
        // A first send of a call this MDS has run (it waited in a queue while its client timed
        // out and sent it again) is answered from the record too.
        await client.Rpc.CallAsync(Methods.MdsRemove, unlink, Empty.Parser, replay: Tag(3, 5));

        var names = (await client.ReaddirAllAsync(Root)).Select(e => e.Name).Where(n => n is not "." and not "..").ToList();
        Assert.Equal(["b"], names);
        Assert.Equal(1u, (await client.GetAttrAsync(first.Attr.Ino)).Attr.Nlink);
        Assert.Equal(4, mds.Server.Namespace.RepliesReplayed);

        // Without a tag the same rename runs again, and fails as a second rename does.
        var missing = await Assert.ThrowsAsync<RpcException>(() => client.Rpc.CallAsync(Methods.MdsRename, rename, Empty.Parser));
        Assert.Equal(Errno.ENOENT, missing.Errno);
    }

    [SuiteFact]
    public async Task Copies_of_one_call_sent_at_once_run_it_once_and_all_get_its_reply()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        var clients = new List<TestClient>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await mds.ClientAsync());
            }

            var create = new CreateRequest { Caller = clients[0].Caller, Parent = Root, Name = "once", Type = FileType.Directory, Mode = 0x1ED, Exclusive = true };
            var replies = await Task.WhenAll(clients.SelectMany(c => Enumerable.Range(0, 4).Select(i =>
                c.Rpc.CallAsync(Methods.MdsCreate, create, EntryReply.Parser, replay: Tag(7, 70, resent: i > 0)))));
            Assert.Single(replies.Select(r => r.Attr.Ino).Distinct());
            Assert.Equal(3u, (await clients[0].GetAttrAsync(Root)).Attr.Nlink);
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }

    [SuiteFact]
    public async Task A_reply_recorded_before_a_restart_answers_the_retry_after_it_and_its_open_handle_comes_back()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(2);
        ulong session;
        var create = new CreateRequest
        {
            Caller = new Caller(), Parent = Root, Name = "ckpt", Type = FileType.Regular, Mode = 0x1A4, Exclusive = true, Open = true, OpenFlags = 2,
        };
        EntryReply first;
        await using (var before = await mds.ClientAsync())
        {
            session = before.SessionId;
            first = await before.Rpc.CallAsync(Methods.MdsCreate, create, EntryReply.Parser, replay: Tag(1, 9));
            Assert.NotEqual(0ul, first.Handle);
        }

        // The MDS crashed after the commit; the client never saw the reply, so it reattaches its
        // session without the handle and sends the create again.
        await mds.RestartAsync();
        await using var rpc = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 });
        await rpc.CallAsync(Methods.MdsSession, new SessionRequest { SessionId = session, ClientName = "test" }, SessionReply.Parser);
        var retried = await rpc.CallAsync(Methods.MdsCreate, create, EntryReply.Parser, replay: Tag(1, 9, resent: true));
        Assert.Equal(first.Attr.Ino, retried.Attr.Ino);
        Assert.Equal(first.Handle, retried.Handle);

        // The handle is registered again: an unlink keeps the file until it is closed.
        await rpc.CallAsync(Methods.MdsRemove, new RemoveRequest { Caller = new Caller(), Parent = Root, Name = "ckpt" }, Empty.Parser);
        var orphan = await rpc.CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Ino = first.Attr.Ino }, AttrReply.Parser);
        Assert.Equal(0u, orphan.Attr.Nlink);
        await rpc.CallAsync(Methods.MdsClose, new CloseRequest { Handle = first.Handle }, Empty.Parser);
        var gone = await Assert.ThrowsAsync<RpcException>(() => rpc.CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Ino = first.Attr.Ino }, AttrReply.Parser));
        Assert.Equal(Errno.ENOENT, gone.Errno);
    }

    /// <summary>
    /// A plain open writes nothing to the store (no reply record, so no flush per open): a copy of
    /// it after a restart just opens again. A truncating open records its reply, so its copy is
    /// answered from the record and does not cut the file a second time.
    /// </summary>
    [SuiteFact]
    public async Task Only_a_truncating_open_is_answered_from_its_record_after_a_restart()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(2);
        ulong session, ino;
        var setSize = (ulong size) => new SetAttrRequest { Caller = new Caller(), Valid = (uint)SetAttrField.Size, Size = size };
        await using (var before = await mds.ClientAsync())
        {
            session = before.SessionId;
            ino = (await before.CreateAsync(Root, "data")).Ino;
            await before.Rpc.CallAsync(Methods.MdsSetAttr, new SetAttrRequest(setSize(1000)) { Ino = ino }, AttrReply.Parser);
            await before.Rpc.CallAsync(Methods.MdsOpen, new OpenRequest { Caller = new Caller(), Ino = ino, Flags = 0 }, OpenReply.Parser, replay: Tag(1, 1));
            var truncated = await before.Rpc.CallAsync(Methods.MdsOpen, new OpenRequest { Caller = new Caller(), Ino = ino, Flags = 0x202 }, OpenReply.Parser, replay: Tag(2, 2));
            Assert.Equal(0ul, truncated.Attr.Size);

            // Another writer grows the file again before the MDS goes down.
            await before.Rpc.CallAsync(Methods.MdsSetAttr, new SetAttrRequest(setSize(500)) { Ino = ino }, AttrReply.Parser);
        }

        await mds.RestartAsync();
        await using var rpc = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1 });
        await rpc.CallAsync(Methods.MdsSession, new SessionRequest { SessionId = session, ClientName = "test" }, SessionReply.Parser);

        var plain = await rpc.CallAsync(Methods.MdsOpen, new OpenRequest { Caller = new Caller(), Ino = ino, Flags = 0 }, OpenReply.Parser, replay: Tag(1, 1, resent: true));
        Assert.NotEqual(0ul, plain.Handle);
        Assert.Equal(0, mds.Server.Namespace.RepliesReplayed);

        var again = await rpc.CallAsync(Methods.MdsOpen, new OpenRequest { Caller = new Caller(), Ino = ino, Flags = 0x202 }, OpenReply.Parser, replay: Tag(2, 2, resent: true));
        Assert.Equal(1, mds.Server.Namespace.RepliesReplayed);
        Assert.Equal(500ul, (await rpc.CallAsync(Methods.MdsGetAttr, new GetAttrRequest { Ino = ino }, AttrReply.Parser)).Attr.Size);
        Assert.NotEqual(plain.Handle, again.Handle);
    }

    [SuiteFact]
    public async Task A_call_its_client_gave_up_on_is_never_run_after_a_newer_one_used_its_slot()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await using var client = await mds.ClientAsync();
        var mkdir = new CreateRequest { Caller = client.Caller, Parent = Root, Name = "late", Type = FileType.Directory, Mode = 0x1ED };
        await client.Rpc.CallAsync(Methods.MdsCreate, new CreateRequest(mkdir) { Name = "newer" }, EntryReply.Parser, replay: Tag(4, 40));

        // Refused from the MDS's memory of the slot (a late first send), and after a restart from the record.
        var stale = await Assert.ThrowsAsync<RpcException>(() => client.Rpc.CallAsync(Methods.MdsCreate, mkdir, EntryReply.Parser, replay: Tag(4, 39)));
        Assert.Equal(Errno.EIO, stale.Errno);
        Assert.Contains("given up by its client", stale.Message, StringComparison.Ordinal);
        await mds.RestartAsync();
        await using var back = await mds.ClientAsync();
        stale = await Assert.ThrowsAsync<RpcException>(() => back.Rpc.CallAsync(Methods.MdsCreate, mkdir, EntryReply.Parser, replay: Tag(4, 39, resent: true)));
        Assert.Equal(Errno.EIO, stale.Errno);
        var lookup = await Assert.ThrowsAsync<RpcException>(() => back.LookupAsync(Root, "late"));
        Assert.Equal(Errno.ENOENT, lookup.Errno);
    }
}

public sealed class RetriedCallTestsOnSqlite() : RetriedCallTests(TestStore.Sqlite);

public sealed class RetriedCallTestsOnPostgres() : RetriedCallTests(TestStore.Postgres)
{
    public static string? SkipReason => TestPostgres.SkipReason;
}
