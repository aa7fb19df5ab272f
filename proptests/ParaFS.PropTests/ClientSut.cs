using ParaFS.Client;
using ParaFS.Protocol.Mds;

namespace ParaFS.PropTests;

/// <summary>The client core against a real cluster, inside one case directory.</summary>
public sealed class ClientSut : ISystemUnderTest
{
    private static readonly Caller Root = new();
    private readonly ProcessCluster _cluster;
    private readonly ParaFsClient _client;
    private readonly ulong _base;
    private static int _faults;
    private readonly Dictionary<int, FileHandle> _handles = [];

    private ClientSut(ProcessCluster cluster, ParaFsClient client, ulong baseIno)
    {
        _cluster = cluster;
        _client = client;
        _base = baseIno;
    }

    public static async Task<ClientSut> StartAsync(ProcessCluster cluster, string caseName)
    {
        var client = await cluster.ClientAsync();
        var (dir, _) = await client.CreateAsync(Root, ParaFsClient.RootIno, caseName, FileType.Directory, 0x1ED);
        return new ClientSut(cluster, client, dir.Attr.Ino);
    }

    public async Task CreateAsync(string path, bool exclusive, int slot, (int Size, int Count)? stripe)
    {
        var (parent, name) = await ParentAsync(path);
        var (attr, handle) = await _client.CreateAsync(Root, parent, name, FileType.Regular, 0x1A4, openFlags: 2, exclusive: exclusive);
        if (stripe is { } s)
        {
            await _client.SetStripeAsync(Root, attr.Attr.Ino, new LayoutPolicy { StripeSize = (uint)s.Size, StripeCount = s.Count });
        }

        _handles[slot] = handle!;
    }

    public async Task OpenAsync(string path, bool truncate, int slot)
    {
        var ino = await ResolveAsync(path);
        _handles[slot] = await _client.OpenAsync(Root, ino, truncate ? 0x202u : 2u);
    }

    public Task WriteAsync(int slot, long offset, byte[] data) => _client.WriteAsync(_handles[slot], offset, data);

    public async Task<byte[]> ReadAsync(int slot, long offset, int length)
    {
        var buffer = new byte[length];
        var n = await _client.ReadAsync(_handles[slot], offset, buffer);
        return buffer[..n];
    }

    public async Task TruncateAsync(string path, long size) =>
        await _client.SetAttrAsync(Root, new SetAttrRequest { Ino = await ResolveAsync(path), Valid = (uint)SetAttrField.Size, Size = (ulong)size });

    public Task PunchAsync(int slot, long offset, long length) => _client.PunchHoleAsync(_handles[slot], offset, length);

    public Task<long> SeekAsync(int slot, long offset, bool hole) =>
        _client.SeekAsync(_handles[slot], offset, hole ? ParaFsClient.SeekHole : ParaFsClient.SeekData);

    public Task FsyncAsync(int slot) => _client.FsyncAsync(_handles[slot]);

    public async Task CloseAsync(int slot)
    {
        await _client.FlushAsync(_handles[slot]);
        await _client.ReleaseAsync(_handles[slot]);
        _handles.Remove(slot);
    }

    public async Task RenameAsync(string from, string to)
    {
        var (p1, n1) = await ParentAsync(from);
        var (p2, n2) = await ParentAsync(to);
        await _client.RenameAsync(Root, p1, n1, p2, n2);
    }

    public async Task LinkAsync(string from, string to)
    {
        var ino = await ResolveAsync(from);
        var (parent, name) = await ParentAsync(to);
        await _client.LinkAsync(Root, ino, parent, name);
    }

    public async Task UnlinkAsync(string path)
    {
        var (parent, name) = await ParentAsync(path);
        await _client.RemoveAsync(Root, parent, name, directory: false);
    }

    public async Task MkdirAsync(string path)
    {
        var (parent, name) = await ParentAsync(path);
        await _client.CreateAsync(Root, parent, name, FileType.Directory, 0x1ED);
    }

    public async Task RmdirAsync(string path)
    {
        var (parent, name) = await ParentAsync(path);
        await _client.RemoveAsync(Root, parent, name, directory: true);
    }

    public async Task<IReadOnlyList<string>> ReaddirAsync(string path)
    {
        var ino = await ResolveAsync(path);
        var names = new List<string>();
        ulong cookie = 0;
        while (true)
        {
            var page = await _client.ReaddirAsync(Root, ino, cookie, 7, plus: false);
            names.AddRange(page.Entries.Select(e => e.Name));
            if (!page.More)
            {
                return names;
            }

            cookie = page.Entries[^1].Cookie;
        }
    }

    public async Task SetXattrAsync(string path, string name, byte[] value, uint flags) =>
        await _client.SetXattrAsync(Root, await ResolveAsync(path), name, value, flags);

    public async Task<byte[]> GetXattrAsync(string path, string name) => await _client.GetXattrAsync(Root, await ResolveAsync(path), name);

    /// <summary>How many kill -9 faults all client SUTs have injected, so a test can check that it ran some.</summary>
    public static int Faults => _faults;

    public Task FaultAsync(FaultKind kind, int index)
    {
        Interlocked.Increment(ref _faults);
        return kind switch
        {
            FaultKind.KillOst => _cluster.KillAndRestartOstAsync(index % _cluster.Targets),
            _ => _cluster.KillAndRestartMdsAsync(),
        };
    }

    public async Task MigrateAsync(string path, int stripeSize, int stripeCount, bool finish)
    {
        var ino = await ResolveAsync(path);
        var policy = new LayoutPolicy { StripeSize = (uint)stripeSize, StripeCount = stripeCount };
        if (finish)
        {
            await _client.MigrateAsync(Root, ino, policy, new MigrationOptions { ChunkBytes = 64 * 1024 });
        }
        else
        {
            await _client.BeginMigrationAsync(Root, ino, policy);
        }
    }

    public async ValueTask DisposeAsync() => await _client.DisposeAsync();

    private async Task<ulong> ResolveAsync(string path)
    {
        var ino = _base;
        foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            ino = (await _client.LookupAsync(Root, ino, part)).Attr.Ino;
        }

        return ino;
    }

    /// <summary>Resolves a path's directory as the kernel would: a file there is ENOTDIR.</summary>
    private async Task<(ulong Parent, string Name)> ParentAsync(string path)
    {
        var parent = Model.Parent(path);
        var ino = await ResolveAsync(parent);
        if (parent.Length > 0 && (await _client.GetAttrAsync(ino)).Attr.Type != FileType.Directory)
        {
            throw new Common.ParaFsException(Common.Errno.ENOTDIR, $"{parent} is not a directory");
        }

        return (ino, path[(path.LastIndexOf('/') + 1)..]);
    }
}
