using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    /// <summary>
    /// unlink(2) and rmdir(2). A file's last name going away deletes it, unless a client has it
    /// open: then it lives on (nlink 0) until the last close on any client.
    /// </summary>
    public async Task<RemoveReply> RemoveAsync(RequestContext context, long parent, string name, bool directoryWanted)
    {
        Names.Check(name);
        if (name is "." or "..")
        {
            throw new ParaFsException(directoryWanted ? (name == "." ? Errno.EINVAL : Errno.ENOTEMPTY) : Errno.EISDIR, $"cannot remove '{name}'");
        }

        using var claims = new RemovalClaims(_sessions);
        var removed = await CommitAsync(context, tx =>
        {
            var directory = RequireDirectory(tx, parent);
            Access.Require(context.Caller, directory, Access.Write | Access.Execute, $"remove '{name}' from directory {parent}");
            var ino = tx.LookupEntry(parent, name) ?? throw new ParaFsException(Errno.ENOENT, $"no entry '{name}' in directory {parent}");
            var inode = Require(tx, ino);
            Access.RequireStickyOwner(context.Caller, directory, inode, name);
            if (directoryWanted && inode.Type != FileType.Directory)
            {
                throw new ParaFsException(Errno.ENOTDIR, $"'{name}' is not a directory");
            }

            if (!directoryWanted && inode.Type == FileType.Directory)
            {
                throw new ParaFsException(Errno.EISDIR, $"'{name}' is a directory; use rmdir");
            }

            if (directoryWanted && tx.HasEntries(ino))
            {
                throw new ParaFsException(Errno.ENOTEMPTY, $"directory '{name}' is not empty");
            }

            var now = NowNs();
            tx.DeleteEntry(parent, name);
            if (inode.Type == FileType.Directory)
            {
                directory.Nlink--;
                inode.Nlink = 0;
            }
            else
            {
                inode.Nlink--;
            }

            inode.CtimeNs = now;
            Touch(directory, now);
            tx.UpdateInode(directory);
            return (Ino: ino, Destroyed: DropIfUnreferenced(tx, inode, claims), Parent: ToAttrReply(directory));
        }, _ => NoReply).ConfigureAwait(false);
        claims.Dispose(); // at once: opens waiting on the claim need not wait for the notifications

        if (removed.Destroyed)
        {
            _deletionsQueued();
        }
        else
        {
            await ReclaimIfClosedMeanwhileAsync(removed.Ino).ConfigureAwait(false);
        }

        _notifier.EntryChanged(parent, name, context.Origin);
        _notifier.AttrChanged(parent, context.Origin);
        _notifier.AttrChanged(removed.Ino, context.Origin);
        return new RemoveReply { Parent = removed.Parent };
    }
}
