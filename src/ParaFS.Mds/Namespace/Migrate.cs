using System.Collections.Concurrent;
using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Mds.Targets;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

/// <summary>
/// Online migration (DESIGN.md, "Moving between vendors"), the MDS's part:
/// <list type="number">
/// <item>Begin: the file gets a pending layout on the new pool (generation + 1). Clients holding it
/// open are called back; they switch to writing both layouts and acknowledge.</item>
/// <item>The mover (parafs migrate) waits until every open holder acknowledged, copies, verifies.</item>
/// <item>Commit: one transaction makes the pending layout the file's layout (generation + 1) and
/// retires the old objects.</item>
/// <item>Retired objects are queued for deletion only once every client that holds the file open has
/// acknowledged the commit's generation (or lost its session), so no client writes into a
/// deleted object.</item>
/// </list>
/// Abort (or a truncate that shrinks the file during a copy) retires the pending objects instead.
/// </summary>
public sealed partial class MdsNamespace
{
    /// <summary>Inodes with retired objects waiting for acknowledgements.</summary>
    private readonly ConcurrentDictionary<long, byte> _retiring = new();

    public async Task<GetStripeReply> MigrateBeginAsync(RequestContext context, long ino, LayoutPolicy policy)
    {
        if (policy.StripeSize % 4096 != 0)
        {
            throw new ParaFsException(Errno.EINVAL, $"stripe size {policy.StripeSize} is not a multiple of 4 KiB");
        }

        var (reply, changed) = await _store.WriteAsync(tx =>
        {
            var inode = RequireMigratable(tx, context.Caller, ino);
            var layout = inode.Layout!;
            var pool = policy.Pool.Length > 0 ? policy.Pool : layout.Pool;
            if (layout.Pending is { } pending)
            {
                if (pending.Pool != pool)
                {
                    throw new ParaFsException(Errno.EBUSY,
                        $"inode {ino} is already migrating to pool '{pending.Pool}'; finish that (parafs migrate -p {pending.Pool}) or abort it (parafs migrate --abort)");
                }

                return (new GetStripeReply { Layout = layout }, false);
            }

            var fresh = _allocator.Allocate(
                new LayoutPolicy
                {
                    StripeSize = policy.StripeSize != 0 ? policy.StripeSize : layout.StripeSize,
                    StripeCount = policy.StripeCount != 0 ? policy.StripeCount : (int)layout.StripeCount,
                    Pool = pool,
                },
                tx);
            fresh.Generation = 0;
            layout.Pending = fresh;
            layout.Generation++;
            inode.CtimeNs = NowNs();
            tx.UpdateInode(inode);
            return (new GetStripeReply { Layout = layout }, true);
        }).ConfigureAwait(false);

        if (changed)
        {
            _notifier.LayoutChanged(ino, reply.Layout.Generation, origin: null);
        }

        return reply;
    }

    /// <summary>The cut-over: the pending layout becomes the file's, in one transaction; the old objects are retired.</summary>
    public async Task<GetStripeReply> MigrateCommitAsync(RequestContext context, long ino, ulong generation)
    {
        var waiting = _sessions.NotAcknowledged(ino, generation);
        if (waiting.Count > 0)
        {
            throw new ParaFsException(Errno.EAGAIN, $"{waiting.Count} client(s) holding inode {ino} open have not switched to layout generation {generation} yet");
        }

        if (_sessions.RecoveryLeft is { TotalMilliseconds: > 0 } left)
        {
            // A client that held the file before this MDS started, and is not back yet, may still
            // write to the old objects only: cutting over now could lose its writes.
            throw new ParaFsException(Errno.EAGAIN,
                $"the MDS started recently and clients that held files open have {left.TotalSeconds:0.#} s more to come back; inode {ino} cuts over after that");
        }

        var reply = await CommitAsync(context, tx =>
        {
            var inode = RequireMigratable(tx, context.Caller, ino);
            var layout = inode.Layout!;
            if (layout.Pending is null || layout.Generation != generation)
            {
                throw new ParaFsException(Errno.EAGAIN,
                    $"the migration of inode {ino} at generation {generation} was aborted or restarted (now generation {layout.Generation}); copy again");
            }

            var next = layout.Pending.Clone();
            next.Generation = layout.Generation + 1;
            next.Retired.AddRange(layout.Retired);
            next.Retired.AddRange(layout.Objects);
            inode.Layout = next;
            inode.CtimeNs = NowNs();
            tx.UpdateInode(inode);
            return new GetStripeReply { Layout = next };
        }, r => r).ConfigureAwait(false);

        _retiring[ino] = 0;
        _notifier.LayoutChanged(ino, reply.Layout.Generation, origin: null);
        return reply;
    }

