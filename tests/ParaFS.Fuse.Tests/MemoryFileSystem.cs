using System.Text;

namespace ParaFS.Fuse.Tests;

/// <summary>
/// A small in-memory file system for the library's tests: directories, regular files, symlinks,
/// hard links and xattrs under one lock. Methods are virtual so a test can make one slow or failing.
/// It counts lookups the way the kernel does, so tests can check FORGET arithmetic.
/// </summary>
internal class MemoryFileSystem : IFuseFileSystem
{
    public const uint SIfDir = 0x4000;
    public const uint SIfReg = 0x8000;
    public const uint SIfLnk = 0xA000;

    private const int ENOENT = 2;
    private const int EEXIST = 17;
    private const int ENOTDIR = 20;
    private const int EISDIR = 21;
    private const int EINVAL = 22;
    private const int ERANGE = 34;
    private const int ENOTEMPTY = 39;
    private const int ENODATA = 61;
    private const int EOPNOTSUPP = 95;
    private const int ENXIO = 6;

    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, Node> _nodes = [];
    private ulong _nextId = 2;
    private ulong _nextHandle = 1;

    public MemoryFileSystem()
    {
        _nodes[1] = new Node(1, SIfDir | 0x1ED, 0, 0) { Nlink = 2, Children = [] };
    }

