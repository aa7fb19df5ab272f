using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Tests;

/// <summary>
/// A store may run a write's work more than once (PostgreSQL retries a transaction that lost a
/// serialization conflict). Here every write's work runs twice: once in a transaction that is
/// rolled back, then for real, so whatever the namespace does outside the store inside that work
/// (registering an open handle) shows up if it is not undone.
/// </summary>
public sealed class ReplayedTransactionTests
{
    private const ulong Root = 1;

    /// <summary>Runs each write's work once in a rolled-back transaction, then again in the one that commits.</summary>
    private sealed class ReplayingStore(IMetadataStore inner) : DelegatingStore(inner)
    {
        public int Replays { get; private set; }

        public override async Task<T> WriteAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
        {
            try
            {
                await Inner.WriteAsync<T>(tx =>
                {
                    work(tx);
                    throw new RolledBack();
                }, cancellationToken);
            }
            catch (RolledBack)
            {
                Replays++;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The first attempt failed on its own (an errno): the second one will say so again.
            }

            return await Inner.WriteAsync(work, cancellationToken);
        }

        private sealed class RolledBack : Exception;
    }

    [Fact]
    public async Task Work_that_runs_twice_leaves_no_handle_registered_and_the_namespace_as_once()
    {
        ReplayingStore? replaying = null;
        var directory = Path.Combine(Path.GetTempPath(), $"parafs-mds-{Guid.NewGuid():N}");
        await using var server = await MdsServer.StartAsync(MdsFixture.Options(directory, "127.0.0.1:0") with
        {
            WrapStore = s => replaying = new ReplayingStore(s),
        });
        try
        {
            await using var client = await TestClient.ConnectAsync(server.Endpoint, new Caller(), null);
            await using (var ost = await FakeOst.StartAsync(server, "default", 1L << 40))
            {
                var created = await client.CreateOpenAsync(Root, "f");
                var again = await client.CreateOpenAsync(Root, "f");
                var opened = await client.OpenAsync(created.Attr.Ino, 2);
                Assert.Equal(created.Attr.Ino, again.Attr.Ino);
                await client.MkdirAsync(Root, "d");
                await client.RenameAsync(Root, "f", Root, "g");
                await client.UnlinkAsync(Root, "g");

                // Unlinked while open: it lives until the last of the three handles closes.
                Assert.True(server.Sessions.IsOpen((long)created.Attr.Ino));
                await client.CloseAsync(created.Handle);
                await client.CloseAsync(again.Handle);
                Assert.True(server.Sessions.IsOpen((long)created.Attr.Ino));
                await client.CloseAsync(opened.Handle);
                Assert.False(server.Sessions.IsOpen((long)created.Attr.Ino), "a handle registered by a rolled-back attempt is still open");

                var names = (await client.ReaddirAllAsync(Root)).Select(e => e.Name).Where(n => n is not "." and not "..").ToList();
                Assert.Equal(["d"], names);
                await Assert.ThrowsAsync<Protocol.Rpc.RpcException>(() => client.GetAttrAsync(created.Attr.Ino));
            }

            Assert.True(replaying!.Replays > 5, $"only {replaying.Replays} writes were replayed");
        }
        finally
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
