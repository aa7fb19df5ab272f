using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

/// <summary>
/// The errno of every failing namespace call, and that a failing call changes nothing: the whole
/// namespace (names, inodes, link counts, sizes, modes, xattrs) is the same before and after.
/// </summary>
public abstract class ErrnoTests(TestStore store) : IAsyncLifetime
{
    private const ulong Root = 1;
    private MdsFixture _mds = null!;
    private TestClient _root = null!;
    private TestClient _alice = null!;
    private Attr _dir = null!;
    private Attr _file = null!;
    private Attr _full = null!;
    private Attr _sticky = null!;

    public async Task InitializeAsync()
    {
        _mds = await MdsFixture.StartAsync(store);
        await _mds.AddTargetsAsync(2);
        _root = await _mds.ClientAsync();
        _alice = await _mds.ClientAsync(uid: 1000, gid: 1000);
        _dir = await _root.MkdirAsync(Root, "dir");
        _file = await _root.CreateAsync(Root, "file");
        _full = await _root.MkdirAsync(Root, "full");
        await _root.CreateAsync(_full.Ino, "inside");
        await _root.SetXattrAsync(_file.Ino, "user.color", "blue"u8.ToArray());
        await _root.CreateAsync(_dir.Ino, "nested-file");
        _sticky = await _root.MkdirAsync(Root, "tmp", mode: 0x3FF);
        await _root.CreateAsync(_sticky.Ino, "roots-file");
        await _root.SymlinkAsync(Root, "link", "file");
    }

    public async Task DisposeAsync()
    {
        await _alice.DisposeAsync();
        await _root.DisposeAsync();
        await _mds.DisposeAsync();
    }

    public static TheoryData<string, Errno> Cases => new()
    {
        { "lookup of a missing name", Errno.ENOENT },
        { "create of an existing name with O_EXCL", Errno.EEXIST },
        { "mkdir of an existing name", Errno.EEXIST },
        { "create in a file", Errno.ENOTDIR },
        { "name with a slash", Errno.EINVAL },
        { "name over 255 bytes", Errno.ENAMETOOLONG },
        { "rmdir of a non-empty directory", Errno.ENOTEMPTY },
        { "rmdir of a file", Errno.ENOTDIR },
        { "unlink of a directory", Errno.EISDIR },
        { "unlink of a missing name", Errno.ENOENT },
        { "rename of a missing name", Errno.ENOENT },
        { "rename of a directory over a file", Errno.ENOTDIR },
        { "rename of a file over a directory", Errno.EISDIR },
        { "rename of a directory over a non-empty directory", Errno.ENOTEMPTY },
        { "rename of a directory into its own subtree", Errno.EINVAL },
        { "rename with RENAME_NOREPLACE over a name", Errno.EEXIST },
        { "rename with RENAME_EXCHANGE and no target", Errno.ENOENT },
        { "rename with both flags", Errno.EINVAL },
        { "link of a directory", Errno.EPERM },
        { "link onto an existing name", Errno.EEXIST },
        { "readlink of a file", Errno.EINVAL },
        { "readdir of a file", Errno.ENOTDIR },
        { "getattr of a removed inode", Errno.ENOENT },
        { "setxattr XATTR_CREATE of an existing attribute", Errno.EEXIST },
        { "setxattr XATTR_REPLACE of a missing attribute", Errno.ENODATA },
        { "getxattr of a missing attribute", Errno.ENODATA },
        { "setxattr of a value over 64 KiB", Errno.E2BIG },
        { "setxattr of a name over 255 bytes", Errno.ERANGE },
        { "setxattr in an unknown namespace", Errno.EOPNOTSUPP },
        { "setxattr trusted.* by a user", Errno.EPERM },
        { "create by a user in a root 0755 directory", Errno.EACCES },
        { "chmod by a user who does not own the file", Errno.EPERM },
        { "chown by a user", Errno.EPERM },
        { "truncate by a user without write permission", Errno.EACCES },
        { "mknod of a device by a user", Errno.EPERM },
        { "unlink by a user of roots file in a sticky directory", Errno.EPERM },
        { "truncate of a directory", Errno.EISDIR },
        { "setstripe with a size that is not a 4 KiB multiple", Errno.EINVAL },
    };