    /// <summary>Gives up a migration in progress: the file keeps its layout, the pending objects are retired.</summary>
    public async Task<GetStripeReply> MigrateAbortAsync(RequestContext context, long ino)
    {
        var (reply, changed) = await _store.WriteAsync(tx =>
        {
            var inode = RequireMigratable(tx, context.Caller, ino);
            var changed = AbortPending(inode);
            if (changed)
            {
                tx.UpdateInode(inode);
            }

            return (new GetStripeReply { Layout = inode.Layout }, changed);
        }).ConfigureAwait(false);

        if (changed)
        {
            _retiring[ino] = 0;
            _notifier.LayoutChanged(ino, reply.Layout.Generation, origin: null);
        }

        return reply;
    }

    /// <summary>A client switched to <paramref name="generation"/>; retired objects it held up may go now.</summary>
    public async Task AcknowledgeLayoutAsync(RequestContext context, long ino, ulong generation)
    {
        var session = context.Session ?? throw new ParaFsException(Errno.EINVAL, "a layout acknowledgement needs a session");
        _sessions.AcknowledgeLayout(session, ino, generation);
        if (_retiring.ContainsKey(ino))
        {
            await ReleaseRetiredAsync(ino).ConfigureAwait(false);
        }
    }

    /// <summary>How many open holders have not acknowledged <paramref name="generation"/>; their callback is sent again.</summary>
    public LayoutWaitReply LayoutWait(long ino, ulong generation)
    {
        var waiting = _sessions.NotAcknowledged(ino, generation);
        if (waiting.Count > 0)
        {
            _notifier.LayoutChanged(ino, generation, waiting);
        }

        // While the MDS recovers, holders from before its start may be missing from the count:
        // the mover waits for them as for the others (one more, until the window closes).
        var recovery = _sessions.RecoveryLeft;
        var unknown = recovery > TimeSpan.Zero ? 1 : 0;
        return new LayoutWaitReply { WaitingSessions = (uint)(waiting.Count + unknown), RecoveryMsLeft = (uint)Math.Ceiling(recovery.TotalMilliseconds) };
    }

    /// <summary>Regular files in inode order, optionally only those with an object (of any kind) on one target.</summary>
    public Task<ListFilesReply> ListFilesAsync(ulong afterIno, int limit, uint targetId) => _store.ReadAsync(tx =>
    {
        var reply = new ListFilesReply();
        var after = (long)afterIno;
        var batch = tx.ListFiles(after, Math.Clamp(limit, 1, 4096));
        foreach (var inode in batch)
        {
            if (targetId == 0 || (inode.Layout?.AllObjects() ?? []).Any(o => o.TargetId == targetId))
            {
                reply.Files.Add(new FileLayout { Ino = (ulong)inode.Ino, Size = (ulong)inode.Size, Layout = inode.Layout ?? new Layout() });
            }
        }

        reply.NextAfter = batch.Count == 0 ? 0 : (ulong)batch[^1].Ino;
        return reply;
    });

    /// <summary>
    /// parafs fsck's view of the object bookkeeping: a page of the deletion queue, and the last
    /// object id handed out on each registered target, read in one transaction.
    /// </summary>
    public Task<ObjectBookkeepingReply> ObjectBookkeepingAsync(RequestContext context, ulong afterDeletion, int limit)
    {
        if (context.Caller.Uid != 0)
        {
            throw new ParaFsException(Errno.EPERM, "only root may read the object bookkeeping (parafs fsck)");
        }

        return _store.ReadAsync(tx =>
        {
            var reply = new ObjectBookkeepingReply();
            var page = tx.ListObjectDeletions((long)afterDeletion, Math.Clamp(limit, 1, 100_000));
            reply.Deletions.AddRange(page.Select(d => new QueuedDeletion { Id = (ulong)d.Id, TargetId = (uint)d.TargetId, ObjectId = (ulong)d.ObjectId }));
            reply.NextAfter = page.Count == 0 ? 0 : (ulong)page[^1].Id;
            reply.Counters.AddRange(tx.ListTargets().Select(t => new TargetObjectCounter
            {
                TargetId = (uint)t.Id,
                LastObjectId = (ulong)tx.LastId(StripeAllocator.ObjectCounter(t.Id)),
            }));
            return reply;
        });
    }

    /// <summary>parafs fsck's namespace check (<see cref="Namespace.NamespaceCheck"/>); with repair, in a write transaction.</summary>
    public Task<NamespaceCheckReply> CheckNamespaceAsync(RequestContext context, bool repair, int limit)
    {
        if (context.Caller.Uid != 0)
        {
            throw new ParaFsException(Errno.EPERM, "only root may check the namespace (parafs fsck)");
        }

        limit = Math.Clamp(limit, 1, 100_000);
        return repair ? RepairNamespaceAsync(limit) : _store.ReadAsync(tx => NamespaceCheck.Run(tx, repair: false, limit));
    }

