using System.Collections.Concurrent;
using ParaFS.Client;
using ParaFS.Fuse;
using ParaFS.FuseAdapter;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mount.Tests;

/// <summary>
/// The kernel keeps the entries and attributes the MDS answered for the lease, until a callback
/// says they changed or a connection to the MDS ends. Driven on the adapter itself, over a client
/// of a running cluster, with the kernel's invalidations recorded; another client makes the
/// changes, and `ss -K` cuts the connections to the MDS.
/// </summary>
public sealed class LeaseTests
{
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    [MountFact]
    public async Task Leases_end_with_another_clients_change_and_all_of_them_with_a_lost_MDS_connection()
    {
        await using var up = await ParafsUp.StartAsync();
        await File.WriteAllTextAsync(Path.Combine(up.MountPoint, "leased"), "leased");
        var mds = RpcEndpoint.Parse(up.Mds);
        await using var mine = await ParaFsClient.ConnectAsync(mds);
        await using var other = await ParaFsClient.ConnectAsync(mds);
        var fs = new ParaFsFileSystem(mine, cacheTimeout: TimeSpan.FromSeconds(1), lease: Lease);
        var entriesDropped = new ConcurrentQueue<(ulong Parent, string Name)>();
        var inodesDropped = new ConcurrentQueue<ulong>();
        var attributesDropped = new ConcurrentQueue<ulong>();
        fs.InvalidateEntry = (parent, name) => entriesDropped.Enqueue((parent, name));
        fs.InvalidateInode = inodesDropped.Enqueue;
        fs.InvalidateAttributes = attributesDropped.Enqueue;
        fs.FollowCallbacks();
        var context = new FuseContext(1, 0, 0, 0, CancellationToken.None);
        var root = new Caller();

        var entry = await fs.LookupAsync(context, 1, "leased");
        Assert.Equal(Lease, entry.EntryTimeout);
        Assert.Equal(Lease, entry.AttrTimeout);
        Assert.Equal((1, 1), fs.TrustedCount);

        // Another client's chmod ends the attributes' lease (the kernel drops them), not the entry's.
        await other.SetAttrAsync(root, new SetAttrRequest { Ino = entry.NodeId, Valid = (uint)SetAttrField.Mode, Mode = 0x180 }, null);
        await Eventually.TrueAsync(() => inodesDropped.Contains(entry.NodeId), "the chmod was called back to the mount");
        Assert.Equal((1, 0), fs.TrustedCount);
        var (attr, timeout) = await fs.GetAttrAsync(context, entry.NodeId, null);
        Assert.Equal(0x180u, attr.Mode & 0xFFF);
        Assert.Equal(Lease, timeout);

        // Another client's rename ends the entry's lease.
        await other.RenameAsync(root, 1, "leased", 1, "moved");
        // Its callbacks come in order: both names, the directory, and last the moved inode (a
        // lookup that one of them overtook would not be leased).
        await Eventually.TrueAsync(() => inodesDropped.Count(ino => ino == entry.NodeId) == 2, "the rename was called back to the mount");
        Assert.Contains((1UL, "leased"), entriesDropped);
        Assert.Equal(0, fs.TrustedCount.Entries);
        var relooked = await fs.LookupAsync(context, 1, "moved");
        Assert.Equal((Lease, Lease), (relooked.EntryTimeout, relooked.AttrTimeout));
        Assert.Equal((1, 1), fs.TrustedCount);
        Assert.Empty(attributesDropped);

        // A name that is not there is leased as absent (node id 0: the kernel keeps the negative
        // entry, and a create that looked first sends no second LOOKUP), until another client's
        // create calls back.
        var absent = await fs.LookupAsync(context, 1, "absent");
        Assert.Equal((0UL, Lease), (absent.NodeId, absent.EntryTimeout));
        Assert.Equal((2, 1), fs.TrustedCount);
        await other.CreateAsync(root, 1, "absent", FileType.Regular, 0x1A4);
        await Eventually.TrueAsync(() => entriesDropped.Contains((1UL, "absent")), "the create was called back to the mount");
        Assert.Equal((1, 1), fs.TrustedCount);
        Assert.NotEqual(0UL, (await fs.LookupAsync(context, 1, "absent")).NodeId);

        // Every connection to the MDS cut: a callback may have been lost with them, so every
        // lease ends, attributes only (the cached data stays).
        await Shell.OkAsync($"ss -K dst {mds.Text}");
        await Eventually.TrueAsync(() => fs.TrustedCount == (0, 0), "a lost MDS connection ended every lease");
        Assert.Contains((1UL, "moved"), entriesDropped);
        Assert.Contains(entry.NodeId, attributesDropped);

        // The client reconnects, and answers are leased again.
        await Eventually.TrueAsync(async () => (await fs.LookupAsync(context, 1, "moved")).AttrTimeout == Lease, "answers are leased again after the reconnect");

        // A listing with attributes (readdirplus) is leased as a lookup is: a loader that lists
        // a directory then opens its files sends no LOOKUP.
        var listed = new CapturingBuffer();
        await fs.ReadDirAsync(context, 1, 0, 2, listed, plus: true);
        var moved = Assert.Single(listed.Entries, e => e.Name == "moved").Entry;
        Assert.Equal((Lease, Lease), (moved.EntryTimeout, moved.AttrTimeout));

        // Without a lease (-o lease=0) everything lives the cache timeout, as before leases.
        var unleased = new ParaFsFileSystem(other, cacheTimeout: TimeSpan.FromSeconds(1), lease: TimeSpan.Zero);
        var plain = await unleased.LookupAsync(context, 1, "moved");
        Assert.Equal((TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)), (plain.EntryTimeout, plain.AttrTimeout));
        var missing = await Assert.ThrowsAsync<FuseException>(async () => await unleased.LookupAsync(context, 1, "missing"));
        Assert.Equal(2, missing.Errno);
        Assert.Equal((0, 0), unleased.TrustedCount);
    }

    /// <summary>A kernel directory buffer that takes every entry and keeps the readdirplus ones.</summary>
    private sealed class CapturingBuffer : FuseDirectoryBuffer
    {
        public List<(string Name, FuseEntry Entry)> Entries { get; } = [];

        public override bool Add(string name, ulong ino, uint type, long nextOffset) => true;

        public override bool AddPlus(string name, FuseEntry entry, long nextOffset)
        {
            Entries.Add((name, entry));
            return true;
        }
    }
}