    [SuiteTheory]
    [MemberData(nameof(Cases))]
    public async Task A_failing_call_returns_its_errno_and_changes_nothing(string call, Errno expected)
    {
        var before = await SnapshotAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => Run(call));
        Assert.Equal(expected, e.Errno);
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        Assert.Equal(before, await SnapshotAsync());
    }

    private Task Run(string call) => call switch
    {
        "lookup of a missing name" => _root.LookupAsync(Root, "nope"),
        "create of an existing name with O_EXCL" => _root.CreateAsync(Root, "file"),
        "mkdir of an existing name" => _root.MkdirAsync(Root, "dir"),
        "create in a file" => _root.CreateAsync(_file.Ino, "x"),
        "name with a slash" => _root.CreateAsync(Root, "a/b"),
        "name over 255 bytes" => _root.CreateAsync(Root, new string('n', 256)),
        "rmdir of a non-empty directory" => _root.RmdirAsync(Root, "full"),
        "rmdir of a file" => _root.RmdirAsync(Root, "file"),
        "unlink of a directory" => _root.UnlinkAsync(Root, "dir"),
        "unlink of a missing name" => _root.UnlinkAsync(Root, "nope"),
        "rename of a missing name" => _root.RenameAsync(Root, "nope", Root, "x"),
        "rename of a directory over a file" => _root.RenameAsync(Root, "dir", Root, "file"),
        "rename of a file over a directory" => _root.RenameAsync(Root, "file", Root, "dir"),
        "rename of a directory over a non-empty directory" => _root.RenameAsync(Root, "dir", Root, "full"),
        "rename of a directory into its own subtree" => _root.RenameAsync(Root, "dir", _dir.Ino, "sub"),
        "rename with RENAME_NOREPLACE over a name" => _root.RenameAsync(Root, "file", Root, "link", flags: 1),
        "rename with RENAME_EXCHANGE and no target" => _root.RenameAsync(Root, "file", Root, "nope", flags: 2),
        "rename with both flags" => _root.RenameAsync(Root, "file", Root, "nope", flags: 3),
        "link of a directory" => _root.LinkAsync(_dir.Ino, Root, "dir2"),
        "link onto an existing name" => _root.LinkAsync(_file.Ino, Root, "dir"),
        "readlink of a file" => _root.CallAsync(Methods.MdsReadlink, new GetAttrRequest { Ino = _file.Ino }),
        "readdir of a file" => _root.ReaddirAllAsync(_file.Ino),
        "getattr of a removed inode" => _root.GetAttrAsync(999_999),
        "setxattr XATTR_CREATE of an existing attribute" => _root.SetXattrAsync(_file.Ino, "user.color", [1], flags: 1),
        "setxattr XATTR_REPLACE of a missing attribute" => _root.SetXattrAsync(_file.Ino, "user.size", [1], flags: 2),
        "getxattr of a missing attribute" => _root.GetXattrAsync(_file.Ino, "user.size"),
        "setxattr of a value over 64 KiB" => _root.SetXattrAsync(_file.Ino, "user.big", new byte[65 * 1024]),
        "setxattr of a name over 255 bytes" => _root.SetXattrAsync(_file.Ino, "user." + new string('x', 260), [1]),
        "setxattr in an unknown namespace" => _root.SetXattrAsync(_file.Ino, "weird.x", [1]),
        "setxattr trusted.* by a user" => _alice.SetXattrAsync(_file.Ino, "trusted.x", [1]),
        "create by a user in a root 0755 directory" => _alice.CreateAsync(Root, "mine"),
        "chmod by a user who does not own the file" => _alice.SetAttrAsync(new SetAttrRequest { Ino = _file.Ino, Valid = (uint)SetAttrField.Mode, Mode = 0x1FF }),
        "chown by a user" => _alice.SetAttrAsync(new SetAttrRequest { Ino = _file.Ino, Valid = (uint)SetAttrField.Uid, Uid = 1000 }),
        "truncate by a user without write permission" => _alice.SetAttrAsync(new SetAttrRequest { Ino = _file.Ino, Valid = (uint)SetAttrField.Size, Size = 0 }),
        "mknod of a device by a user" => _alice.CreateAsync(_sticky.Ino, "dev", FileType.CharDevice),
        "unlink by a user of roots file in a sticky directory" => _alice.UnlinkAsync(_sticky.Ino, "roots-file"),
        "truncate of a directory" => _root.SetAttrAsync(new SetAttrRequest { Ino = _dir.Ino, Valid = (uint)SetAttrField.Size, Size = 0 }),
        "setstripe with a size that is not a 4 KiB multiple" => _root.CallAsync(Methods.MdsSetStripe, new SetStripeRequest { Caller = _root.Caller, Ino = _dir.Ino, Policy = new LayoutPolicy { StripeSize = 1000 } }),
        _ => throw new ArgumentException(call),
    };

    /// <summary>Every name reachable from the root with its inode's attributes and xattrs, as text.</summary>
    private async Task<string> SnapshotAsync()
    {
        var lines = new List<string>();
        async Task Walk(ulong ino, string path)
        {
            foreach (var e in (await _root.ReaddirAllAsync(ino)).OrderBy(e => e.Name, StringComparer.Ordinal))
            {
                var a = e.Attr;
                var xattrs = await _root.CallAsync(Methods.MdsListXattr, new XattrRequest { Caller = _root.Caller, Ino = a.Ino }, XattrReply.Parser);
                lines.Add($"{path}/{e.Name} ino={a.Ino} type={a.Type} mode={Convert.ToString(a.Mode, 8)} nlink={a.Nlink} uid={a.Uid} size={a.Size} mtime={a.MtimeNs} ctime={a.CtimeNs} xattrs={string.Join(',', xattrs.Names)}");
                if (a.Type == FileType.Directory)
                {
                    await Walk(a.Ino, $"{path}/{e.Name}");
                }
            }
        }

        var root = await _root.GetAttrAsync(Root);
        lines.Add($"/ nlink={root.Attr.Nlink} mtime={root.Attr.MtimeNs}");
        await Walk(Root, "");
        return string.Join('\n', lines);
    }
}

public sealed class ErrnoTestsOnSqlite() : ErrnoTests(TestStore.Sqlite);

public sealed class ErrnoTestsOnPostgres() : ErrnoTests(TestStore.Postgres)
{
    public static string? SkipReason => TestPostgres.SkipReason;
}
