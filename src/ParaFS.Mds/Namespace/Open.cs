using ParaFS.Common;
using ParaFS.Mds.Sessions;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    private static void CheckOpenPermission(Caller caller, InodeRecord inode, uint flags)
    {
        var mode = flags & OpenFlags.AccessMode;
        if (inode.Type == FileType.Directory && (mode != OpenFlags.ReadOnly || (flags & OpenFlags.Truncate) != 0))
        {
            throw new ParaFsException(Errno.EISDIR, $"inode {inode.Ino} is a directory and cannot be opened for writing");
        }

        var want = mode switch
        {
            OpenFlags.WriteOnly => Access.Write,
            OpenFlags.ReadWrite => Access.Read | Access.Write,
            _ => Access.Read,
        };
        if ((flags & OpenFlags.Truncate) != 0)
        {
            want |= Access.Write;
        }

        Access.Require(caller, inode, want, $"open inode {inode.Ino} with flags 0x{flags:x}");
    }

    /// <summary>open(2) of an existing inode: checks permissions, registers the handle in the caller's session, and truncates with O_TRUNC.</summary>
    public async Task<OpenReply> OpenAsync(RequestContext context, long ino, uint flags)
    {
        var session = context.Session ?? throw new ParaFsException(Errno.EINVAL, "open needs a session (call MdsSession first)");
        var truncating = (flags & OpenFlags.Truncate) != 0;
        if (truncating)
        {
            var inode = await _store.ReadAsync(tx => Require(tx, ino)).ConfigureAwait(false);
            CheckOpenPermission(context.Caller, inode, flags);
            if (inode.Type == FileType.Regular && inode.Size > 0)
            {
                await TruncateAsync(ino, 0, context.Origin).ConfigureAwait(false);
            }
        }

        // Registered inside the write transaction, so an unlink cannot slip between the check that
        // the inode exists and the registration that keeps it alive. Only an open that truncated
        // records its reply: a copy of it sent again after a restart must not truncate again. A
        // plain open changes nothing in the store (its handle lives in memory, and a copy of it
        // after a restart just opens again), so its transaction writes nothing and waits for no
        // flush to the disk: a data loader opening many small files pays no fsync per open. A
        // plain open is this one transaction; its permission check is made inside it.
        // A removal deleting the inode right now makes the open wait for it and run again
        // (SessionTable.TryClaimRemoval): it then finds the inode gone.
        while (true)
        {
            var opens = new PendingOpens(_sessions);
            try
            {
                return await CommitAsync(context, tx =>
                {
                    opens.Undo();
                    var current = Require(tx, ino);
                    CheckOpenPermission(context.Caller, current, flags);
                    if (current.Nlink == 0 && current.Type != FileType.Directory && !_sessions.IsOpen(ino))
                    {
                        throw new ParaFsException(Errno.ENOENT, $"inode {ino} was removed");
                    }

                    var open = opens.Add(session, ino, flags, current.Layout?.Generation ?? 0);
                    return new OpenReply { Handle = open.Handle, Attr = ToAttr(current), Layout = current.Layout };
                }, r => truncating ? r : null).ConfigureAwait(false);
            }
            catch (InodeBeingRemovedException removing)
            {
                opens.Undo();
                await removing.Removed.ConfigureAwait(false);
            }
            catch
            {
                opens.Undo();
                throw;
            }
            finally
            {
                await opens.ReclaimReleasedAsync(this).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Handles one operation registers from inside a store transaction. The store may run the work
    /// again (PostgreSQL retries serialization failures) or fail at commit: each attempt undoes
    /// the one before, and a failed operation undoes its last, so no handle is left registered
    /// that its client never learned of (it would keep an unlinked file alive until the session ends).
    /// </summary>
    private sealed class PendingOpens(SessionTable sessions)
    {
        private readonly List<ulong> _handles = [];
        private readonly List<long> _released = [];

        public OpenFile Add(ClientSession session, long ino, uint flags, ulong layoutGeneration)
        {
            var open = sessions.AddOpen(session, ino, flags, layoutGeneration);
            _handles.Add(open.Handle);
            return open;
        }

        public void Undo()
        {
            foreach (var handle in _handles)
            {
                if (sessions.Close(handle) is { Open: { } open, Last: true })
                {
                    _released.Add(open.Ino);
                }
            }

            _handles.Clear();
        }

        /// <summary>
        /// Deletes what an undone handle alone kept: a removal that ran while the handle was
        /// registered kept the file as an orphan for it, and nothing else will close it.
        /// </summary>
        public async Task ReclaimReleasedAsync(MdsNamespace ns)
        {
            foreach (var ino in _released)
            {
                await ns.ReclaimIfOrphanAsync(ino).ConfigureAwait(false);
            }

            _released.Clear();
        }
    }

    /// <summary>
    /// close(2): applies the client's size report, and deletes an unlinked file on its last close
    /// anywhere. Only an inode a removal left as an orphan is looked at: the last close of a named
    /// file (every file a data loader reads) takes no turn in the store's one writer.
    /// </summary>
    public async Task CloseAsync(RequestContext context, ulong handle, SizeReport? report)
    {
        if (report is not null && report.Ino != 0)
        {
            await ReportSizesAsync([report], context.Origin).ConfigureAwait(false);
        }

        var (open, last) = _sessions.Close(handle);
        if (open is null)
        {
            throw new ParaFsException(Errno.EBADF, $"handle {handle} is not open");
        }

        if (last && _sessions.MayBeKeptOpen(open.Ino))
        {
            await ReclaimIfOrphanAsync(open.Ino).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes inodes that lost their last open while having no name (after a session expired, or after an MDS restart).</summary>
    public async Task<int> ReclaimIfOrphanAsync(long ino)
    {
        using var claims = new RemovalClaims(_sessions);
        var (destroyed, gone) = await _store.WriteAsync(tx =>
        {
            var inode = tx.GetInode(ino);
            if (inode is null)
            {
                return (false, true);
            }

            if (inode.Nlink != 0 || !claims.NobodyHasOpen(ino))
            {
                return (false, false);
            }

            Destroy(tx, inode);
            return (true, true);
        }).ConfigureAwait(false);
        if (gone)
        {
            _sessions.Reclaimed(ino);
        }

        if (destroyed)
        {
            _deletionsQueued();
        }

        return destroyed ? 1 : 0;
    }

    /// <summary>Reclaims every orphan nobody holds open: run after clients had their lease to come back following an MDS restart.</summary>
    public async Task<int> ReclaimOrphansAsync()
    {
        var orphans = await _store.ReadAsync(tx => tx.ListOrphans()).ConfigureAwait(false);
        var count = 0;
        foreach (var ino in orphans)
        {
            count += await ReclaimIfOrphanAsync(ino).ConfigureAwait(false);
        }

        return count;
    }

    /// <summary>
    /// Re-establishes a client's session (and, after an MDS restart, its open handles and advisory
    /// locks); the reply lists the locks it could not take back.
    /// </summary>
    public SessionReply AttachSession(SessionRequest request, Protocol.Rpc.RpcServerConnection connection)
    {
        var session = _sessions.Attach(request.SessionId, request.ClientName, connection,
            request.OpenHandles.Select(h => (new OpenFile(h.Handle, (long)h.Ino, h.Flags, request.SessionId), h.LayoutGeneration)), out var mayHaveMissedCallbacks, out var known);
        if (request.OpenHandles.Count > 0 && mayHaveMissedCallbacks)
        {
            _ = RemindOfNewLayoutsAsync(session, request.OpenHandles);
        }

        var reply = new SessionReply { SessionId = session.Id, LeaseMs = (uint)_sessions.Lease.TotalMilliseconds };
        reply.LostLocks.AddRange(ReclaimLocks(session, request.HeldLocks, known));
        return reply;
    }

    /// <summary>
    /// A client back after a break (or an MDS restart) may have missed a layout change of a file
    /// it holds (the callback went out while it was away): it is sent again, so the client moves
    /// on to the new layout and says so, and the retired objects can go. Once per return: the
    /// attaches on the client's other connections that follow do not repeat it.
    /// </summary>
    private async Task RemindOfNewLayoutsAsync(ClientSession session, IReadOnlyCollection<OpenHandle> handles)
    {
        try
        {
            var held = handles.GroupBy(h => (long)h.Ino).Select(g => (Ino: g.Key, Generation: g.Min(h => h.LayoutGeneration))).ToList();
            var current = await _store.ReadAsync(tx => held.Select(h => (h.Ino, h.Generation, Now: tx.GetInode(h.Ino)?.Layout?.Generation ?? 0)).ToList()).ConfigureAwait(false);
            foreach (var (ino, _, now) in current.Where(c => c.Now > c.Generation))
            {
                _notifier.LayoutChanged(ino, now, [session]);
            }
        }
        catch (Exception e) when (e is ParaFsException or InvalidOperationException or System.Data.Common.DbException)
        {
            // Only a reminder: a mover's LayoutWait repeats the callback anyway.
        }
    }
}
