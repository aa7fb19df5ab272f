using ParaFS.Common;
using ParaFS.Mds.Sessions;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    private const uint SetGidBit = 0x400;

    /// <summary>
    /// create(2)/open(O_CREAT), mknod(2), mkdir(2) and symlink(2). A regular file gets its layout
    /// from the directory's policy here; its objects come into being on first write.
    /// </summary>
    public async Task<EntryReply> CreateAsync(RequestContext context, CreateRequest request)
    {
        Names.CheckNew(request.Name);
        var caller = context.Caller;
        if (request.Type is FileType.CharDevice or FileType.BlockDevice && !Access.IsRoot(caller))
        {
            throw new ParaFsException(Errno.EPERM, $"only root may create device nodes ('{request.Name}')");
        }

        if (request.Type == FileType.Unspecified)
        {
            throw new ParaFsException(Errno.EINVAL, "a created inode needs a type");
        }

        if (request.Open && (request.Type != FileType.Regular || context.Session is null))
        {
            throw new ParaFsException(Errno.EINVAL, "only a regular file can be opened as it is created, and only within a session");
        }

        var parent = (long)request.Parent;
        while (true)
        {
            try
            {
                return await CreateOnceAsync(context, request, parent).ConfigureAwait(false);
            }
            catch (TruncateFirstException truncate)
            {
                await TruncateAsync(truncate.Ino, 0, context.Origin).ConfigureAwait(false);
            }
            catch (InodeBeingRemovedException removing)
            {
                // The name's inode is being deleted by a removal; once it is over, the name is
                // gone and this creates a new file (or the removal failed and this opens it).
                await removing.Removed.ConfigureAwait(false);
            }
        }
    }

    private async Task<EntryReply> CreateOnceAsync(RequestContext context, CreateRequest request, long parent)
    {
        var caller = context.Caller;
        var opens = new PendingOpens(_sessions);
        (EntryReply Reply, bool Created, InodeRecord? Truncated) reply;
        try
        {
            reply = await CommitAsync(context, tx => CreateWork(tx, context, request, parent, caller, opens), r => r.Reply).ConfigureAwait(false);
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

        if (reply.Created)
        {
            _notifier.EntryChanged(parent, request.Name, context.Origin);
            _notifier.AttrChanged(parent, context.Origin);
        }

        return reply.Reply;
    }

    private (EntryReply Reply, bool Created, InodeRecord? Truncated) CreateWork(IStoreTransaction tx, RequestContext context, CreateRequest request, long parent, Caller caller, PendingOpens opens)
    {
        // A store may run this again (a retried serialization failure): the previous attempt's handle goes first.
        opens.Undo();
        var directory = RequireDirectory(tx, parent);
        Access.Require(caller, directory, Access.Write | Access.Execute, $"create '{request.Name}' in directory {parent}");
        if (directory.Nlink == 0)
        {
            throw new ParaFsException(Errno.ENOENT, $"directory {parent} has been removed");
        }

        if (tx.LookupEntry(parent, request.Name) is { } existing)
        {
            var opened = OpenExisting(tx, context, request, existing, opens);
            opened.Reply.Parent = ToAttrReply(directory);
            return opened;
        }

        var now = NowNs();
        var inode = new InodeRecord
        {
            Ino = tx.NextId("inode"),
            Type = request.Type,
            Mode = request.Mode & 0xFFF,
            Nlink = request.Type == FileType.Directory ? 2u : 1u,
            Uid = caller.Uid,
            Gid = (directory.Mode & SetGidBit) != 0 ? directory.Gid : caller.Gid,
            AtimeNs = now,
            MtimeNs = now,
            CtimeNs = now,
            CrtimeNs = now,
            Rdev = (long)request.Rdev,
            Parent = request.Type == FileType.Directory ? parent : 0,
        };
        switch (request.Type)
        {
            case FileType.Directory:
                inode.Policy = directory.Policy?.Clone();
                if ((directory.Mode & SetGidBit) != 0)
                {
                    inode.Mode |= SetGidBit;
                }

                directory.Nlink++;
                break;
            case FileType.Regular:
                inode.Layout = _allocator.Allocate(directory.Policy ?? RootPolicy(), tx);
                break;
            case FileType.Symlink:
                if (request.SymlinkTarget.Length is 0 or > 4095)
                {
                    throw new ParaFsException(request.SymlinkTarget.Length == 0 ? Errno.ENOENT : Errno.ENAMETOOLONG, "a symlink target is 1..4095 bytes");
                }

                inode.SymlinkTarget = request.SymlinkTarget;
                inode.Mode = 0x1FF;
                inode.Size = System.Text.Encoding.UTF8.GetByteCount(request.SymlinkTarget);
                break;
        }

        if (inode.Type == FileType.Regular && (caller.Uid != 0) && !Access.InGroup(caller, inode.Gid))
        {
            // POSIX: setgid on a file whose group the creator is not in is dropped.
            inode.Mode &= ~SetGidBit;
        }

        tx.InsertInode(inode);
        tx.InsertEntry(parent, request.Name, inode.Ino);
        Touch(directory, now);
        tx.UpdateInode(directory);
        var handle = request.Open ? opens.Add(context.Session!, inode.Ino, request.OpenFlags, inode.Layout?.Generation ?? 0).Handle : 0;
        return (Reply: new EntryReply { Attr = ToAttr(inode), Layout = inode.Layout, Handle = handle, Created = true, Parent = ToAttrReply(directory) }, Created: true, Truncated: (InodeRecord?)null);
    }

    /// <summary>open(O_CREAT) without O_EXCL on a name that exists: open it (after permission checks), truncating it with O_TRUNC.</summary>
    private (EntryReply Reply, bool Created, InodeRecord? Truncated) OpenExisting(IStoreTransaction tx, RequestContext context, CreateRequest request, long ino, PendingOpens opens)
    {
        if (request.Exclusive || request.Type != FileType.Regular || !request.Open)
        {
            throw new ParaFsException(Errno.EEXIST, $"'{request.Name}' already exists in directory {request.Parent}");
        }

        var inode = Require(tx, ino);
        if (inode.Type == FileType.Directory)
        {
            throw new ParaFsException(Errno.EISDIR, $"'{request.Name}' is a directory");
        }

        CheckOpenPermission(context.Caller, inode, request.OpenFlags);
        if ((request.OpenFlags & OpenFlags.Truncate) != 0 && inode.Size > 0)
        {
            throw new TruncateFirstException(ino);
        }

        var handle = opens.Add(context.Session!, inode.Ino, request.OpenFlags, inode.Layout?.Generation ?? 0).Handle;
        return (new EntryReply { Attr = ToAttr(inode), Layout = inode.Layout, Handle = handle }, false, null);
    }

    /// <summary>Thrown inside a transaction to say "truncate the objects, then retry": a store transaction must not call OSTs.</summary>
    private sealed class TruncateFirstException(long ino) : Exception($"inode {ino} must be truncated before it is opened with O_TRUNC")
    {
        public long Ino { get; } = ino;
    }
}