    public TimeSpan EntryTimeout { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan AttrTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Open regular files with FOPEN_DIRECT_IO.</summary>
    public bool DirectIo { get; init; }

    public int LargestWrite { get; private set; }

    public bool Destroyed { get; private set; }

    public ulong LookupCount(ulong id)
    {
        lock (_lock)
        {
            return _nodes.TryGetValue(id, out var node) ? node.Lookups : 0;
        }
    }

    /// <summary>Adds a file without the kernel knowing (no lookup counted).</summary>
    public ulong AddFile(ulong parent, string name, byte[] content)
    {
        lock (_lock)
        {
            var node = NewNode(SIfReg | 0x1A4, 0, 0);
            node.Data = [.. content];
            node.Length = content.Length;
            Dir(parent).Children![name] = node.Id;
            return node.Id;
        }
    }

    /// <summary>Removes a directory entry behind the kernel's back; the node stays.</summary>
    public void RemoveEntryBehindKernel(ulong parent, string name)
    {
        lock (_lock)
        {
            Dir(parent).Children!.Remove(name);
        }
    }

    /// <summary>Replaces a file's content behind the kernel's back.</summary>
    public void SetContentBehindKernel(ulong id, byte[] content)
    {
        lock (_lock)
        {
            var node = Get(id);
            node.Data = [.. content];
            node.Length = content.Length;
            node.Mtime = node.Ctime = Now();
        }
    }

    public virtual ValueTask<FuseEntry> LookupAsync(FuseContext context, ulong parent, string name)
    {
        lock (_lock)
        {
            var children = Dir(parent).Children!;
            if (!children.TryGetValue(name, out var id))
            {
                throw new FuseException(ENOENT);
            }

            return ValueTask.FromResult(Counted(Get(id)));
        }
    }

    public virtual void Forget(ulong nodeId, ulong lookups)
    {
        lock (_lock)
        {
            if (_nodes.TryGetValue(nodeId, out var node))
            {
                node.Lookups -= Math.Min(lookups, node.Lookups);
            }
        }
    }

    public virtual ValueTask<(FuseAttr Attr, TimeSpan Timeout)> GetAttrAsync(FuseContext context, ulong nodeId, ulong? fileHandle)
    {
        lock (_lock)
        {
            return ValueTask.FromResult((Get(nodeId).Attr(), AttrTimeout));
        }
    }

    public virtual ValueTask<(FuseAttr Attr, TimeSpan Timeout)> SetAttrAsync(FuseContext context, ulong nodeId, FuseSetAttr changes)
    {
        lock (_lock)
        {
            var node = Get(nodeId);
            if ((changes.Valid & 1) != 0)
            {
                node.Mode = (node.Mode & 0xF000) | (changes.Mode & 0xFFF);
            }

            if ((changes.Valid & 2) != 0)
            {
                node.Uid = changes.Uid;
            }

            if ((changes.Valid & 4) != 0)
            {
                node.Gid = changes.Gid;
            }

            if ((changes.Valid & 8) != 0)
            {
                node.Resize((int)changes.Size);
                node.Mtime = Now();
            }

            if ((changes.Valid & 16) != 0)
            {
                node.Atime = (changes.Valid & 128) != 0 ? Now() : changes.AtimeNs;
            }

            if ((changes.Valid & 32) != 0)
            {
                node.Mtime = (changes.Valid & 256) != 0 ? Now() : changes.MtimeNs;
            }

            node.Ctime = Now();
            return ValueTask.FromResult((node.Attr(), AttrTimeout));
        }
    }

    public virtual ValueTask<string> ReadLinkAsync(FuseContext context, ulong nodeId)
    {
        lock (_lock)
        {
            return ValueTask.FromResult(Get(nodeId).Target ?? throw new FuseException(EINVAL));
        }
    }

    public virtual ValueTask<FuseEntry> MknodAsync(FuseContext context, ulong parent, string name, uint mode, uint rdev, uint umask) =>
        ValueTask.FromResult(Make(context, parent, name, mode, null));

    public virtual ValueTask<FuseEntry> MkdirAsync(FuseContext context, ulong parent, string name, uint mode, uint umask) =>
        ValueTask.FromResult(Make(context, parent, name, SIfDir | (mode & 0xFFF), null));

    public virtual ValueTask<FuseEntry> SymlinkAsync(FuseContext context, ulong parent, string name, string target) =>
        ValueTask.FromResult(Make(context, parent, name, SIfLnk | 0x1FF, target));

    public virtual ValueTask UnlinkAsync(FuseContext context, ulong parent, string name)
    {
        lock (_lock)
        {
            var children = Dir(parent).Children!;
            var node = children.TryGetValue(name, out var id) ? Get(id) : throw new FuseException(ENOENT);
            if (node.Children is not null)
            {
                throw new FuseException(EISDIR);
            }

            children.Remove(name);
            node.Nlink--;
            return ValueTask.CompletedTask;
        }
    }

    public virtual ValueTask RmdirAsync(FuseContext context, ulong parent, string name)
    {
        lock (_lock)
        {
            var directory = Dir(parent);
            var node = directory.Children!.TryGetValue(name, out var id) ? Get(id) : throw new FuseException(ENOENT);
            if (node.Children is null)
            {
                throw new FuseException(ENOTDIR);
            }

            if (node.Children.Count > 0)
            {
                throw new FuseException(ENOTEMPTY);
            }

            directory.Children.Remove(name);
            directory.Nlink--;
            node.Nlink = 0;
            return ValueTask.CompletedTask;
        }
    }

    public virtual ValueTask RenameAsync(FuseContext context, ulong parent, string name, ulong newParent, string newName, uint flags)
    {
        lock (_lock)
        {
            var from = Dir(parent).Children!;
            var to = Dir(newParent).Children!;
            if (!from.TryGetValue(name, out var id))
            {
                throw new FuseException(ENOENT);
            }

            if (to.TryGetValue(newName, out var existing))
            {
                if ((flags & 1) != 0)
                {
                    throw new FuseException(EEXIST);
                }

                if (Get(existing).Children is { Count: > 0 })
                {
                    throw new FuseException(ENOTEMPTY);
                }

                Get(existing).Nlink--;
            }

            from.Remove(name);
            to[newName] = id;
            return ValueTask.CompletedTask;
        }
    }

    public virtual ValueTask<FuseEntry> LinkAsync(FuseContext context, ulong nodeId, ulong newParent, string newName)
    {
        lock (_lock)
        {
            var children = Dir(newParent).Children!;
            if (children.ContainsKey(newName))
            {
                throw new FuseException(EEXIST);
            }

            var node = Get(nodeId);
            node.Nlink++;
            children[newName] = nodeId;
            return ValueTask.FromResult(Counted(node));
        }
    }

    public virtual ValueTask<FuseOpen> OpenAsync(FuseContext context, ulong nodeId, int flags)
    {
        lock (_lock)
        {
            var node = Get(nodeId);
            if ((flags & 0x200) != 0)
            {
                node.Resize(0); // O_TRUNC arrives in OPEN with ATOMIC_O_TRUNC
            }

            return ValueTask.FromResult(new FuseOpen(_nextHandle++, DirectIo));
        }
    }

    public virtual ValueTask<(FuseEntry Entry, FuseOpen Open)> CreateAsync(FuseContext context, ulong parent, string name, uint mode, int flags, uint umask)
    {
        var entry = Make(context, parent, name, SIfReg | (mode & 0xFFF), null);
        lock (_lock)
        {
            return ValueTask.FromResult((entry, new FuseOpen(_nextHandle++, DirectIo)));
        }
    }

    public virtual ValueTask<int> ReadAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, Memory<byte> destination)
    {
        lock (_lock)
        {
            var node = Get(nodeId);
            var count = (int)Math.Clamp(node.Length - offset, 0, destination.Length);
            node.Data.AsSpan((int)Math.Min(offset, node.Length), count).CopyTo(destination.Span);
            return ValueTask.FromResult(count);
        }
    }

