using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    /// <summary>
    /// setstripe: on a directory, sets the default new files (and new subdirectories) get; on an
    /// empty regular file, replaces its layout (new objects, generation + 1). A file that has data
    /// keeps its layout: only migration changes that.
    /// </summary>
    public async Task<GetStripeReply> SetStripeAsync(RequestContext context, long ino, LayoutPolicy policy)
    {
        if (policy.StripeSize != 0 && (policy.StripeSize % 4096 != 0))
        {
            throw new ParaFsException(Errno.EINVAL, $"stripe size {policy.StripeSize} is not a multiple of 4 KiB");
        }

        if (policy.StripeCount < -1)
        {
            throw new ParaFsException(Errno.EINVAL, $"stripe count {policy.StripeCount} is not valid (-1 means all targets)");
        }

        var reply = await CommitAsync(context, tx =>
        {
            var inode = Require(tx, ino);
            if (!Access.IsOwner(context.Caller, inode))
            {
                throw new ParaFsException(Errno.EPERM, $"uid {context.Caller.Uid} does not own inode {ino} and may not change its layout");
            }

            var now = NowNs();
            switch (inode.Type)
            {
                case FileType.Directory:
                    var current = inode.Policy ?? RootPolicy();
                    inode.Policy = new LayoutPolicy
                    {
                        StripeSize = policy.StripeSize != 0 ? policy.StripeSize : current.StripeSize,
                        StripeCount = policy.StripeCount != 0 ? policy.StripeCount : current.StripeCount,
                        Pool = policy.Pool.Length > 0 ? policy.Pool : current.Pool,
                    };
                    break;
                case FileType.Regular:
                    if (inode.Size > 0)
                    {
                        throw new ParaFsException(Errno.EBUSY, $"inode {ino} already has data; its layout changes only by migration (parafs migrate)");
                    }

                    var old = inode.Layout ?? new Layout();
                    if (old.Pending is not null || old.Retired.Count > 0)
                    {
                        throw new ParaFsException(Errno.EBUSY, $"inode {ino} is being migrated; its layout changes when that ends");
                    }

                    var fresh = _allocator.Allocate(
                        new LayoutPolicy
                        {
                            StripeSize = policy.StripeSize != 0 ? policy.StripeSize : old.StripeSize,
                            StripeCount = policy.StripeCount != 0 ? policy.StripeCount : (int)old.StripeCount,
                            Pool = policy.Pool.Length > 0 ? policy.Pool : old.Pool,
                        },
                        tx);
                    fresh.Generation = old.Generation + 1;
                    foreach (var o in old.Objects)
                    {
                        tx.EnqueueObjectDeletion((int)o.TargetId, (long)o.ObjectId);
                    }

                    inode.Layout = fresh;
                    break;
                default:
                    throw new ParaFsException(Errno.EINVAL, $"inode {ino} is neither a regular file nor a directory");
            }

            inode.CtimeNs = now;
            tx.UpdateInode(inode);
            return new GetStripeReply { Layout = inode.Layout, Policy = inode.Policy };
        }, r => r).ConfigureAwait(false);

        if (reply.Layout is { } layout)
        {
            _notifier.LayoutChanged(ino, layout.Generation, context.Origin);
        }

        return reply;
    }

    public Task<GetStripeReply> GetStripeAsync(long ino) => _store.ReadAsync(tx =>
    {
        var inode = Require(tx, ino);
        return new GetStripeReply { Layout = inode.Layout, Policy = inode.Policy };
    });

    /// <summary>statfs: inodes from the store, space summed over the targets that are up.</summary>
    public Task<StatFsReply> StatFsAsync(IEnumerable<(long Capacity, long Free)> targets) => _store.ReadAsync(tx =>
    {
        var used = tx.CountInodes();
        const long InodeLimit = 1L << 40;
        var list = targets.ToList();
        return new StatFsReply
        {
            CapacityBytes = (ulong)list.Sum(t => t.Capacity),
            FreeBytes = (ulong)list.Sum(t => t.Free),
            Inodes = (ulong)InodeLimit,
            FreeInodes = (ulong)(InodeLimit - used),
            MaxNameLength = Names.MaxBytes,
            BlockSize = 4096,
        };
    });
}
