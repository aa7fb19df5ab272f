using System.Text;
using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client.Tests;

/// <summary>
/// What the client keeps of the MDS's answers. A call made with a token already cancelled shows
/// whether an answer came from the cache: a call that goes to the MDS throws at once.
/// </summary>
public sealed class MetadataCacheTests : IAsyncLifetime
{
    private const ulong Root = ParaFsClient.RootIno;
    private const string Capability = "security.capability";
    private const uint ReadWrite = 2;
    private static readonly Caller Me = TestCluster.RootCaller;
    private static readonly CancellationToken NoCall = new(canceled: true);
    private TestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await TestCluster.StartAsync(targets: 1);

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task Security_xattrs_are_answered_from_the_cache_until_another_client_changes_them()
    {
        // A lifetime longer than the test: only a callback can end what the cache holds.
        await using var keeper = await _cluster.ClientAsync(new ClientOptions { CacheLifetime = TimeSpan.FromMinutes(5) });
        await using var other = await _cluster.ClientAsync();
        var (created, _) = await keeper.CreateAsync(Me, Root, "f", FileType.Regular, 0x1A4, openFlags: ReadWrite);
        var ino = created.Attr.Ino;

        // Made just now: its first write asks nothing of the MDS.
        Assert.Equal(Errno.ENODATA, (await Assert.ThrowsAsync<ParaFsException>(() => keeper.GetXattrAsync(Me, ino, Capability, NoCall))).Errno);

        var value = Encoding.ASCII.GetBytes("caps");
        await other.SetXattrAsync(Me, ino, Capability, value, 0);
        await Eventually.TrueAsync(async () => await ReadOrNullAsync(keeper, ino) is { } now && now.SequenceEqual(value), "the callback to end the cached ENODATA", TimeSpan.FromSeconds(20));
        Assert.Equal(value, await keeper.GetXattrAsync(Me, ino, Capability, NoCall));

        // This client's own change ends what it kept at once.
        await keeper.RemoveXattrAsync(Me, ino, Capability);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => keeper.GetXattrAsync(Me, ino, Capability, NoCall));
        Assert.Equal(Errno.ENODATA, (await Assert.ThrowsAnyAsync<ParaFsException>(() => keeper.GetXattrAsync(Me, ino, Capability))).Errno);
        Assert.Equal(Errno.ENODATA, (await Assert.ThrowsAsync<ParaFsException>(() => keeper.GetXattrAsync(Me, ino, Capability, NoCall))).Errno);

