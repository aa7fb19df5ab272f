using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

public sealed partial class MdsNamespace
{
    public Task<AttrReply> LookupAsync(RequestContext context, long parent, string name) => _store.ReadAsync(tx =>
    {
        Names.Check(name);
        var directory = RequireDirectory(tx, parent);
        Access.Require(context.Caller, directory, Access.Execute, $"search directory {parent}");
        var ino = name switch
        {
            "." => parent,
            ".." => directory.Parent,
            _ => tx.LookupEntry(parent, name) ?? throw new ParaFsException(Errno.ENOENT, $"no entry '{name}' in directory {parent}"),
        };
        var inode = Require(tx, ino);
        return ToAttrReply(inode);
    });

    public Task<AttrReply> GetAttrAsync(long ino) => _store.ReadAsync(tx => ToAttrReply(Require(tx, ino)));

    public Task<string> ReadlinkAsync(long ino) => _store.ReadAsync(tx =>
    {
        var inode = Require(tx, ino);
        return inode.Type == FileType.Symlink ? inode.SymlinkTarget ?? "" : throw new ParaFsException(Errno.EINVAL, $"inode {ino} is not a symbolic link");
    });

    /// <summary>
    /// Entries after <paramref name="cookie"/> in a stable order. Cookies grow as entries are added,
    /// so a listing in progress never repeats or skips an entry that stays put, whatever else changes.
    /// </summary>
    public Task<ReaddirReply> ReaddirAsync(RequestContext context, long ino, long cookie, int limit, bool plus) => _store.ReadAsync(tx =>
    {
        var directory = RequireDirectory(tx, ino);
        Access.Require(context.Caller, directory, Access.Read, $"list directory {ino}");
        var take = Math.Clamp(limit, 1, 4096);
        var entries = tx.ListEntries(ino, cookie, take + 1);
        var reply = new ReaddirReply { More = entries.Count > take };
        foreach (var e in entries.Take(take))
        {
            var entry = new DirEntry { Name = e.Name, Ino = (ulong)e.Ino, Type = e.Type, Cookie = (ulong)e.Cookie };
            if (plus && tx.GetInode(e.Ino) is { } inode)
            {
                entry.Attr = ToAttr(inode);
            }

            reply.Entries.Add(entry);
        }

        return reply;
    });
}
