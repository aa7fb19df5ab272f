using System.Text;
using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    /// <summary>setxattr(2) flags (linux/xattr.h).</summary>
    public const uint XattrCreate = 1;
    public const uint XattrReplace = 2;

    /// <summary>
    /// Which caller may do what with an extended attribute, by namespace (xattr(7)): user.* on
    /// regular files and directories under the file's permissions; trusted.* for root only (hidden
    /// from others); security.* readable by all, written by the owner or root. Others: EOPNOTSUPP.
    /// </summary>
    private static bool CheckXattrAccess(Caller caller, InodeRecord inode, string name, bool write)
    {
        if (name.Length == 0 || Encoding.UTF8.GetByteCount(name) > MaxXattrNameBytes)
        {
            throw new ParaFsException(Errno.ERANGE, $"an extended attribute name is 1..{MaxXattrNameBytes} bytes");
        }

        if (name.StartsWith("user.", StringComparison.Ordinal))
        {
            if (inode.Type is not (FileType.Regular or FileType.Directory))
            {
                throw new ParaFsException(write ? Errno.EPERM : Errno.ENODATA, $"user.* attributes exist only on regular files and directories (inode {inode.Ino})");
            }

            Access.Require(caller, inode, write ? Access.Write : Access.Read, $"{(write ? "write" : "read")} extended attribute {name}");
            return true;
        }

        if (name.StartsWith("trusted.", StringComparison.Ordinal))
        {
            if (!Access.IsRoot(caller))
            {
                throw new ParaFsException(write ? Errno.EPERM : Errno.ENODATA, $"trusted.* attributes are for root only ({name})");
            }

            return true;
        }

        if (name.StartsWith("security.", StringComparison.Ordinal))
        {
            if (write && !Access.IsOwner(caller, inode))
            {
                throw new ParaFsException(Errno.EPERM, $"uid {caller.Uid} does not own inode {inode.Ino} and may not set {name}");
            }

            return true;
        }

        throw new ParaFsException(Errno.EOPNOTSUPP, $"extended attribute namespace of '{name}' is not supported (user., trusted., security.)");
    }

    public async Task SetXattrAsync(RequestContext context, long ino, string name, byte[] value, uint flags)
    {
        if (value.Length > MaxXattrValueBytes)
        {
            throw new ParaFsException(Errno.E2BIG, $"an extended attribute value is at most {MaxXattrValueBytes} bytes, not {value.Length}");
        }

        if ((flags & ~(XattrCreate | XattrReplace)) != 0 || flags == (XattrCreate | XattrReplace))
        {
            throw new ParaFsException(Errno.EINVAL, $"setxattr flags 0x{flags:x} are not valid");
        }

        await CommitAsync(context, tx =>
        {
            var inode = Require(tx, ino);
            CheckXattrAccess(context.Caller, inode, name, write: true);
            var exists = tx.GetXattr(ino, name) is not null;
            if (exists && (flags & XattrCreate) != 0)
            {
                throw new ParaFsException(Errno.EEXIST, $"extended attribute {name} already exists on inode {ino} (XATTR_CREATE)");
            }

            if (!exists && (flags & XattrReplace) != 0)
            {
                throw new ParaFsException(Errno.ENODATA, $"extended attribute {name} does not exist on inode {ino} (XATTR_REPLACE)");
            }

            tx.SetXattr(ino, name, value);
            inode.CtimeNs = NowNs();
            tx.UpdateInode(inode);
            return 0;
        }, _ => NoReply).ConfigureAwait(false);
        _notifier.AttrChanged(ino, context.Origin);
    }

    public Task<byte[]> GetXattrAsync(RequestContext context, long ino, string name) => _store.ReadAsync(tx =>
    {
        var inode = Require(tx, ino);
        CheckXattrAccess(context.Caller, inode, name, write: false);
        return tx.GetXattr(ino, name) ?? throw new ParaFsException(Errno.ENODATA, $"no extended attribute {name} on inode {ino}");
    });

    public Task<IReadOnlyList<string>> ListXattrAsync(RequestContext context, long ino) => _store.ReadAsync(tx =>
    {
        Require(tx, ino);
        var names = tx.ListXattrs(ino);
        return Access.IsRoot(context.Caller) ? names : (IReadOnlyList<string>)[.. names.Where(n => !n.StartsWith("trusted.", StringComparison.Ordinal))];
    });

    public async Task RemoveXattrAsync(RequestContext context, long ino, string name)
    {
        await CommitAsync(context, tx =>
        {
            var inode = Require(tx, ino);
            CheckXattrAccess(context.Caller, inode, name, write: true);
            if (!tx.RemoveXattr(ino, name))
            {
                throw new ParaFsException(Errno.ENODATA, $"no extended attribute {name} on inode {ino}");
            }

            inode.CtimeNs = NowNs();
            tx.UpdateInode(inode);
            return 0;
        }, _ => NoReply).ConfigureAwait(false);
        _notifier.AttrChanged(ino, context.Origin);
    }
}
