using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Namespace;

/// <summary>
/// parafs fsck's namespace check, in one store transaction (a consistent view while the file
/// system is in use): link counts against the names that exist, entries that name nothing or sit
/// in something that is not a directory, and directories no path from the root reaches. With
/// repair it sets what the names bear out (link counts, a directory's parent) in the same
/// transaction; it deletes nothing and links nothing anew.
/// </summary>
public static class NamespaceCheck
{
    public static NamespaceCheckReply Run(IStoreTransaction tx, bool repair, int limit)
    {
        var reply = new NamespaceCheckReply { Inodes = (ulong)tx.CountInodes() };
        foreach (var found in tx.FindLinkCountMismatches(limit))
        {
            reply.Problems.Add(Describe(tx, found, repair));
        }

        foreach (var entry in tx.FindBrokenEntries(limit))
        {
            reply.Problems.Add(new NamespaceProblem
            {
                Kind = entry.InodeMissing ? "dangling-entry" : "entry-outside-directory",
                Ino = (ulong)entry.Ino,
                Parent = (ulong)entry.Parent,
                Name = entry.Name,
                Detail = entry.InodeMissing
                    ? $"'{entry.Name}' in directory {entry.Parent} names inode {entry.Ino}, which does not exist"
                    : $"'{entry.Name}' (inode {entry.Ino}) is kept in inode {entry.Parent}, which does not exist or is not a directory",
            });
        }

        var (directories, unreachable) = Unreachable(tx);
        reply.Directories = (ulong)directories;
        foreach (var ino in unreachable.Take(limit))
        {
            reply.Problems.Add(new NamespaceProblem
            {
                Kind = "unreachable",
                Ino = (ulong)ino,
                Detail = $"directory {ino} is not reached from the root: a directory above it has no name, or its names form a loop",
            });
        }

        reply.More = reply.Problems.Count >= limit || unreachable.Count > limit;
        return reply;
    }

    private static NamespaceProblem Describe(IStoreTransaction tx, LinkCountFinding found, bool repair)
    {
        var directory = found.Type == FileType.Directory;
        var root = found.Ino == MdsNamespace.RootIno;
        var expectedNames = root ? 0 : 1;
        var problem = new NamespaceProblem { Ino = (ulong)found.Ino, Parent = (ulong)(found.NamedIn ?? 0) };
        if (!directory)
        {
            problem.Kind = found.Names == 0 ? "no-name" : "link-count";
            problem.Detail = found.Names == 0
                ? $"inode {found.Ino} ({Kind(found.Type)}) has link count {found.Nlink} but no name: nothing reaches it (not repaired; its data stays)"
                : $"inode {found.Ino} ({Kind(found.Type)}) has link count {found.Nlink} but {found.Names} name{(found.Names == 1 ? "" : "s")}";
            if (repair && found.Names > 0)
            {
                problem.Repaired = SetLinks(tx, found.Ino, found.Names, parent: null);
            }

            return problem;
        }

        if (found.Names != expectedNames)
        {
            problem.Kind = found.Names == 0 ? "no-name" : "directory-names";
            problem.Detail = found.Names == 0
                ? $"directory {found.Ino} has no name: nothing reaches it or what it holds (not repaired)"
                : $"directory {found.Ino} has {found.Names} names; a directory has one (not repaired)";
            return problem;
        }

        var links = 2 + found.Subdirectories;
        var parentWrong = !root && found.NamedIn is { } namedIn && namedIn != found.Parent;
        problem.Kind = found.Nlink != links ? "link-count" : "parent";
        problem.Detail = found.Nlink != links
            ? $"directory {found.Ino} has link count {found.Nlink} but {found.Subdirectories} subdirector{(found.Subdirectories == 1 ? "y" : "ies")} (expected {links})"
            : $"directory {found.Ino} is named in directory {found.NamedIn} but records {found.Parent} as its parent";
        if (parentWrong && found.Nlink != links)
        {
            problem.Detail += $"; it is named in directory {found.NamedIn} but records {found.Parent} as its parent";
        }

        if (repair)
        {
            problem.Repaired = SetLinks(tx, found.Ino, links, parentWrong ? found.NamedIn : null);
        }

        return problem;
    }

    private static bool SetLinks(IStoreTransaction tx, long ino, long links, long? parent)
    {
        if (tx.GetInode(ino) is not { } inode || links > uint.MaxValue)
        {
            return false;
        }

        inode.Nlink = (uint)links;
        if (parent is { } p)
        {
            inode.Parent = p;
        }

        tx.UpdateInode(inode);
        return true;
    }

    /// <summary>Directories whose names lead to the root by no path: one walk up from each, remembering what it learned.</summary>
    private static (long Directories, List<long> Unreachable) Unreachable(IStoreTransaction tx)
    {
        var namedIn = new Dictionary<long, long>();
        tx.ForEachDirectoryName((dir, parent) => namedIn.TryAdd(dir, parent));
        var reaches = new Dictionary<long, bool> { [MdsNamespace.RootIno] = true };
        var path = new HashSet<long>();
        var unreachable = new List<long>();
        foreach (var start in namedIn.Keys)
        {
            path.Clear();
            var at = start;
            bool result;
            while (true)
            {
                if (reaches.TryGetValue(at, out result))
                {
                    break;
                }

                if (!path.Add(at) || !namedIn.TryGetValue(at, out var up))
                {
                    // A loop, or a directory without a name (or a name in something that is not a directory).
                    result = false;
                    break;
                }

                at = up;
            }

            foreach (var dir in path)
            {
                reaches[dir] = result;
            }
        }

        foreach (var (dir, ok) in reaches)
        {
            if (!ok && namedIn.ContainsKey(dir))
            {
                unreachable.Add(dir);
            }
        }

        unreachable.Sort();
        return (namedIn.Count + 1, unreachable);
    }

    private static string Kind(FileType type) => type switch
    {
        FileType.Regular => "file",
        FileType.Symlink => "symlink",
        _ => type.ToString().ToLowerInvariant(),
    };
}
