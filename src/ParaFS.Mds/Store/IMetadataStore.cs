namespace ParaFS.Mds.Store;

/// <summary>
/// Where the MDS keeps its state. Every namespace operation runs as one transaction: it sees a
/// consistent state, and either all its changes are durable when it returns or none are. Two
/// implementations: SQLite (embedded) and PostgreSQL (shared by several MDS processes).
/// </summary>
public interface IMetadataStore : IAsyncDisposable
{
    /// <summary>"sqlite" or "postgres", for logs.</summary>
    string Kind { get; }

    /// <summary>Runs <paramref name="work"/> in a transaction that only reads.</summary>
    Task<T> ReadAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs <paramref name="work"/> in a read-write transaction and commits it durably. An exception
    /// from <paramref name="work"/> rolls everything back. The work may run more than once (a
    /// store retries serialization failures), so it must not have effects outside the transaction.
    /// </summary>
    Task<T> WriteAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default);
}

/// <summary>The operations one transaction offers. Names are exact bytes-as-UTF-8 matches.</summary>
public interface IStoreTransaction
{
    string? GetMeta(string key);

    void SetMeta(string key, string value);

    /// <summary>The next value of a named counter (inode numbers, object ids per target), starting at <paramref name="first"/>.</summary>
    long NextId(string counter, long first = 1);

    /// <summary>The last value <see cref="NextId"/> may have handed out for <paramref name="counter"/> (0 when it never ran).</summary>
    long LastId(string counter);

    InodeRecord? GetInode(long ino);

    void InsertInode(InodeRecord inode);

    void UpdateInode(InodeRecord inode);

    void DeleteInode(long ino);

    long CountInodes();

    /// <summary>Regular files with an inode number above <paramref name="afterIno"/>, in inode order (for migration and drain scans).</summary>
    IReadOnlyList<InodeRecord> ListFiles(long afterIno, int limit);

    /// <summary>Inodes with no name left (nlink 0) kept because a client had them open.</summary>
    IReadOnlyList<long> ListOrphans();

    /// <summary>
    /// Inodes the entries do not bear out, in inode order, at most <paramref name="limit"/>: a
    /// file or link whose nlink is not its number of names; a directory whose nlink is not 2 plus
    /// its subdirectories, that has other than one name (the root: none), or whose parent is not
    /// the directory naming it. An orphan (nlink 0, no name) is fine.
    /// </summary>
    IReadOnlyList<LinkCountFinding> FindLinkCountMismatches(int limit);

    /// <summary>Entries naming an inode that does not exist, or kept in an inode that does not exist or is not a directory; at most <paramref name="limit"/>.</summary>
    IReadOnlyList<BrokenEntry> FindBrokenEntries(int limit);

    /// <summary>Calls <paramref name="visit"/> with (directory, the directory naming it) for every name of every directory.</summary>
    void ForEachDirectoryName(Action<long, long> visit);

    long? LookupEntry(long parent, string name);

    void InsertEntry(long parent, string name, long ino);

    /// <summary>Points an existing name at another inode (rename over it), giving it a new cookie.</summary>
    void ReplaceEntry(long parent, string name, long ino);

    void DeleteEntry(long parent, string name);

    /// <summary>Entries with a cookie above <paramref name="afterCookie"/>, in cookie order. Cookies never repeat within a directory.</summary>
    IReadOnlyList<EntryRecord> ListEntries(long parent, long afterCookie, int limit);

    bool HasEntries(long parent);

    byte[]? GetXattr(long ino, string name);

    void SetXattr(long ino, string name, byte[] value);

    bool RemoveXattr(long ino, string name);

    IReadOnlyList<string> ListXattrs(long ino);

    IReadOnlyList<TargetRecord> ListTargets();

    void UpsertTarget(TargetRecord target);

    void EnqueueObjectDeletion(int targetId, long objectId);

    /// <summary>Queued object deletions with a queue id above <paramref name="afterId"/>, oldest first.</summary>
    IReadOnlyList<ObjectDeletion> ListObjectDeletions(long afterId, int limit);

    void CompleteObjectDeletion(long id);

    /// <summary>The reply last recorded in one slot of a client (see <c>ReplayTag</c>), or null.</summary>
    RecordedReply? FindReply(ulong client, uint slot);

    /// <summary>
    /// Records a call's reply in its client's slot, replacing what the slot held. It runs in the
    /// transaction that makes the call's changes, so the changes and the record commit together.
    /// </summary>
    void RecordReply(ulong client, uint slot, ulong xid, byte[] reply);

    /// <summary>Forgets replies recorded before <paramref name="beforeMs"/> (Unix milliseconds); returns how many went.</summary>
    int ForgetReplies(long beforeMs);
}