    public virtual ValueTask<int> WriteAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, ReadOnlyMemory<byte> data, uint writeFlags)
    {
        lock (_lock)
        {
            var node = Get(nodeId);
            var end = (int)offset + data.Length;
            if (end > node.Length)
            {
                node.Resize(end);
            }

            data.Span.CopyTo(node.Data.AsSpan((int)offset));
            node.Mtime = node.Ctime = Now();
            LargestWrite = Math.Max(LargestWrite, data.Length);
            return ValueTask.FromResult(data.Length);
        }
    }

    public virtual ValueTask FlushAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong lockOwner) => ValueTask.CompletedTask;

    public virtual ValueTask ReleaseAsync(FuseContext context, ulong nodeId, ulong fileHandle, int flags) => ValueTask.CompletedTask;

    public virtual ValueTask FsyncAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly) => ValueTask.CompletedTask;

    public virtual ValueTask<FuseOpen> OpenDirAsync(FuseContext context, ulong nodeId, int flags)
    {
        lock (_lock)
        {
            _ = Dir(nodeId);
            return ValueTask.FromResult(new FuseOpen(_nextHandle++));
        }
    }

    /// <summary>Offsets: 1 after ".", 2 after "..", 3 + i after the i-th child in name order.</summary>
    public virtual ValueTask ReadDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, FuseDirectoryBuffer buffer, bool plus)
    {
        lock (_lock)
        {
            var directory = Dir(nodeId);
            var entries = new List<(string Name, Node Node)> { (".", directory), ("..", directory) };
            entries.AddRange(directory.Children!.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => (c.Key, Get(c.Value))));
            for (var i = (int)offset; i < entries.Count; i++)
            {
                var (name, node) = entries[i];
                var dot = name is "." or "..";
                var added = plus
                    ? buffer.AddPlus(name, dot ? new FuseEntry(0, 0, node.Attr(), default, default) : Entry(node), i + 1)
                    : buffer.Add(name, node.Id, node.Mode >> 12, i + 1);
                if (!added)
                {
                    break;
                }

                if (plus && !dot)
                {
                    node.Lookups++;
                }
            }

            return ValueTask.CompletedTask;
        }
    }

    public virtual ValueTask ReleaseDirAsync(FuseContext context, ulong nodeId, ulong fileHandle) => ValueTask.CompletedTask;

    public virtual ValueTask FsyncDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly) => ValueTask.CompletedTask;

    public virtual ValueTask<FuseStatFs> StatFsAsync(FuseContext context, ulong nodeId) =>
        ValueTask.FromResult(new FuseStatFs(1 << 20, 1 << 19, 1 << 19, 1000, 900, 4096, 255, 4096));

    public virtual ValueTask AccessAsync(FuseContext context, ulong nodeId, int mask) => ValueTask.CompletedTask;

    public virtual ValueTask SetXattrAsync(FuseContext context, ulong nodeId, string name, ReadOnlyMemory<byte> value, int flags)
    {
        lock (_lock)
        {
            Get(nodeId).Xattrs[name] = value.ToArray();
            return ValueTask.CompletedTask;
        }
    }

    public virtual ValueTask<int> GetXattrAsync(FuseContext context, ulong nodeId, string name, Memory<byte> destination)
    {
        lock (_lock)
        {
            var value = Get(nodeId).Xattrs.TryGetValue(name, out var v) ? v : throw new FuseException(ENODATA);
            return ValueTask.FromResult(CopyOut(value, destination));
        }
    }

    public virtual ValueTask<int> ListXattrAsync(FuseContext context, ulong nodeId, Memory<byte> destination)
    {
        lock (_lock)
        {
            var names = Get(nodeId).Xattrs.Keys.SelectMany(k => Encoding.UTF8.GetBytes(k + "\0")).ToArray();
            return ValueTask.FromResult(CopyOut(names, destination));
        }
    }

    public virtual ValueTask RemoveXattrAsync(FuseContext context, ulong nodeId, string name)
    {
        lock (_lock)
        {
            return Get(nodeId).Xattrs.Remove(name) ? ValueTask.CompletedTask : throw new FuseException(ENODATA);
        }
    }

    public virtual ValueTask FallocateAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, long length, int mode)
    {
        if (mode != 0)
        {
            throw new FuseException(EOPNOTSUPP);
        }

        lock (_lock)
        {
            var node = Get(nodeId);
            node.Resize((int)Math.Max(node.Length, offset + length));
            return ValueTask.CompletedTask;
        }
    }

    public virtual ValueTask<long> LseekAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, int whence)
    {
        lock (_lock)
        {
            var length = Get(nodeId).Length;
            return whence switch
            {
                3 => offset < length ? ValueTask.FromResult(offset) : throw new FuseException(ENXIO),
                4 => offset <= length ? ValueTask.FromResult((long)length) : throw new FuseException(ENXIO),
                _ => throw new FuseException(EINVAL),
            };
        }
    }

    public virtual void Destroy() => Destroyed = true;

    private static int CopyOut(byte[] value, Memory<byte> destination)
    {
        if (destination.Length == 0)
        {
            return value.Length;
        }

        if (value.Length > destination.Length)
        {
            throw new FuseException(ERANGE);
        }

        value.CopyTo(destination);
        return value.Length;
    }

    private static long Now() => (DateTimeOffset.UtcNow - DateTimeOffset.UnixEpoch).Ticks * 100;

    private FuseEntry Make(FuseContext context, ulong parent, string name, uint mode, string? target)
    {
        lock (_lock)
        {
            var directory = Dir(parent);
            if (directory.Children!.ContainsKey(name))
            {
                throw new FuseException(EEXIST);
            }

            var node = NewNode(mode, context.Uid, context.Gid);
            node.Target = target;
            if ((mode & 0xF000) == SIfDir)
            {
                node.Children = [];
                node.Nlink = 2;
                directory.Nlink++;
            }

            directory.Children[name] = node.Id;
            return Counted(node);
        }
    }

    private Node NewNode(uint mode, uint uid, uint gid)
    {
        var node = new Node(_nextId++, mode, uid, gid);
        _nodes[node.Id] = node;
        return node;
    }

    private FuseEntry Counted(Node node)
    {
        node.Lookups++;
        return Entry(node);
    }

    private FuseEntry Entry(Node node) => new(node.Id, 1, node.Attr(), EntryTimeout, AttrTimeout);

    private Node Get(ulong id) => _nodes.TryGetValue(id, out var node) ? node : throw new FuseException(ENOENT);

    private Node Dir(ulong id)
    {
        var node = Get(id);
        return node.Children is not null ? node : throw new FuseException(ENOTDIR);
    }

    private sealed class Node(ulong id, uint mode, uint uid, uint gid)
    {
        public ulong Id { get; } = id;

        public uint Mode { get; set; } = mode;

        public uint Uid { get; set; } = uid;

        public uint Gid { get; set; } = gid;

        public uint Nlink { get; set; } = 1;

        public ulong Lookups { get; set; }

        public byte[] Data { get; set; } = [];

        public int Length { get; set; }

        public Dictionary<string, ulong>? Children { get; set; }

        public string? Target { get; set; }

        public Dictionary<string, byte[]> Xattrs { get; } = [];

        public long Atime { get; set; } = Now();

        public long Mtime { get; set; } = Now();

        public long Ctime { get; set; } = Now();

        public void Resize(int length)
        {
            if (length > Data.Length)
            {
                var data = new byte[Math.Max(length, Data.Length * 2)];
                Data.AsSpan(0, Length).CopyTo(data);
                Data = data;
            }
            else if (length < Length)
            {
                Data.AsSpan(length, Length - length).Clear();
            }

            Length = length;
        }

        public FuseAttr Attr()
        {
            var size = Target is not null ? (ulong)Encoding.UTF8.GetByteCount(Target) : Children is not null ? 4096UL : (ulong)Length;
            return new FuseAttr(Id, size, (size + 511) / 512, Atime, Mtime, Ctime, Mode, Nlink, Uid, Gid, 0, 4096);
        }
    }
}
