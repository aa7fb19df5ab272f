using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Store;

/// <summary>An inode as the store keeps it. Times are nanoseconds since the Unix epoch.</summary>
public sealed class InodeRecord
{
    public long Ino { get; set; }

    public FileType Type { get; set; }

    /// <summary>Permission bits with setuid, setgid and sticky (07777).</summary>
    public uint Mode { get; set; }

    public uint Nlink { get; set; }

    public uint Uid { get; set; }

    public uint Gid { get; set; }

    public long Size { get; set; }

    public long AtimeNs { get; set; }

    public long MtimeNs { get; set; }

    public long CtimeNs { get; set; }

    public long CrtimeNs { get; set; }

    public long Rdev { get; set; }

    /// <summary>For a directory, the directory holding it (the root is its own parent).</summary>
    public long Parent { get; set; }

    public string? SymlinkTarget { get; set; }

    /// <summary>For a regular file: its stripes.</summary>
    public Layout? Layout { get; set; }

    /// <summary>For a directory: what new files in it get.</summary>
    public LayoutPolicy? Policy { get; set; }

    public InodeRecord Clone() => (InodeRecord)MemberwiseClone();
}

public readonly record struct EntryRecord(string Name, long Ino, FileType Type, long Cookie);

/// <summary>The reply a client's call got, kept in the client's slot so that a retry of the call gets it again.</summary>
public sealed record RecordedReply(ulong Xid, byte[] Reply);

public sealed record TargetRecord
{
    public int Id { get; init; }

    public string Pool { get; init; } = "";

    public string Address { get; init; } = "";

    public string Backend { get; init; } = "";

    public TargetState State { get; init; }

    public long CapacityBytes { get; init; }

    public long FreeBytes { get; init; }

    public long Objects { get; init; }

    public long RegisteredMs { get; init; }

    public long LastHeartbeatMs { get; init; }
}

public readonly record struct ObjectDeletion(long Id, int TargetId, long ObjectId);

/// <summary>
/// An inode whose link count or names the entries do not bear out (parafs fsck): how many names
/// it has, how many subdirectories (directories), and the directory holding its first name.
/// </summary>
public sealed record LinkCountFinding(long Ino, FileType Type, long Nlink, long Names, long Subdirectories, long Parent, long? NamedIn);

/// <summary>An entry naming an inode that does not exist, or kept in something that is not a directory (parafs fsck).</summary>
public sealed record BrokenEntry(long Parent, string Name, long Ino, bool InodeMissing, bool ParentNotDirectory);