    private async Task<NamespaceCheckReply> RepairNamespaceAsync(int limit)
    {
        var reply = await _store.WriteAsync(tx => NamespaceCheck.Run(tx, repair: true, limit)).ConfigureAwait(false);

        // Clients keep attributes until called back: a repaired link count or parent is one.
        foreach (var problem in reply.Problems.Where(p => p.Repaired))
        {
            _notifier.AttrChanged((long)problem.Ino, origin: null);
        }

        return reply;
    }

    /// <summary>At startup: finds files whose retired objects were not deleted before the MDS stopped.</summary>
    public async Task<int> FindRetiringAsync(CancellationToken cancellationToken)
    {
        long after = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var batch = await _store.ReadAsync(tx => tx.ListFiles(after, 1024), cancellationToken).ConfigureAwait(false);
            if (batch.Count == 0)
            {
                break;
            }

            foreach (var inode in batch.Where(i => i.Layout?.Retired.Count > 0))
            {
                _retiring[inode.Ino] = 0;
            }

            after = batch[^1].Ino;
        }

        return _retiring.Count;
    }

    /// <summary>
    /// Queues for deletion the retired objects nobody can still write to. Called every second and
    /// on acknowledgements: a read finds what can go, then one transaction (one fsync) releases
    /// all of it, so a large migration does not queue a commit per file behind clients' fsyncs.
    /// </summary>
    public async Task<int> ReleaseRetiredAsync(long? only = null)
    {
        var candidates = only is { } one ? [one] : _retiring.Keys.ToList();
        if (candidates.Count == 0 || _sessions.RecoveryLeft > TimeSpan.Zero)
        {
            // While the MDS recovers, a holder from before its start that is not back yet may
            // still read and write the retired objects.
            return 0;
        }

        var ready = await _store.ReadAsync(tx => candidates
            .Select(ino => (Ino: ino, Layout: tx.GetInode(ino)?.Layout))
            .Where(c => c.Layout is null || c.Layout.Retired.Count == 0 || _sessions.NotAcknowledged(c.Ino, c.Layout.Generation).Count == 0)
            .Select(c => c.Ino)
            .ToList()).ConfigureAwait(false);
        if (ready.Count == 0)
        {
            return 0;
        }

        int released;
        try
        {
            released = await ReleaseAsync(ready).ConfigureAwait(false);
        }
        catch
        {
            // Rolled back: the entries removed inside the transaction must come back.
            ready.ForEach(ino => _retiring[ino] = 0);
            throw;
        }

        if (released > 0)
        {
            _deletionsQueued();
        }

        return released;
    }

    private Task<int> ReleaseAsync(List<long> ready) => _store.WriteAsync(tx =>
    {
        var count = 0;
        foreach (var ino in ready)
        {
            // Checked again inside the transaction: a migration may have begun meanwhile. The
            // set entry goes inside the transaction too, so a cut-over committed after it
            // (which adds the entry back after its own transaction) is never forgotten.
            if (tx.GetInode(ino) is not { Layout: { } layout } inode || layout.Retired.Count == 0)
            {
                _retiring.TryRemove(ino, out _);
                continue;
            }

            if (_sessions.NotAcknowledged(ino, layout.Generation).Count > 0)
            {
                continue;
            }

            _retiring.TryRemove(ino, out _);

            foreach (var o in layout.Retired)
            {
                tx.EnqueueObjectDeletion((int)o.TargetId, (long)o.ObjectId);
            }

            count += layout.Retired.Count;
            layout.Retired.Clear();
            tx.UpdateInode(inode);
        }

        return count;
    });

    /// <summary>Moves a pending layout's objects to the retired list (generation + 1); false when nothing migrates.</summary>
    private static bool AbortPending(InodeRecord inode)
    {
        if (inode.Layout?.Pending is not { } pending)
        {
            return false;
        }

        inode.Layout.Retired.AddRange(pending.Objects);
        inode.Layout.Pending = null;
        inode.Layout.Generation++;
        inode.CtimeNs = NowNs();
        return true;
    }

    private static InodeRecord RequireMigratable(IStoreTransaction tx, Caller caller, long ino)
    {
        var inode = Require(tx, ino);
        if (inode.Type != FileType.Regular || inode.Layout is null)
        {
            throw new ParaFsException(Errno.EINVAL, $"inode {ino} is not a regular file; only files migrate (directories keep their policy: parafs setstripe)");
        }

        if (!Access.IsOwner(caller, inode))
        {
            throw new ParaFsException(Errno.EPERM, $"uid {caller.Uid} does not own inode {ino} and may not migrate it");
        }

        return inode;
    }
}
