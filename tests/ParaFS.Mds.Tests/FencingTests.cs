using ParaFS.Client;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Tests;

/// <summary>
/// The leader epoch on PostgreSQL: once another MDS has claimed the store, nothing the MDS that
/// served before writes lands after the claim, whether the write starts later, runs across the
/// claim, or hangs in the middle of it.
/// </summary>
public sealed class FencingTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);

    [PostgresFact]
    public async Task A_write_after_another_MDS_claimed_the_store_changes_nothing_and_deposes_the_old_one()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        await using var old = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        await using var next = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        var ended = 0;
        Assert.Equal(1, await old.ClaimLeadershipAsync(Grace, n => ended += n));
        await InsertAsync(old, 10);

        Assert.Equal(2, await next.ClaimLeadershipAsync(Grace, n => ended += n));
        var refused = await Assert.ThrowsAsync<LeadershipLostException>(() => InsertAsync(old, 11));
        Assert.Contains("another MDS has claimed the metadata store", refused.Message, StringComparison.Ordinal);
        Assert.Contains("(leader epoch 2; this MDS served epoch 1)", refused.Message, StringComparison.Ordinal);
        Assert.Equal(refused.Message, await old.Deposed.WaitAsync(Eventually.Patience));

        Assert.NotNull(await next.ReadAsync(tx => tx.GetInode(10)));
        Assert.Null(await next.ReadAsync(tx => tx.GetInode(11)));
        await InsertAsync(next, 12);
        Assert.False(next.Deposed.IsCompleted);
        Assert.Equal(0, ended);
    }

    [PostgresFact]
    public async Task A_write_of_the_old_MDS_running_at_the_claim_commits_before_it()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        await using var old = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        await using var next = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        await old.ClaimLeadershipAsync(Grace, _ => { });
        using var release = new ManualResetEventSlim();
        var write = HeldWrite(old, 20, 21, release);

        var ended = 0;
        var claim = next.ClaimLeadershipAsync(TimeSpan.FromSeconds(30), n => ended += n);
        await Task.Delay(300);
        Assert.False(claim.IsCompleted, "the claim must wait for the old MDS's write in flight");
        release.Set();
        await write;
        Assert.Equal(2, await claim);

        // The old write landed whole, before the claim: the new MDS reads it.
        Assert.NotNull(await next.ReadAsync(tx => tx.GetInode(20)));
        Assert.NotNull(await next.ReadAsync(tx => tx.GetInode(21)));
        Assert.Equal(0, ended);
        await Assert.ThrowsAsync<LeadershipLostException>(() => InsertAsync(old, 22));
    }

    [PostgresFact]
    public async Task A_write_of_the_old_MDS_that_hangs_across_the_claim_is_ended_and_changes_nothing()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        await using var old = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        await using var next = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        await old.ClaimLeadershipAsync(Grace, _ => { });
        using var release = new ManualResetEventSlim();
        var write = HeldWrite(old, 30, 31, release);

        // As if the old MDS were paused: its write holds the epoch row past the grace.
        var ended = 0;
        Assert.Equal(2, await next.ClaimLeadershipAsync(TimeSpan.FromMilliseconds(300), n => ended += n));
        Assert.Equal(1, ended);

        release.Set();
        var refused = await Assert.ThrowsAsync<LeadershipLostException>(() => write);
        Assert.Contains("(leader epoch 2; this MDS served epoch 1)", refused.Message, StringComparison.Ordinal);
        Assert.Null(await next.ReadAsync(tx => tx.GetInode(30)));
        Assert.Null(await next.ReadAsync(tx => tx.GetInode(31)));
        Assert.True(old.Deposed.IsCompleted);
    }

    /// <summary>
    /// A write transaction that changes nothing (a plain open registering its handle, a close
    /// that finds no orphan) never takes the epoch row: a claim does not wait for it, and it gets
    /// no transaction id, so its commit waits for no WAL flush. The first change of a transaction
    /// is what takes the row, and a claim still waits for that one.
    /// </summary>
    [PostgresFact]
    public async Task A_write_that_changes_nothing_does_not_hold_the_epoch_row()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        await using var old = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        await using var next = await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        await old.ClaimLeadershipAsync(Grace, _ => { });
        await InsertAsync(old, 40);

        using var inside = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var readsOnly = Task.Run(() => old.WriteAsync(tx =>
        {
            var found = tx.GetInode(40) is not null;
            inside.Set();
            release.Wait(Eventually.Patience);
            return found;
        }));
        Assert.True(inside.Wait(Eventually.Patience));

        var ended = 0;
        var claim = next.ClaimLeadershipAsync(TimeSpan.FromSeconds(30), n => ended += n);
        Assert.Same(claim, await Task.WhenAny(claim, Task.Delay(TimeSpan.FromSeconds(10))));
        Assert.Equal(2, await claim);
        Assert.Equal(0, ended);

        release.Set();
        Assert.True(await readsOnly);
        await Assert.ThrowsAsync<LeadershipLostException>(() => InsertAsync(old, 41));
        Assert.Null(await next.ReadAsync(tx => tx.GetInode(41)));
    }

    /// <summary>
    /// The whole path: an MDS whose lock session was ended does not notice (its check is an hour
    /// away), a second MDS takes the lock and claims the store, and a client's mkdir reaches the
    /// old one first. The old MDS drops the call unanswered and stops serving; the client's retry
    /// finds the new MDS, and the directory is made there once.
    /// </summary>
    [PostgresFact]
    public async Task A_call_that_reaches_a_deposed_mds_is_not_answered_there_and_runs_once_on_the_new_one()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        var (a, b) = ($"127.0.0.1:{ParafsProcess.FreePort()}", $"127.0.0.1:{ParafsProcess.FreePort()}");
        await using var first = await MdsServer.StartAsync(MdsFixture.Options("", a, store: database.ConnectionString) with { LeaderPoll = TimeSpan.FromHours(1) });
        await using var client = await ParaFsClient.ConnectAsync(Protocol.Rpc.RpcEndpoint.Parse($"{a},{b}"));
        await client.CreateAsync(new Caller(), ParaFsClient.RootIno, "before", FileType.Directory, 0x1ED);

        await database.ExecuteAsync("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'parafs-mds-leader' AND datname = current_database()");
        await using var second = await MdsServer.StartAsync(MdsFixture.Options("", b, store: database.ConnectionString) with { LeaderPoll = TimeSpan.FromMilliseconds(200) });
        Assert.False(first.Deposed.IsCompleted, "the first MDS has not noticed yet: only the epoch can stop it");

        await client.CreateAsync(new Caller(), ParaFsClient.RootIno, "after", FileType.Directory, 0x1ED);
        var reason = await first.Deposed.WaitAsync(Eventually.Patience);
        Assert.Contains("(leader epoch 2; this MDS served epoch 1)", reason, StringComparison.Ordinal);

        await using var check = await ParaFsClient.ConnectAsync(Protocol.Rpc.RpcEndpoint.Parse(b));
        Assert.Equal(FileType.Directory, (await check.LookupAsync(new Caller(), ParaFsClient.RootIno, "before")).Attr.Type);
        Assert.Equal(FileType.Directory, (await check.LookupAsync(new Caller(), ParaFsClient.RootIno, "after")).Attr.Type);
        Assert.False(second.Deposed.IsCompleted);
    }

    /// <summary>
    /// A write of the old MDS that inserts <paramref name="first"/>, holds its transaction open
    /// until <paramref name="release"/>, then inserts <paramref name="second"/>; returned once it
    /// holds the epoch row.
    /// </summary>
    private static Task<int> HeldWrite(IMetadataStore old, long first, long second, ManualResetEventSlim release)
    {
        using var inside = new ManualResetEventSlim();
        var write = Task.Run(() => old.WriteAsync(tx =>
        {
            tx.InsertInode(Inode(first));
            inside.Set();
            release.Wait(Eventually.Patience);
            tx.InsertInode(Inode(second));
            return 0;
        }));
        Assert.True(inside.Wait(Eventually.Patience));
        return write;
    }

    private static Task<int> InsertAsync(IMetadataStore store, long ino) => store.WriteAsync(tx =>
    {
        tx.InsertInode(Inode(ino));
        return 0;
    });

    private static InodeRecord Inode(long ino) => new()
    {
        Ino = ino,
        Type = FileType.Regular,
        Mode = 0x1A4,
        Nlink = 1,
        Parent = 1,
    };
}
