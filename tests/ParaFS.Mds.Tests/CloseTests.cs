using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Tests;

/// <summary>
/// The last close of a file that still has a name writes nothing and takes no turn in the
/// store's one writer (a data loader closes every file it reads); the last close of a file a
/// removal left as an orphan for its opens deletes it.
/// </summary>
public sealed class CloseTests
{
    private const ulong Root = 1;

    /// <summary>Counts the write transactions the namespace asks of the store.</summary>
    private sealed class CountingStore(IMetadataStore inner) : DelegatingStore(inner)
    {
        private int _writes;

        public int Writes => Volatile.Read(ref _writes);

        public override Task<T> WriteAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref _writes);
            return Inner.WriteAsync(work, cancellationToken);
        }
    }

    [Fact]
    public async Task The_last_close_of_a_named_file_asks_no_write_and_that_of_an_orphan_deletes_it()
    {
        CountingStore? counting = null;
        var directory = Path.Combine(Path.GetTempPath(), $"parafs-mds-{Guid.NewGuid():N}");
        await using var server = await MdsServer.StartAsync(MdsFixture.Options(directory, "127.0.0.1:0") with
        {
            WrapStore = s => counting = new CountingStore(s),
        });
        try
        {
            await using var client = await TestClient.ConnectAsync(server.Endpoint, new Caller(), null);
            await using var ost = await FakeOst.StartAsync(server, "default", 1L << 40);
            var created = await client.CreateOpenAsync(Root, "named");
            var reader = await client.OpenAsync(created.Attr.Ino, flags: 0);
            await client.CloseAsync(created.Handle);

            var before = counting!.Writes;
            await client.CloseAsync(reader.Handle);
            Assert.Equal(before, counting.Writes);
            Assert.False(server.Sessions.IsOpen((long)created.Attr.Ino));
            Assert.Equal(1u, (await client.LookupAsync(Root, "named")).Attr.Nlink);

            // Unlinked while open: kept, and its last close deletes it (a write, its objects queued).
            var held = await client.OpenAsync(created.Attr.Ino, flags: 0);
            await client.UnlinkAsync(Root, "named");
            Assert.True(server.Sessions.MayBeKeptOpen((long)created.Attr.Ino));
            Assert.Equal(0u, (await client.GetAttrAsync(created.Attr.Ino)).Attr.Nlink);
            await client.CloseAsync(held.Handle);
            await Assert.ThrowsAsync<Protocol.Rpc.RpcException>(() => client.GetAttrAsync(created.Attr.Ino));
            Assert.False(server.Sessions.MayBeKeptOpen((long)created.Attr.Ino), "a reclaimed orphan is still remembered");
            await server.DrainDeletionsAsync();
            Assert.NotEmpty(ost.Deletes);
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
