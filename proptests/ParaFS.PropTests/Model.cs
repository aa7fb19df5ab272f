using System.Collections.Immutable;
using ParaFS.Common;

namespace ParaFS.PropTests;

/// <summary>A directory entry in the model: a file (by id, shared among hard links) or a directory.</summary>
public abstract record Node;

public sealed record FileNode(int Id) : Node;

public sealed record DirNode : Node;

/// <summary>A file's content and names; it lives while it has a name or an open handle.</summary>
public sealed record FileData(ImmutableArray<byte> Bytes, int Nlink, ImmutableSortedDictionary<string, ImmutableArray<byte>> Xattrs)
{
    public static FileData Empty { get; } = new([], 1, ImmutableSortedDictionary<string, ImmutableArray<byte>>.Empty);
}

/// <summary>
/// An immutable model of a directory tree (paths relative to the case directory, "" is that
/// directory), its files' bytes, link counts and xattrs, and the open handles. Each operation
/// returns the next model and what the call must return (the errno, and the bytes a read gives).
/// </summary>
public sealed record Model(
    ImmutableSortedDictionary<string, Node> Entries,
    ImmutableDictionary<int, FileData> Files,
    ImmutableSortedDictionary<int, int> Handles,
    int NextFileId,
    int NextSlot)
{
    public static Model Empty { get; } = new(
        ImmutableSortedDictionary<string, Node>.Empty.WithComparers(StringComparer.Ordinal),
        ImmutableDictionary<int, FileData>.Empty,
        ImmutableSortedDictionary<int, int>.Empty,
        1,
        1);

    public static string Parent(string path) => path.LastIndexOf('/') is var i && i < 0 ? "" : path[..i];

    public Node? At(string path) => path.Length == 0 ? new DirNode() : Entries.GetValueOrDefault(path);

    /// <summary>
    /// Path resolution of the parent, component by component as the kernel walks it: a missing
    /// component is ENOENT, a file where a directory must be is ENOTDIR.
    /// </summary>
    public Errno CheckParent(string path)
    {
        var parts = Parent(path).Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < parts.Length; i++)
        {
            switch (At(string.Join('/', parts[..(i + 1)])))
            {
                case null:
                    return Errno.ENOENT;
                case FileNode:
                    return Errno.ENOTDIR;
            }
        }

        return Errno.Ok;
    }

    public IEnumerable<string> Children(string dir) =>
        Entries.Keys.Where(p => Parent(p) == dir);

    public int? SlotAt(int choice) => Handles.Count == 0 ? null : Handles.Keys.ElementAt(Math.Abs(choice) % Handles.Count);

    public Model WithFile(int id, FileData data) => this with { Files = Files.SetItem(id, data) };

    /// <summary>Drops a file's data once it has no name and no open handle.</summary>
    public Model Collect(int id) =>
        Files.TryGetValue(id, out var f) && f.Nlink <= 0 && !Handles.Values.Contains(id) ? this with { Files = Files.Remove(id) } : this;

    public static ImmutableArray<byte> Resize(ImmutableArray<byte> bytes, long size)
    {
        if (size <= bytes.Length)
        {
            return bytes[..(int)size];
        }

        var builder = bytes.ToBuilder();
        builder.AddRange(new byte[size - bytes.Length]);
        return builder.ToImmutable();
    }

    public static ImmutableArray<byte> WriteAt(ImmutableArray<byte> bytes, long offset, byte[] data)
    {
        var result = new byte[Math.Max(bytes.Length, offset + data.Length)];
        bytes.CopyTo(result);
        data.CopyTo(result, offset);
        return [.. result];
    }
}
