using System.Security.Cryptography;
using ParaFS.Common;

namespace ParaFS.PropTests;

/// <summary>What a call returned: its errno and, for calls that return data, a digest of it.</summary>
public sealed record Outcome(Errno Errno, string Data = "")
{
    public static Outcome Ok { get; } = new(Errno.Ok);

    public static Outcome Of(Errno errno) => new(errno);

    public static Outcome Bytes(ReadOnlySpan<byte> bytes) =>
        new(Errno.Ok, $"{bytes.Length} bytes sha256 {Convert.ToHexString(SHA256.HashData(bytes))[..16]}");

    public static Outcome Names(IEnumerable<string> names) => new(Errno.Ok, string.Join(",", names.Order(StringComparer.Ordinal)));
}

/// <summary>One step of a test: applied to the model for the expected outcome, run against the system for the actual one.</summary>
public abstract record Op
{
    public virtual bool Applicable(Model model) => true;

    public abstract (Model Next, Outcome Expected) Apply(Model model);

    public abstract Task<Outcome> RunAsync(ISystemUnderTest sut, Model before);

    protected static byte[] Data(int seed, int length)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}

public sealed record CreateOp(string Path, bool Exclusive, int StripeSize, int StripeCount) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        switch (m.At(Path))
        {
            case not null when Exclusive:
                return (m, Outcome.Of(Errno.EEXIST));
            case DirNode:
                return (m, Outcome.Of(Errno.EISDIR));
            case FileNode f:
                return (m with { Handles = m.Handles.Add(m.NextSlot, f.Id), NextSlot = m.NextSlot + 1 }, Outcome.Ok);
        }

        var id = m.NextFileId;
        return (m with
        {
            Entries = m.Entries.Add(Path, new FileNode(id)),
            Files = m.Files.Add(id, FileData.Empty),
            Handles = m.Handles.Add(m.NextSlot, id),
            NextFileId = id + 1,
            NextSlot = m.NextSlot + 1,
        }, Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.CreateAsync(Path, Exclusive, before.NextSlot, before.At(Path) is null ? (StripeSize, StripeCount) : null);
        return Outcome.Ok;
    }
}

public sealed record OpenOp(string Path, bool Truncate) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        return m.At(Path) switch
        {
            null => (m, Outcome.Of(Errno.ENOENT)),
            DirNode => (m, Outcome.Of(Errno.EISDIR)),
            FileNode f => (m with
            {
                Files = Truncate ? m.Files.SetItem(f.Id, m.Files[f.Id] with { Bytes = [] }) : m.Files,
                Handles = m.Handles.Add(m.NextSlot, f.Id),
                NextSlot = m.NextSlot + 1,
            }, Outcome.Ok),
            _ => throw new InvalidOperationException(),
        };
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.OpenAsync(Path, Truncate, before.NextSlot);
        return Outcome.Ok;
    }
}

public sealed record WriteOp(int Handle, long Offset, int Length, int Seed) : Op
{
    public override bool Applicable(Model m) => m.SlotAt(Handle) is not null;

    public override (Model, Outcome) Apply(Model m)
    {
        var id = m.Handles[m.SlotAt(Handle)!.Value];
        var file = m.Files[id];
        return (m.WithFile(id, file with { Bytes = Model.WriteAt(file.Bytes, Offset, Data(Seed, Length)) }), Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.WriteAsync(before.SlotAt(Handle)!.Value, Offset, Data(Seed, Length));
        return Outcome.Ok;
    }
}

public sealed record ReadOp(int Handle, long Offset, int Length) : Op
{
    public override bool Applicable(Model m) => m.SlotAt(Handle) is not null;

