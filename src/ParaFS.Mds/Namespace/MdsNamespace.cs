using ParaFS.Common;
using ParaFS.Mds.Sessions;
using ParaFS.Mds.Store;
using ParaFS.Mds.Targets;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Namespace;

/// <summary>
/// Who is asking, on which connection (callbacks skip the connection that caused them), and the
/// call's identity across retries when the client gave one (its reply is then recorded).
/// </summary>
public sealed record RequestContext(Caller Caller, RpcServerConnection? Origin = null, ReplayTag? Replay = null)
{
    public ClientSession? Session => Origin?.State as ClientSession;
}

/// <summary>Tells clients what changed, so they drop what they cached.</summary>
public interface INotifier
{
    void EntryChanged(long parent, string name, RpcServerConnection? origin);

    void AttrChanged(long ino, RpcServerConnection? origin);

    void LayoutChanged(long ino, ulong generation, RpcServerConnection? origin);

    /// <summary>Repeats a layout change to the given sessions only (those that have not acknowledged it).</summary>
    void LayoutChanged(long ino, ulong generation, IEnumerable<ClientSession> sessions);

    /// <summary>Tells sessions waiting for a lock on the inode that one there was given back.</summary>
    void LockReleased(long ino, IEnumerable<ulong> sessions);
}

/// <summary>The calls the MDS itself makes to OSTs (truncating objects when a file shrinks).</summary>
public interface IObjectTruncator
{
    Task TruncateAsync(StripeObject stripeObject, long size, CancellationToken cancellationToken);
}

/// <summary>
/// The namespace: every operation is one store transaction that checks, decides the errno, and
/// changes nothing when it fails. Effects outside the store (callbacks, OST calls, deletions)
/// happen after the commit. Operations are grouped one file each: Lookup.cs, Create.cs, ...
/// </summary>
public sealed partial class MdsNamespace
{
    public const long RootIno = 1;

    /// <summary>The largest file: offsets are signed 64-bit on Linux.</summary>
    public const long MaxFileSize = long.MaxValue;

    public const int MaxXattrNameBytes = 255;

    public const int MaxXattrValueBytes = 64 * 1024;

    private readonly IMetadataStore _store;
    private readonly StripeAllocator _allocator;
    private readonly SessionTable _sessions;
    private readonly INotifier _notifier;
    private readonly IObjectTruncator _truncator;
    private readonly Action _deletionsQueued;

    public MdsNamespace(IMetadataStore store, StripeAllocator allocator, SessionTable sessions, INotifier notifier, IObjectTruncator truncator, Action deletionsQueued)
    {
        _store = store;
        _allocator = allocator;
        _sessions = sessions;
        _notifier = notifier;
        _truncator = truncator;
        _deletionsQueued = deletionsQueued;
    }

    public static long NowNs() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    /// <summary>The root default layout of a new file system: 1 MiB stripes over 4 targets (or all if fewer), pool "default".</summary>
    public static LayoutPolicy RootPolicy(string pool = "default") => new() { StripeSize = 1024 * 1024, StripeCount = 4, Pool = pool };

    /// <summary>Creates the root directory in an empty store.</summary>
    public static void FormatRoot(IStoreTransaction tx, LayoutPolicy rootPolicy)
    {
        var now = NowNs();
        tx.InsertInode(new InodeRecord
        {
            Ino = RootIno,
            Type = FileType.Directory,
            Mode = 0x1ED, // 0755
            Nlink = 2,
            AtimeNs = now,
            MtimeNs = now,
            CtimeNs = now,
            CrtimeNs = now,
            Parent = RootIno,
            Policy = rootPolicy,
        });
        while (tx.NextId("inode") < RootIno)
        {
        }
    }

    public static Attr ToAttr(InodeRecord i) => new()
    {
        Ino = (ulong)i.Ino,
        Type = i.Type,
        Mode = i.Mode,
        Nlink = i.Nlink,
        Uid = i.Uid,
        Gid = i.Gid,
        Size = (ulong)i.Size,
        AtimeNs = i.AtimeNs,
        MtimeNs = i.MtimeNs,
        CtimeNs = i.CtimeNs,
        CrtimeNs = i.CrtimeNs,
        Rdev = (ulong)i.Rdev,
        LayoutGeneration = i.Layout?.Generation ?? 0,
    };

    private static AttrReply ToAttrReply(InodeRecord i) => new() { Attr = ToAttr(i), Layout = i.Layout };

    private static InodeRecord Require(IStoreTransaction tx, long ino) =>
        tx.GetInode(ino) ?? throw new ParaFsException(Errno.ENOENT, $"inode {ino} does not exist (it was removed)");

    private static InodeRecord RequireDirectory(IStoreTransaction tx, long ino)
    {
        var inode = Require(tx, ino);
        return inode.Type == FileType.Directory ? inode : throw new ParaFsException(Errno.ENOTDIR, $"inode {ino} is not a directory");
    }

    /// <summary>Removes an inode whose last name is gone: kept as an orphan while open, else deleted with its objects queued for deletion.</summary>
    private static bool DropIfUnreferenced(IStoreTransaction tx, InodeRecord inode, RemovalClaims claims)
    {
        var unreferenced = inode.Type == FileType.Directory ? inode.Nlink <= 1 : inode.Nlink == 0;
        if (!unreferenced)
        {
            tx.UpdateInode(inode);
            return false;
        }

        if (inode.Type != FileType.Directory && !claims.NobodyHasOpen(inode.Ino))
        {
            inode.Nlink = 0;
            tx.UpdateInode(inode);
            return false;
        }

        Destroy(tx, inode);
        return true;
    }

    /// <summary>
    /// After a removal that kept <paramref name="ino"/> as an orphan for its opens has committed:
    /// if the last of them closed meanwhile, that close may have looked before the commit and
    /// found the file still named (PostgreSQL runs the two transactions side by side), so the
    /// orphan is reclaimed here.
    /// </summary>
    private async Task ReclaimIfClosedMeanwhileAsync(long ino)
    {
        if (_sessions.MayBeKeptOpen(ino) && !_sessions.IsOpen(ino))
        {
            await ReclaimIfOrphanAsync(ino).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The inodes one removal has claimed (<see cref="SessionTable.TryClaimRemoval"/>), so that no
    /// open registers a handle on them until the removal's transaction is over; disposed once it
    /// is, however many times the store ran the work.
    /// </summary>
    private sealed class RemovalClaims(SessionTable sessions) : IDisposable
    {
        private readonly HashSet<long> _claimed = [];

        /// <summary>True when nobody holds <paramref name="ino"/> open; it then stays so until this is disposed.</summary>
        public bool NobodyHasOpen(long ino) => _claimed.Contains(ino) || (sessions.TryClaimRemoval(ino) && _claimed.Add(ino));

        public void Dispose()
        {
            foreach (var ino in _claimed)
            {
                sessions.ReleaseRemoval(ino);
            }

            _claimed.Clear();
        }
    }

    private static void Destroy(IStoreTransaction tx, InodeRecord inode)
    {
        tx.DeleteInode(inode.Ino);
        foreach (var o in inode.Layout?.AllObjects() ?? [])
        {
            tx.EnqueueObjectDeletion((int)o.TargetId, (long)o.ObjectId);
        }
    }

    private static void Touch(InodeRecord inode, long now, bool modified = true)
    {
        if (modified)
        {
            inode.MtimeNs = now;
        }

        inode.CtimeNs = now;
    }
}
