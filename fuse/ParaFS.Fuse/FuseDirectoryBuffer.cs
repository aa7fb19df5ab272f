namespace ParaFS.Fuse;

/// <summary>
/// Filled by ReadDir: Add returns false when the kernel's buffer is full (that entry was not
/// added). Valid only until the ReadDirAsync call that received it completes.
/// </summary>
public abstract class FuseDirectoryBuffer
{
    /// <summary>
    /// Adds a fuse_dirent. <paramref name="type"/> is a DT_* value (the mode's S_IFMT bits &gt;&gt; 12);
    /// <paramref name="nextOffset"/> is the cookie of the entry after this one, never 0.
    /// </summary>
    public abstract bool Add(string name, ulong ino, uint type /* DT_* */, long nextOffset);

    /// <summary>
    /// Adds a fuse_direntplus (READDIRPLUS). When it returns true and <c>entry.NodeId != 0</c>
    /// the kernel counts it as one lookup of that node (a later FORGET gives it back) - except for
    /// "." and "..", which the kernel never counts. The dirent's ino and type come from
    /// <c>entry.Attr</c> (Ino, and Mode's type bits).
    /// </summary>
    public abstract bool AddPlus(string name, FuseEntry entry, long nextOffset); // readdirplus: counts as a lookup when NodeId != 0
}