    public override (Model, Outcome) Apply(Model m)
    {
        var bytes = m.Files[m.Handles[m.SlotAt(Handle)!.Value]].Bytes;
        var start = (int)Math.Min(Offset, bytes.Length);
        var end = (int)Math.Min(Offset + Length, bytes.Length);
        return (m, Outcome.Bytes(bytes.AsSpan(start, end - start)));
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before) =>
        Outcome.Bytes(await sut.ReadAsync(before.SlotAt(Handle)!.Value, Offset, Length));
}

public sealed record TruncateOp(string Path, long Size) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        return m.At(Path) switch
        {
            null => (m, Outcome.Of(Errno.ENOENT)),
            DirNode => (m, Outcome.Of(Errno.EISDIR)),
            FileNode f => (m.WithFile(f.Id, m.Files[f.Id] with { Bytes = Model.Resize(m.Files[f.Id].Bytes, Size) }), Outcome.Ok),
            _ => throw new InvalidOperationException(),
        };
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.TruncateAsync(Path, Size);
        return Outcome.Ok;
    }
}

public sealed record PunchOp(int Handle, long Offset, long Length) : Op
{
    public override bool Applicable(Model m) => m.SlotAt(Handle) is not null;

    public override (Model, Outcome) Apply(Model m)
    {
        var id = m.Handles[m.SlotAt(Handle)!.Value];
        var bytes = m.Files[id].Bytes.ToArray();
        var end = Math.Min(Offset + Length, bytes.Length);
        if (Offset < end)
        {
            Array.Clear(bytes, (int)Offset, (int)(end - Offset));
        }

        return (m.WithFile(id, m.Files[id] with { Bytes = [.. bytes] }), Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.PunchAsync(before.SlotAt(Handle)!.Value, Offset, Length);
        return Outcome.Ok;
    }
}

/// <summary>
/// lseek SEEK_DATA or SEEK_HOLE. Where a backend keeps data and holes depends on how it allocates
/// (4 KiB blocks, 128 KiB chunks, bytes written as zeros), so the answer is not compared with one
/// exact offset: it must be sound for the model's bytes. SEEK_DATA may not skip a byte that is not
/// zero and must land before the end (ENXIO only where nothing but zeros is left); SEEK_HOLE must
/// land on a zero byte or at the end. Past the end both are ENXIO.
/// </summary>
public sealed record SeekOp(int Handle, long Offset, bool Hole) : Op
{
    public override bool Applicable(Model m) => m.SlotAt(Handle) is not null;

    public override (Model, Outcome) Apply(Model m) =>
        (m, Offset >= m.Files[m.Handles[m.SlotAt(Handle)!.Value]].Bytes.Length ? Outcome.Of(Errno.ENXIO) : Outcome.Ok);

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        var bytes = before.Files[before.Handles[before.SlotAt(Handle)!.Value]].Bytes;
        var size = bytes.Length;
        long found;
        try
        {
            found = await sut.SeekAsync(before.SlotAt(Handle)!.Value, Offset, Hole);
        }
        catch (ParaFsException e) when (e.Errno == Errno.ENXIO && !Hole && Offset < size)
        {
            var skipped = bytes.AsSpan()[(int)Offset..].IndexOfAnyExcept((byte)0);
            return skipped < 0 ? Outcome.Ok : Wrong($"ENXIO, but byte {Offset + skipped} is not zero");
        }

        if (found < Offset || found > size || (!Hole && found == size))
        {
            return Wrong($"{found}, outside [{Offset}, {size}{(Hole ? "]" : ")")}");
        }

        if (Hole)
        {
            return found == size || bytes[(int)found] == 0 ? Outcome.Ok : Wrong($"{found}, where the byte is {bytes[(int)found]}");
        }

        var nonZero = bytes.AsSpan()[(int)Offset..(int)found].IndexOfAnyExcept((byte)0);
        return nonZero < 0 ? Outcome.Ok : Wrong($"{found}, past data at {Offset + nonZero}");
    }

    private Outcome Wrong(string answer) => new(Errno.Ok, $"{(Hole ? "SEEK_HOLE" : "SEEK_DATA")} at {Offset} answered {answer}");
}

public sealed record FsyncOp(int Handle) : Op
{
    public override bool Applicable(Model m) => m.SlotAt(Handle) is not null;

    public override (Model, Outcome) Apply(Model m) => (m, Outcome.Ok);

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.FsyncAsync(before.SlotAt(Handle)!.Value);
        return Outcome.Ok;
    }
}

public sealed record CloseOp(int Handle) : Op
{
    public override bool Applicable(Model m) => m.SlotAt(Handle) is not null;

