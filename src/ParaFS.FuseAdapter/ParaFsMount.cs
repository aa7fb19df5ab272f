using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ParaFS.Client;
using ParaFS.Fuse;
using ParaFS.Protocol.Rpc;

namespace ParaFS.FuseAdapter;

/// <summary>How a ParaFS mount talks to the kernel.</summary>
public sealed record MountSettings
{
    /// <summary>
    /// Let users other than the one who mounted use it (FUSE's allow_other), with the kernel checking
    /// permission bits (default_permissions) and the MDS checking them again. On by default when
    /// root mounts, as a shared file system on a GPU node must be; an ordinary user needs
    /// user_allow_other in /etc/fuse.conf for it.
    /// </summary>
    public bool AllowOther { get; init; } = Environment.UserName == "root";

    /// <summary>Threads reading /dev/fuse, each on its own cloned descriptor.</summary>
    public int ReaderThreads { get; init; } = 4;

    /// <summary>How long the kernel may trust attributes and entries that were not leased (<see cref="Lease"/>).</summary>
    public TimeSpan CacheTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the kernel may keep the directory entries and attributes the MDS answered: the MDS
    /// calls back when one changes, and all are revoked when a connection to the MDS ends
    /// (callbacks may be lost with it). A path walk, a stat or an open's permission check then
    /// needs no round trip until something changes. An answer that a callback overtook on its way
    /// gets <see cref="CacheTimeout"/>; so does everything when this is not longer.
    /// </summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The kernel's read-ahead for the mount, in KiB. FUSE starts a mount at 128 KiB; a striped
    /// file read in order wants several stripes on their way at once (set through
    /// /sys/class/bdi, as root; 0 leaves the kernel's value).
    /// </summary>
    public int ReadAheadKb { get; init; } = 4 * 1024;

    /// <summary>
    /// Small reads come first: while large writes make them slow, the writes' replies are paced
    /// (see <see cref="ReadPriorityThrottle"/>). Writes alone, and reads alone, are never held back.
    /// </summary>
    public bool ReadPriority { get; init; } = true;

    /// <summary>
    /// fcntl record locks and flock(2) are kept by the MDS and hold across every mount (-o flock,
    /// the default); false leaves them to this machine's kernel, unseen by other nodes
    /// (-o localflock), as before the MDS kept them.
    /// </summary>
    public bool ClusterLocks { get; init; } = true;

    /// <summary>The kernel reads ahead for the mount (<see cref="ReadAheadKb"/>); the client core's own read-ahead would fetch the same bytes again.</summary>
    public ClientOptions Client { get; init; } = new() { ReadAheadRows = 0 };
}

/// <summary>
/// A mounted ParaFS: the client core, the FUSE adapter on it, and the kernel session. MDS callbacks
/// about changed inodes and entries become kernel cache invalidations.
/// </summary>
public sealed class ParaFsMount : IAsyncDisposable
{
    private readonly ParaFsClient _client;
    private readonly FuseSession _session;
    private readonly CancellationTokenSource _stop = new();

    private ParaFsMount(string mountPoint, RpcEndpoint mds, ParaFsClient client, FuseSession session)
    {
        MountPoint = mountPoint;
        Mds = mds;
        _client = client;
        _session = session;
    }

    public string MountPoint { get; }

    public RpcEndpoint Mds { get; }

    public string FileSystemId => _client.FileSystemId;

    public string FileSystemName => _client.FileSystemName;

    /// <summary>Completes when the file system is unmounted (by us, by umount, or because the kernel ended the session).</summary>
    public Task Completion { get; private set; } = Task.CompletedTask;

    /// <summary>Connects to the MDS and mounts at <paramref name="mountPoint"/>; the mount's source is the MDS address, its type fuse.parafs.</summary>
    public static async Task<ParaFsMount> MountAsync(RpcEndpoint mds, string mountPoint, MountSettings settings, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        var full = Path.GetFullPath(mountPoint);
        var client = await ParaFsClient.ConnectAsync(mds, settings.Client, loggerFactory, cancellationToken).ConfigureAwait(false);
        FuseSession session;
        try
        {
            session = FuseSession.Mount(new FuseMountOptions
            {
                MountPoint = full,
                FsName = mds.Text,
                Subtype = "parafs",
                AllowOther = settings.AllowOther,
                ReaderThreads = settings.ReaderThreads,
                ReadAheadKb = settings.ReadAheadKb,
                Locks = settings.ClusterLocks,
                Logger = loggerFactory.CreateLogger("ParaFS.Fuse"),
            });
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var fileSystem = new ParaFsFileSystem(client, settings.CacheTimeout, settings.ReadPriority, loggerFactory.CreateLogger("ParaFS.Mount"), settings.Lease)
        {
            InvalidateInode = ino => session.InvalidateInode(ino, 0, 0),
            InvalidateEntry = (parent, name) => session.InvalidateEntry(parent, name),
            InvalidateAttributes = ino => session.InvalidateInode(ino, -1),
        };
        fileSystem.FollowCallbacks();
        var mount = new ParaFsMount(full, mds, client, session);
        mount.Completion = session.RunAsync(fileSystem, mount._stop.Token);
        return mount;
    }

    /// <summary>Unmounts (lazily if the mount point is busy) and waits for the session to end.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Completion.ConfigureAwait(false);
        }
        finally
        {
            await _session.DisposeAsync().ConfigureAwait(false);
            await _client.DisposeAsync().ConfigureAwait(false);
            _stop.Dispose();
        }
    }
}