        // user.* reads depend on the caller's permissions: never kept.
        await keeper.SetXattrAsync(Me, ino, "user.a", value, 0);
        Assert.Equal(value, await keeper.GetXattrAsync(Me, ino, "user.a"));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => keeper.GetXattrAsync(Me, ino, "user.a", NoCall));
    }

    private static async Task<byte[]?> ReadOrNullAsync(ParaFsClient client, ulong ino)
    {
        try
        {
            return await client.GetXattrAsync(Me, ino, Capability);
        }
        catch (ParaFsException e) when (e.Errno == Errno.ENODATA)
        {
            return null;
        }
    }

    [Fact]
    public async Task An_open_with_O_CREAT_of_a_file_that_exists_keeps_nothing_of_its_xattrs()
    {
        await using var keeper = await _cluster.ClientAsync(new ClientOptions { CacheLifetime = TimeSpan.FromMinutes(5) });
        await using var other = await _cluster.ClientAsync();
        var (made, _) = await other.CreateAsync(Me, Root, "g", FileType.Regular, 0x1A4);
        var value = Encoding.ASCII.GetBytes("caps");
        await other.SetXattrAsync(Me, made.Attr.Ino, Capability, value, 0);

        var (opened, handle) = await keeper.CreateAsync(Me, Root, "g", FileType.Regular, 0x1A4, openFlags: ReadWrite);
        Assert.NotNull(handle);
        Assert.Equal(made.Attr.Ino, opened.Attr.Ino);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => keeper.GetXattrAsync(Me, made.Attr.Ino, Capability, NoCall));
        Assert.Equal(value, await keeper.GetXattrAsync(Me, made.Attr.Ino, Capability));
    }

    [Fact]
    public async Task A_create_and_a_removal_leave_the_directory_attributes_they_answered_with()
    {
        await using var keeper = await _cluster.ClientAsync(new ClientOptions { CacheLifetime = TimeSpan.FromMinutes(5) });
        await using var other = await _cluster.ClientAsync();
        var dir = (await keeper.CreateAsync(Me, Root, "d", FileType.Directory, 0x1ED)).Attr.Attr.Ino;

        await keeper.CreateAsync(Me, dir, "sub", FileType.Directory, 0x1ED);
        await AssertKeptAsync(3);
        await keeper.CreateAsync(Me, dir, "f", FileType.Regular, 0x1A4, openFlags: ReadWrite);
        await AssertKeptAsync(3);
        await keeper.RemoveAsync(Me, dir, "f", directory: false);
        await AssertKeptAsync(3);
        await keeper.RemoveAsync(Me, dir, "sub", directory: true);
        await AssertKeptAsync(2);

        // Replies of calls that overlap may arrive in any order: none of them may leave an older
        // state in the cache than the last commit.
        for (var round = 0; round < 20; round++)
        {
            await Task.WhenAll(Enumerable.Range(0, 8).Select(i => keeper.CreateAsync(Me, dir, $"r{round}-{i}", FileType.Directory, 0x1ED)));
            Assert.Equal(2u + (8u * (uint)(round + 1)), (await keeper.GetAttrAsync(dir)).Attr.Nlink);
        }

        async Task AssertKeptAsync(uint nlink)
        {
            var kept = (await keeper.GetAttrAsync(dir, cancellationToken: NoCall)).Attr;
            var actual = (await other.GetAttrAsync(dir, fresh: true)).Attr;
            Assert.Equal(nlink, kept.Nlink);
            Assert.Equal(actual.Nlink, kept.Nlink);
            Assert.Equal(actual.MtimeNs, kept.MtimeNs);
            Assert.Equal(actual.CtimeNs, kept.CtimeNs);
        }
    }

    [Fact]
    public void An_xattr_answer_asked_for_before_a_change_is_not_kept()
    {
        var cache = new MetadataCache(TimeSpan.FromMinutes(5));
        var before = cache.XattrVersion(7);
        cache.DropXattrs(7); // this client's setxattr, or a callback, while the answer was on its way
        cache.PutSecurityXattr(7, Capability, null, before);
        Assert.False(cache.TryGetSecurityXattr(7, Capability, out _));

        cache.PutSecurityXattr(7, Capability, null, cache.XattrVersion(7));
        Assert.True(cache.TryGetSecurityXattr(7, Capability, out var absent));
        Assert.Null(absent);
    }

    [Fact]
    public void An_answer_that_a_drop_overtook_is_not_kept()
    {
        var cache = new MetadataCache(TimeSpan.FromMinutes(1));

        // The call began (versions taken), a callback dropped the entry and the inode, then the
        // answer came: it may predate the change the callback was about.
        var entryVersion = cache.EntryVersion(1, "name");
        var attrVersions = cache.AttrVersions();
        cache.DropEntry(1, "name");
        cache.DropAttr(7);
        cache.PutEntry(1, "name", 7, entryVersion);
        cache.PutAttr(new AttrReply { Attr = new Attr { Ino = 7 } }, attrVersions);
        Assert.Null(cache.GetEntry(1, "name"));
        Assert.Null(cache.GetAttr(7));
        Assert.False(cache.AttrUnchanged(7, attrVersions));

        // Nothing in between: kept.
        entryVersion = cache.EntryVersion(1, "name");
        attrVersions = cache.AttrVersions();
        cache.PutEntry(1, "name", 7, entryVersion);
        cache.PutAttr(new AttrReply { Attr = new Attr { Ino = 7 } }, attrVersions);
        Assert.Equal(7UL, cache.GetEntry(1, "name"));
        Assert.NotNull(cache.GetAttr(7));
        Assert.True(cache.AttrUnchanged(7, attrVersions));

        // A lost connection drops everything and moves every version.
        cache.DropAll();
        Assert.Null(cache.GetEntry(1, "name"));
        Assert.Null(cache.GetAttr(7));
        Assert.NotEqual(entryVersion, cache.EntryVersion(1, "name"));
        Assert.False(cache.AttrUnchanged(7, attrVersions));
    }

    [Fact]
    public void Expired_entries_are_swept_once_the_cache_is_large()
    {
        var cache = new MetadataCache(TimeSpan.Zero);
        for (ulong ino = 1; ino <= 40_000; ino++)
        {
            cache.PutAttr(new AttrReply { Attr = new Attr { Ino = ino } }, cache.AttrVersions());
            cache.PutSecurityXattr(ino, Capability, null);
        }

        Assert.InRange(cache.Count, 1, 17_000);
    }
}