    public override (Model, Outcome) Apply(Model m)
    {
        var slot = m.SlotAt(Handle)!.Value;
        var id = m.Handles[slot];
        return ((m with { Handles = m.Handles.Remove(slot) }).Collect(id), Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.CloseAsync(before.SlotAt(Handle)!.Value);
        return Outcome.Ok;
    }
}

public sealed record UnlinkOp(string Path) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        return m.At(Path) switch
        {
            null => (m, Outcome.Of(Errno.ENOENT)),
            DirNode => (m, Outcome.Of(Errno.EISDIR)),
            FileNode f => ((m with { Entries = m.Entries.Remove(Path) }).WithFile(f.Id, m.Files[f.Id] with { Nlink = m.Files[f.Id].Nlink - 1 }).Collect(f.Id), Outcome.Ok),
            _ => throw new InvalidOperationException(),
        };
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.UnlinkAsync(Path);
        return Outcome.Ok;
    }
}

public sealed record MkdirOp(string Path) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        return m.At(Path) is not null ? (m, Outcome.Of(Errno.EEXIST)) : (m with { Entries = m.Entries.Add(Path, new DirNode()) }, Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.MkdirAsync(Path);
        return Outcome.Ok;
    }
}

public sealed record RmdirOp(string Path) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        return m.At(Path) switch
        {
            null => (m, Outcome.Of(Errno.ENOENT)),
            FileNode => (m, Outcome.Of(Errno.ENOTDIR)),
            _ when m.Children(Path).Any() => (m, Outcome.Of(Errno.ENOTEMPTY)),
            _ => (m with { Entries = m.Entries.Remove(Path) }, Outcome.Ok),
        };
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.RmdirAsync(Path);
        return Outcome.Ok;
    }
}

public sealed record ReaddirOp(string Path) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (Path.Length > 0 && m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        return m.At(Path) switch
        {
            null => (m, Outcome.Of(Errno.ENOENT)),
            FileNode => (m, Outcome.Of(Errno.ENOTDIR)),
            _ => (m, Outcome.Names(m.Children(Path).Select(p => p[(p.LastIndexOf('/') + 1)..]))),
        };
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before) => Outcome.Names(await sut.ReaddirAsync(Path));
}

/// <summary>rename(2) with the POSIX rules, in the order Linux checks them.</summary>
public sealed record RenameOp(string From, string To) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(From) is var e1 && e1 != Errno.Ok)
        {
            return (m, Outcome.Of(e1));
        }

        if (m.CheckParent(To) is var e2 && e2 != Errno.Ok)
        {
            return (m, Outcome.Of(e2));
        }

        var source = m.At(From);
        var target = m.At(To);
        if (source is null)
        {
            return (m, Outcome.Of(Errno.ENOENT));
        }

        if (From == To || (source is FileNode s && target is FileNode t && s.Id == t.Id))
        {
            return (m, Outcome.Ok);
        }

        if (source is DirNode && (To.StartsWith(From + "/", StringComparison.Ordinal)))
        {
            return (m, Outcome.Of(Errno.EINVAL));
        }

        // Linux (do_renameat2): a target that is an ancestor of the source is ENOTEMPTY.
        if (From.StartsWith(To + "/", StringComparison.Ordinal))
        {
            return (m, Outcome.Of(Errno.ENOTEMPTY));
        }

        switch (source, target)
        {
            case (DirNode, FileNode):
                return (m, Outcome.Of(Errno.ENOTDIR));
            case (FileNode, DirNode):
                return (m, Outcome.Of(Errno.EISDIR));
            case (DirNode, DirNode) when m.Children(To).Any():
                return (m, Outcome.Of(Errno.ENOTEMPTY));
        }

        var next = m;
        if (target is FileNode victim)
        {
            next = next.WithFile(victim.Id, next.Files[victim.Id] with { Nlink = next.Files[victim.Id].Nlink - 1 });
        }

        var entries = next.Entries.Remove(To);
        var moved = entries.Where(kv => kv.Key == From || kv.Key.StartsWith(From + "/", StringComparison.Ordinal)).ToList();
        foreach (var (path, node) in moved)
        {
            entries = entries.Remove(path).SetItem(To + path[From.Length..], node);
        }

        next = next with { Entries = entries };
        return (target is FileNode v ? next.Collect(v.Id) : next, Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.RenameAsync(From, To);
        return Outcome.Ok;
    }
}

