using ParaFS.Common;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    private const uint SetUidBit = 0x800;

    /// <summary>
    /// chmod, chown, truncate and utimes with the POSIX rules: only the owner (or root) changes the
    /// mode or explicit times; only root gives a file away; the owner may change the group to one
    /// of its own groups; chown by a non-root caller clears setuid and setgid; every change sets ctime.
    /// </summary>
    public async Task<AttrReply> SetAttrAsync(RequestContext context, SetAttrRequest request)
    {
        var caller = context.Caller;
        var ino = (long)request.Ino;
        var valid = (SetAttrField)request.Valid;
        if (valid.HasFlag(SetAttrField.Size))
        {
            if (request.Size > MaxFileSize)
            {
                throw new ParaFsException(Errno.EFBIG, $"size {request.Size} is past the largest file size");
            }

            var inode = await _store.ReadAsync(tx => Require(tx, ino)).ConfigureAwait(false);
            if (inode.Type == FileType.Directory)
            {
                throw new ParaFsException(Errno.EISDIR, $"inode {ino} is a directory");
            }

            if (inode.Type != FileType.Regular)
            {
                throw new ParaFsException(Errno.EINVAL, $"inode {ino} is not a regular file");
            }

            var throughHandle = request.Handle != 0 && _sessions.FindHandle(request.Handle) is { } open && open.Ino == ino
                && (open.Flags & OpenFlags.AccessMode) != OpenFlags.ReadOnly;
            if (!throughHandle)
            {
                Access.Require(caller, inode, Access.Write, $"truncate inode {ino}");
            }

            await TruncateAsync(ino, (long)request.Size, context.Origin).ConfigureAwait(false);
        }

        var reply = await CommitAsync(context, tx =>
        {
            var inode = Require(tx, ino);
            var now = NowNs();
            var changed = false;
            if (valid.HasFlag(SetAttrField.Mode))
            {
                if (!Access.IsOwner(caller, inode))
                {
                    throw new ParaFsException(Errno.EPERM, $"uid {caller.Uid} does not own inode {ino} and may not chmod it");
                }

                var mode = request.Mode & 0xFFF;
                if (!Access.IsRoot(caller) && inode.Type != FileType.Directory && !Access.InGroup(caller, inode.Gid))
                {
                    mode &= ~SetGidBit;
                }

                inode.Mode = mode;
                changed = true;
            }

            if (valid.HasFlag(SetAttrField.Uid) && request.Uid != inode.Uid)
            {
                if (!Access.IsRoot(caller))
                {
                    throw new ParaFsException(Errno.EPERM, $"only root may give inode {ino} to uid {request.Uid}");
                }

                inode.Uid = request.Uid;
                changed = true;
            }

            if (valid.HasFlag(SetAttrField.Gid) && request.Gid != inode.Gid)
            {
                if (!Access.IsRoot(caller) && !(caller.Uid == inode.Uid && Access.InGroup(caller, request.Gid)))
                {
                    throw new ParaFsException(Errno.EPERM, $"uid {caller.Uid} may not change the group of inode {ino} to {request.Gid}");
                }

                inode.Gid = request.Gid;
                changed = true;
            }

            if ((valid.HasFlag(SetAttrField.Uid) || valid.HasFlag(SetAttrField.Gid)) && inode.Type == FileType.Regular && !Access.IsRoot(caller))
            {
                inode.Mode &= ~(SetUidBit | SetGidBit);
            }

            foreach (var (explicitFlag, nowFlag, value, set) in new (SetAttrField, SetAttrField, long, Action<long>)[]
            {
                (SetAttrField.Atime, SetAttrField.AtimeNow, request.AtimeNs, v => inode.AtimeNs = v),
                (SetAttrField.Mtime, SetAttrField.MtimeNow, request.MtimeNs, v => inode.MtimeNs = v),
            })
            {
                if (valid.HasFlag(nowFlag))
                {
                    // utimes(NULL): the owner, or anyone who may write the file.
                    if (!Access.IsOwner(caller, inode) && !Access.Allowed(caller, inode, Access.Write))
                    {
                        throw new ParaFsException(Errno.EACCES, $"uid {caller.Uid} may not touch inode {ino}");
                    }

                    set(now);
                    changed = true;
                }
                else if (valid.HasFlag(explicitFlag))
                {
                    if (!Access.IsOwner(caller, inode))
                    {
                        throw new ParaFsException(Errno.EPERM, $"uid {caller.Uid} does not own inode {ino} and may not set its times");
                    }

                    set(value);
                    changed = true;
                }
            }

            if (changed || valid.HasFlag(SetAttrField.Ctime))
            {
                inode.CtimeNs = now;
                tx.UpdateInode(inode);
            }

            return ToAttrReply(inode);
        }, r => r).ConfigureAwait(false);

        _notifier.AttrChanged(ino, context.Origin);
        return reply;
    }

    /// <summary>
    /// Sets a regular file's size. When it shrinks, the MDS itself cuts every object on its OST
    /// first (so no byte past the new size can reappear when the file grows again), then commits
    /// the size. An OST that cannot be reached fails the truncate with EIO and the size stays.
    /// </summary>
    public async Task<AttrReply> TruncateAsync(long ino, long size, RpcServerConnection? origin)
    {
        // A migration's cut-over can swap the objects between the cut and the commit: then the new
        // objects are cut too, before the size is committed.
        for (var attempt = 0; ; attempt++)
        {
            var inode = await _store.ReadAsync(tx => Require(tx, ino)).ConfigureAwait(false);
            var cutGeneration = inode.Layout?.Generation ?? 0;
            if (size < inode.Size && inode.Layout is { } layout)
            {
                var map = new StripeMap((int)layout.StripeSize, (int)layout.StripeCount);
                var cuts = layout.Objects
                    .Select((o, index) => (Object: o, Now: map.ObjectSize(index, inode.Size), After: map.ObjectSize(index, size)))
                    .Where(c => c.After < c.Now)
                    .Select(c => _truncator.TruncateAsync(c.Object, c.After, CancellationToken.None));
                try
                {
                    await Task.WhenAll(cuts).ConfigureAwait(false);
                }
                catch (ParaFsException e)
                {
                    throw new ParaFsException(Errno.EIO, $"cannot truncate inode {ino} to {size} bytes: {e.Message}", e);
                }
            }

            var (reply, aborted) = await _store.WriteAsync(tx =>
            {
                var current = Require(tx, ino);
                if (size < current.Size && (current.Layout?.Generation ?? 0) != cutGeneration && attempt < 5)
                {
                    return ((AttrReply?)null, false);
                }

                // A shrinking truncate during a migration abandons the copy (it may have copied bytes
                // past the new size); the mover starts over with a fresh pending layout.
                var aborted = size < current.Size && AbortPending(current);
                current.Size = size;
                Touch(current, NowNs());
                tx.UpdateInode(current);
                return (ToAttrReply(current), aborted);
            }).ConfigureAwait(false);
            if (reply is null)
            {
                continue;
            }

            if (aborted)
            {
                _retiring[ino] = 0;
                _notifier.LayoutChanged(ino, reply.Layout.Generation, origin: null);
            }

            _notifier.AttrChanged(ino, origin);
            return reply;
        }
    }

    /// <summary>Size extensions reported by writers: the larger size wins; mtime moves forward.</summary>
    public async Task ReportSizesAsync(IReadOnlyList<SizeReport> reports, RpcServerConnection? origin)
    {
        var changed = await _store.WriteAsync(tx =>
        {
            var list = new List<long>();
            foreach (var report in reports)
            {
                if (tx.GetInode((long)report.Ino) is not { Type: FileType.Regular } inode)
                {
                    continue;
                }

                var grew = (long)report.Size > inode.Size;
                var touched = report.MtimeNs > inode.MtimeNs;
                if (!grew && !touched)
                {
                    continue;
                }

                inode.Size = Math.Max(inode.Size, (long)report.Size);
                if (touched)
                {
                    inode.MtimeNs = report.MtimeNs;
                    inode.CtimeNs = Math.Max(inode.CtimeNs, report.MtimeNs);
                }

                tx.UpdateInode(inode);
                list.Add(inode.Ino);
            }

            return list;
        }).ConfigureAwait(false);
        foreach (var ino in changed)
        {
            _notifier.AttrChanged(ino, origin);
        }
    }
}
