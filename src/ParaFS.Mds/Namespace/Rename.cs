using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    /// <summary>renameat2(2) flags (linux/fs.h).</summary>
    public const uint RenameNoReplace = 1;
    public const uint RenameExchange = 2;

    /// <summary>
    /// rename(2) and renameat2(2), atomically, with the POSIX rules: a directory replaces only an
    /// empty directory (ENOTEMPTY), a file never replaces a directory (EISDIR) nor a directory a
    /// file (ENOTDIR), a directory never moves into its own subtree (EINVAL), and renaming a name
    /// onto another name of the same inode does nothing.
    /// </summary>
    public async Task RenameAsync(RequestContext context, RenameRequest request)
    {
        var (parent, name, newParent, newName) = ((long)request.Parent, request.Name, (long)request.NewParent, request.NewName);
        Names.CheckNew(name);
        Names.CheckNew(newName);
        if ((request.Flags & ~(RenameNoReplace | RenameExchange)) != 0 || request.Flags == (RenameNoReplace | RenameExchange))
        {
            throw new ParaFsException(Errno.EINVAL, $"rename flags 0x{request.Flags:x} are not valid");
        }

        var caller = context.Caller;
        using var claims = new RemovalClaims(_sessions);
        var outcome = await CommitAsync(context, tx =>
        {
            var from = RequireDirectory(tx, parent);
            var to = newParent == parent ? from : RequireDirectory(tx, newParent);
            Access.Require(caller, from, Access.Write | Access.Execute, $"rename '{name}' out of directory {parent}");
            Access.Require(caller, to, Access.Write | Access.Execute, $"rename into directory {newParent}");
            var sourceIno = tx.LookupEntry(parent, name) ?? throw new ParaFsException(Errno.ENOENT, $"no entry '{name}' in directory {parent}");
            var source = Require(tx, sourceIno);
            Access.RequireStickyOwner(caller, from, source, name);
            var targetIno = tx.LookupEntry(newParent, newName);
            var target = targetIno is { } t ? Require(tx, t) : null;

            if ((request.Flags & RenameExchange) != 0 && target is null)
            {
                throw new ParaFsException(Errno.ENOENT, $"RENAME_EXCHANGE: no entry '{newName}' in directory {newParent}");
            }

            if ((request.Flags & RenameNoReplace) != 0 && target is not null)
            {
                throw new ParaFsException(Errno.EEXIST, $"'{newName}' exists in directory {newParent} (RENAME_NOREPLACE)");
            }

            if (target is not null && target.Ino == source.Ino)
            {
                return (Destroyed: false, Moved: (long?)null, Other: (long?)null);
            }

            if (target is not null)
            {
                Access.RequireStickyOwner(caller, to, target, newName);
            }

            var now = NowNs();
            if ((request.Flags & RenameExchange) != 0)
            {
                CheckMove(tx, caller, source, from, to);
                CheckMove(tx, caller, target!, to, from);
                tx.ReplaceEntry(parent, name, target!.Ino);
                tx.ReplaceEntry(newParent, newName, source.Ino);
                Reparent(source, from, to);
                Reparent(target, to, from);
                foreach (var changed in new[] { source, target })
                {
                    changed.CtimeNs = now;
                    tx.UpdateInode(changed);
                }

                SaveParents(tx, from, to, now);
                return (Destroyed: false, Moved: source.Ino, Other: target.Ino);
            }

            // Linux refuses a move into the source's own subtree (EINVAL), and a target that is an
            // ancestor of the source (ENOTEMPTY), before it looks at what the target is.
            CheckMove(tx, caller, source, from, to);
            if (target is { Type: FileType.Directory } && IsAncestor(tx, target.Ino, from.Ino))
            {
                throw new ParaFsException(Errno.ENOTEMPTY, $"'{newName}' is a directory that holds '{name}'");
            }

            if (target is not null)
            {
                if (source.Type == FileType.Directory && target.Type != FileType.Directory)
                {
                    throw new ParaFsException(Errno.ENOTDIR, $"cannot replace non-directory '{newName}' with directory '{name}'");
                }

                if (source.Type != FileType.Directory && target.Type == FileType.Directory)
                {
                    throw new ParaFsException(Errno.EISDIR, $"cannot replace directory '{newName}' with non-directory '{name}'");
                }

                if (target.Type == FileType.Directory && tx.HasEntries(target.Ino))
                {
                    throw new ParaFsException(Errno.ENOTEMPTY, $"directory '{newName}' is not empty");
                }
            }

            tx.DeleteEntry(parent, name);
            var destroyed = false;
            if (target is not null)
            {
                tx.ReplaceEntry(newParent, newName, source.Ino);
                if (target.Type == FileType.Directory)
                {
                    to.Nlink--;
                    target.Nlink = 0;
                }
                else
                {
                    target.Nlink--;
                }

                target.CtimeNs = now;
                destroyed = DropIfUnreferenced(tx, target, claims);
            }
            else
            {
                tx.InsertEntry(newParent, newName, source.Ino);
            }

            Reparent(source, from, to);
            source.CtimeNs = now;
            tx.UpdateInode(source);
            SaveParents(tx, from, to, now);
            return (Destroyed: destroyed, Moved: source.Ino, Other: target?.Ino);
        }, _ => NoReply).ConfigureAwait(false);
        claims.Dispose(); // at once: opens waiting on the claim need not wait for the notifications

        if (outcome.Destroyed)
        {
            _deletionsQueued();
        }
        else if (outcome.Other is { } replaced)
        {
            await ReclaimIfClosedMeanwhileAsync(replaced).ConfigureAwait(false);
        }

        _notifier.EntryChanged(parent, name, context.Origin);
        _notifier.EntryChanged(newParent, newName, context.Origin);
        if (outcome.Moved is { } moved)
        {
            // Clients keep attributes until called back: the directories' times and link counts,
            // the moved inode's ctime, and the replaced (or exchanged) inode's link count and ctime.
            _notifier.AttrChanged(parent, context.Origin);
            if (newParent != parent)
            {
                _notifier.AttrChanged(newParent, context.Origin);
            }

            _notifier.AttrChanged(moved, context.Origin);
        }

        if (outcome.Other is { } other)
        {
            _notifier.AttrChanged(other, context.Origin);
        }
    }

    /// <summary>A directory moving to another parent must not land in its own subtree, and its ".." changes (write permission on it).</summary>
    private static void CheckMove(IStoreTransaction tx, Caller caller, InodeRecord moving, InodeRecord from, InodeRecord to)
    {
        if (moving.Type != FileType.Directory || from.Ino == to.Ino)
        {
            return;
        }

        Access.Require(caller, moving, Access.Write, $"move directory {moving.Ino} (its '..' changes)");
        for (var ino = to.Ino; ; )
        {
            if (ino == moving.Ino)
            {
                throw new ParaFsException(Errno.EINVAL, $"cannot move directory {moving.Ino} into its own subtree (directory {to.Ino})");
            }

            if (ino == RootIno)
            {
                return;
            }

            ino = Require(tx, ino).Parent;
        }
    }

    /// <summary>True when <paramref name="ancestor"/> is <paramref name="directory"/> or holds it.</summary>
    private static bool IsAncestor(IStoreTransaction tx, long ancestor, long directory)
    {
        for (var ino = directory; ; ino = Require(tx, ino).Parent)
        {
            if (ino == ancestor)
            {
                return true;
            }

            if (ino == RootIno)
            {
                return false;
            }
        }
    }

    private static void Reparent(InodeRecord moved, InodeRecord from, InodeRecord to)
    {
        if (moved.Type != FileType.Directory || from.Ino == to.Ino)
        {
            return;
        }

        moved.Parent = to.Ino;
        from.Nlink--;
        to.Nlink++;
    }

    private static void SaveParents(IStoreTransaction tx, InodeRecord from, InodeRecord to, long now)
    {
        Touch(from, now);
        tx.UpdateInode(from);
        if (to.Ino != from.Ino)
        {
            Touch(to, now);
            tx.UpdateInode(to);
        }
    }
}