public sealed record LinkOp(string From, string To) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(From) is var e1 && e1 != Errno.Ok)
        {
            return (m, Outcome.Of(e1));
        }

        if (m.At(From) is not { } source)
        {
            return (m, Outcome.Of(Errno.ENOENT));
        }

        if (m.CheckParent(To) is var e2 && e2 != Errno.Ok)
        {
            return (m, Outcome.Of(e2));
        }

        if (m.At(To) is not null)
        {
            return (m, Outcome.Of(Errno.EEXIST));
        }

        if (source is DirNode)
        {
            return (m, Outcome.Of(Errno.EPERM));
        }

        var id = ((FileNode)source).Id;
        return ((m with { Entries = m.Entries.Add(To, source) }).WithFile(id, m.Files[id] with { Nlink = m.Files[id].Nlink + 1 }), Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.LinkAsync(From, To);
        return Outcome.Ok;
    }
}

/// <summary>setxattr on a file (directories' xattrs are covered by the MDS tests).</summary>
public sealed record SetXattrOp(string Path, string Name, int Seed, uint Flags) : Op
{
    public override bool Applicable(Model m) => m.At(Path) is FileNode;

    public override (Model, Outcome) Apply(Model m)
    {
        var id = ((FileNode)m.At(Path)!).Id;
        var file = m.Files[id];
        var exists = file.Xattrs.ContainsKey(Name);
        if (exists && Flags == 1)
        {
            return (m, Outcome.Of(Errno.EEXIST));
        }

        if (!exists && Flags == 2)
        {
            return (m, Outcome.Of(Errno.ENODATA));
        }

        return (m.WithFile(id, file with { Xattrs = file.Xattrs.SetItem(Name, [.. Data(Seed, Seed % 100)]) }), Outcome.Ok);
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.SetXattrAsync(Path, Name, Data(Seed, Seed % 100), Flags);
        return Outcome.Ok;
    }
}

public sealed record GetXattrOp(string Path, string Name) : Op
{
    public override bool Applicable(Model m) => m.At(Path) is FileNode;

    public override (Model, Outcome) Apply(Model m) =>
        m.Files[((FileNode)m.At(Path)!).Id].Xattrs.TryGetValue(Name, out var value)
            ? (m, Outcome.Bytes(value.AsSpan()))
            : (m, Outcome.Of(Errno.ENODATA));

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before) => Outcome.Bytes(await sut.GetXattrAsync(Path, Name));
}

/// <summary>kill -9 of a daemon and its restart on the same data: everything acknowledged must still hold.</summary>
public sealed record FaultOp(FaultKind Kind, int Index) : Op
{
    public override (Model, Outcome) Apply(Model m) => (m, Outcome.Ok);

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.FaultAsync(Kind, Index);
        return Outcome.Ok;
    }
}

/// <summary>
/// An online restripe of a file to another stripe size and count: only begun (the file keeps
/// working with a pending layout, written twice, until a later migration or truncate), or finished
/// (copied, verified, cut over). Nothing a caller can see changes: the model stays as it is.
/// </summary>
public sealed record MigrateOp(string Path, int StripeSize, int StripeCount, bool Finish) : Op
{
    public override (Model, Outcome) Apply(Model m)
    {
        if (m.CheckParent(Path) is var e && e != Errno.Ok)
        {
            return (m, Outcome.Of(e));
        }

        return m.At(Path) switch
        {
            null => (m, Outcome.Of(Errno.ENOENT)),
            DirNode => (m, Outcome.Of(Errno.EINVAL)),
            _ => (m, Outcome.Ok),
        };
    }

    public override async Task<Outcome> RunAsync(ISystemUnderTest sut, Model before)
    {
        await sut.MigrateAsync(Path, StripeSize, StripeCount, Finish);
        return Outcome.Ok;
    }
}
