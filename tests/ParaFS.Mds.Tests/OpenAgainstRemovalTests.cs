using Npgsql;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Mds.Namespace;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

/// <summary>
/// An open that races the removal of the file's last name, on PostgreSQL, where write
/// transactions run side by side. The removal has decided (nobody holds the file open) and is
/// about to commit the inode's deletion; an open arriving then must not succeed on the inode the
/// removal is deleting: it waits for the removal and finds the name gone.
/// </summary>
public sealed class OpenAgainstRemovalTests
{
    private const ulong Root = 1;

    [PostgresFact]
    public Task An_open_during_an_unlink_that_is_deleting_the_inode_waits_and_finds_it_gone() => RaceUnlinkAsync(
        (opener, ino) => opener.OpenAsync(ino, OpenFlags.ReadOnly),
        async (_, _, open, completedFirst) =>
        {
            Assert.False(completedFirst, "the open completed while the unlink deleting its inode had not committed");
            var refused = await Assert.ThrowsAsync<RpcException>(() => open.WaitAsync(Eventually.Patience));
            Assert.Equal(Errno.ENOENT, refused.Errno);
        });

    [PostgresFact]
    public Task A_create_of_a_name_whose_unlink_is_deleting_it_makes_a_new_file() => RaceUnlinkAsync(
        (opener, _) => opener.CallAsync(Methods.MdsCreate, new CreateRequest { Caller = opener.Caller, Parent = Root, Name = "victim", Type = FileType.Regular, Mode = 0x1A4, Open = true, OpenFlags = OpenFlags.ReadWrite }, EntryReply.Parser),
        async (opener, ino, create, _) =>
        {
            var created = await create.WaitAsync(Eventually.Patience);
            Assert.NotEqual(ino, created.Attr.Ino);
            Assert.Equal(created.Attr.Ino, (await opener.LookupAsync(Root, "victim")).Attr.Ino);
            var gone = await Assert.ThrowsAsync<RpcException>(() => opener.GetAttrAsync(ino));
            Assert.Equal(Errno.ENOENT, gone.Errno);
        });

    /// <summary>
    /// Creates "victim" and unlinks it, holding the unlink after its decision and before its
    /// commit; meanwhile <paramref name="racer"/> runs from a second client. Once the unlink has
    /// committed, <paramref name="check"/> gets that client, the inode, the racer's task and
    /// whether it completed before the commit (within a second).
    /// </summary>
    private static async Task RaceUnlinkAsync<T>(Func<TestClient, ulong, Task<T>> racer, Func<TestClient, ulong, Task<T>, bool, Task> check)
    {
        await using var mds = await MdsFixture.StartAsync(TestStore.Postgres);
        await mds.AddTargetsAsync(1);
        await using var remover = await mds.ClientAsync();
        await using var opener = await mds.ClientAsync();
        var file = await remover.CreateAsync(Root, "victim");

        await using var holdRow = await HoldInodeRowAsync(mds, file.Ino);
        var unlink = remover.UnlinkAsync(Root, "victim");
        await WaitForBlockedStatementAsync(mds);

        var raced = racer(opener, file.Ino);
        var completedFirst = await Task.WhenAny(raced, Task.Delay(TimeSpan.FromSeconds(1))) == raced;
        await holdRow.RollbackAsync();
        await unlink.WaitAsync(Eventually.Patience);
        await check(opener, file.Ino, raced, completedFirst);
    }

    /// <summary>Locks the inode's row from outside the MDS, so the unlink's DELETE of it waits (after its decision, before its commit) until the returned transaction ends.</summary>
    private static async Task<HeldRow> HoldInodeRowAsync(MdsFixture mds, ulong ino)
    {
        var connection = new NpgsqlConnection(mds.Database!.ConnectionString);
        await connection.OpenAsync();
        var tx = await connection.BeginTransactionAsync();
        await using (var command = new NpgsqlCommand("SELECT ino FROM inodes WHERE ino = @ino FOR UPDATE", connection, tx))
        {
            command.Parameters.AddWithValue("ino", (long)ino);
            Assert.NotNull(await command.ExecuteScalarAsync());
        }

        return new HeldRow(connection, tx);
    }

    private static async Task WaitForBlockedStatementAsync(MdsFixture mds)
    {
        await using var connection = new NpgsqlConnection(mds.Database!.ConnectionString);
        await connection.OpenAsync();
        await Eventually.TrueAsync(async () =>
        {
            await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", connection);
            return (long)(await command.ExecuteScalarAsync())! > 0;
        }, "the unlink to wait on the held inode row");
    }

    private sealed class HeldRow(NpgsqlConnection connection, NpgsqlTransaction tx) : IAsyncDisposable
    {
        private bool _ended;

        public async Task RollbackAsync()
        {
            if (!_ended)
            {
                _ended = true;
                await tx.RollbackAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await RollbackAsync();
            await tx.DisposeAsync();
            await connection.DisposeAsync();
        }
    }
}
