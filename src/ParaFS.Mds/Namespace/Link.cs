using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    /// <summary>The most names one inode may have (EMLINK past it).</summary>
    public const uint MaxLinks = 65000;

    /// <summary>link(2): a new name for an existing non-directory.</summary>
    public async Task<AttrReply> LinkAsync(RequestContext context, long ino, long newParent, string newName)
    {
        Names.CheckNew(newName);
        var reply = await CommitAsync(context, tx =>
        {
            var inode = Require(tx, ino);

            if (inode.Nlink == 0)
            {
                throw new ParaFsException(Errno.ENOENT, $"inode {ino} has been removed");
            }

            if (inode.Nlink >= MaxLinks)
            {
                throw new ParaFsException(Errno.EMLINK, $"inode {ino} already has {inode.Nlink} names");
            }

            var directory = RequireDirectory(tx, newParent);
            Access.Require(context.Caller, directory, Access.Write | Access.Execute, $"create '{newName}' in directory {newParent}");
            // Linux checks the new name (EEXIST) before what the old one is (EPERM for a directory).
            if (tx.LookupEntry(newParent, newName) is not null)
            {
                throw new ParaFsException(Errno.EEXIST, $"'{newName}' already exists in directory {newParent}");
            }

            if (inode.Type == FileType.Directory)
            {
                throw new ParaFsException(Errno.EPERM, $"inode {ino} is a directory; directories cannot be hard-linked");
            }

            var now = NowNs();
            tx.InsertEntry(newParent, newName, ino);
            inode.Nlink++;
            inode.CtimeNs = now;
            tx.UpdateInode(inode);
            Touch(directory, now);
            tx.UpdateInode(directory);
            return ToAttrReply(inode);
        }, r => r).ConfigureAwait(false);
        _notifier.EntryChanged(newParent, newName, context.Origin);
        _notifier.AttrChanged(ino, context.Origin);
        _notifier.AttrChanged(newParent, context.Origin);
        return reply;
    }
}
