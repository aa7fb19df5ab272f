using System.Data.Common;
using Google.Protobuf;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Store;

/// <summary>
/// The statements both stores share: the same tables, the same SQL (numbered parameters, $1..$n,
/// which SQLite and PostgreSQL both read). A store supplies how a statement runs, how a null of a
/// typed column is sent, and its counters (a SQLite table, PostgreSQL sequences).
/// </summary>
internal abstract class SqlTransaction : IStoreTransaction
{
    public string? GetMeta(string key) => Scalar("SELECT value FROM meta WHERE key = $1", key) as string;

    public void SetMeta(string key, string value) =>
        Run("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value);

    public abstract long NextId(string counter, long first = 1);

    public abstract long LastId(string counter);

    public InodeRecord? GetInode(long ino)
    {
        using var reader = Query($"SELECT {StoreRows.InodeColumns} FROM inodes WHERE ino = $1", ino);
        return reader.Read() ? StoreRows.Inode(reader) : null;
    }

    public IReadOnlyList<InodeRecord> ListFiles(long afterIno, int limit) =>
        StoreRows.All(Query($"SELECT {StoreRows.InodeColumns} FROM inodes WHERE ino > $1 AND type = $2 ORDER BY ino LIMIT $3", afterIno, (int)FileType.Regular, (long)limit), StoreRows.Inode);

    public void InsertInode(InodeRecord inode) => Run(
        "INSERT INTO inodes (ino, type, mode, nlink, uid, gid, size, atime_ns, mtime_ns, ctime_ns, crtime_ns, rdev, parent, symlink, layout, policy) " +
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        InodeValues(inode));

    public void UpdateInode(InodeRecord inode) => Run(
        "UPDATE inodes SET type = $2, mode = $3, nlink = $4, uid = $5, gid = $6, size = $7, atime_ns = $8, mtime_ns = $9, ctime_ns = $10, " +
        "crtime_ns = $11, rdev = $12, parent = $13, symlink = $14, layout = $15, policy = $16 WHERE ino = $1",
        InodeValues(inode));

    public void DeleteInode(long ino)
    {
        Run("DELETE FROM inodes WHERE ino = $1", ino);
        Run("DELETE FROM xattrs WHERE ino = $1", ino);
    }

    public long CountInodes() => (long)Scalar("SELECT count(*) FROM inodes")!;

    public IReadOnlyList<long> ListOrphans() => StoreRows.All(Query("SELECT ino FROM inodes WHERE nlink = 0"), static r => r.GetInt64(0));

    public IReadOnlyList<LinkCountFinding> FindLinkCountMismatches(int limit) => StoreRows.All(
        Query(
            """
            SELECT i.ino, i.type, i.nlink, COALESCE(n.names, 0), COALESCE(s.subdirs, 0), i.parent, n.named_in
            FROM inodes i
            LEFT JOIN (SELECT ino, count(*) AS names, min(parent) AS named_in FROM entries GROUP BY ino) n ON n.ino = i.ino
            LEFT JOIN (SELECT e.parent AS dir, count(*) AS subdirs FROM entries e JOIN inodes c ON c.ino = e.ino WHERE c.type = $1 GROUP BY e.parent) s ON s.dir = i.ino
            WHERE (i.type <> $1 AND i.nlink <> COALESCE(n.names, 0))
               OR (i.type = $1 AND (i.nlink > 0 OR COALESCE(n.names, 0) > 0) AND (
                    i.nlink <> 2 + COALESCE(s.subdirs, 0)
                    OR COALESCE(n.names, 0) <> (CASE WHEN i.ino = $2 THEN 0 ELSE 1 END)
                    OR (i.ino <> $2 AND n.named_in <> i.parent)))
            ORDER BY i.ino LIMIT $3
            """,
            (int)FileType.Directory, Namespace.MdsNamespace.RootIno, (long)limit),
        static r => new LinkCountFinding(r.GetInt64(0), (FileType)r.GetInt32(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.IsDBNull(6) ? null : r.GetInt64(6)));

    public IReadOnlyList<BrokenEntry> FindBrokenEntries(int limit) => StoreRows.All(
        Query(
            """
            SELECT e.parent, e.name, e.ino, CASE WHEN i.ino IS NULL THEN 1 ELSE 0 END, CASE WHEN p.ino IS NULL OR p.type <> $1 THEN 1 ELSE 0 END
            FROM entries e LEFT JOIN inodes i ON i.ino = e.ino LEFT JOIN inodes p ON p.ino = e.parent
            WHERE i.ino IS NULL OR p.ino IS NULL OR p.type <> $1
            ORDER BY e.parent, e.name LIMIT $2
            """,
            (int)FileType.Directory, (long)limit),
        static r => new BrokenEntry(r.GetInt64(0), r.GetString(1), r.GetInt64(2), r.GetInt32(3) == 1, r.GetInt32(4) == 1));

    public void ForEachDirectoryName(Action<long, long> visit)
    {
        using var reader = Query("SELECT e.ino, e.parent FROM entries e JOIN inodes i ON i.ino = e.ino WHERE i.type = $1", (int)FileType.Directory);
        while (reader.Read())
        {
            visit(reader.GetInt64(0), reader.GetInt64(1));
        }
    }

    public long? LookupEntry(long parent, string name) => Scalar("SELECT ino FROM entries WHERE parent = $1 AND name = $2", parent, name) as long?;

    public void InsertEntry(long parent, string name, long ino) =>
        Run("INSERT INTO entries (parent, name, ino) VALUES ($1, $2, $3)", parent, name, ino);

    public void ReplaceEntry(long parent, string name, long ino)
    {
        DeleteEntry(parent, name);
        InsertEntry(parent, name, ino);
    }

    public void DeleteEntry(long parent, string name) => Run("DELETE FROM entries WHERE parent = $1 AND name = $2", parent, name);

    public IReadOnlyList<EntryRecord> ListEntries(long parent, long afterCookie, int limit) => StoreRows.All(
        Query(
            "SELECT e.name, e.ino, i.type, e.cookie FROM entries e JOIN inodes i ON i.ino = e.ino " +
            "WHERE e.parent = $1 AND e.cookie > $2 ORDER BY e.cookie LIMIT $3", parent, afterCookie, (long)limit),
        StoreRows.Entry);

    public bool HasEntries(long parent) => Scalar("SELECT 1 FROM entries WHERE parent = $1 LIMIT 1", parent) is not null;

    public byte[]? GetXattr(long ino, string name) => Scalar("SELECT value FROM xattrs WHERE ino = $1 AND name = $2", ino, name) as byte[];

    public void SetXattr(long ino, string name, byte[] value) =>
        Run("INSERT INTO xattrs (ino, name, value) VALUES ($1, $2, $3) ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value", ino, name, value);

    public bool RemoveXattr(long ino, string name) => Run("DELETE FROM xattrs WHERE ino = $1 AND name = $2", ino, name) > 0;

    public IReadOnlyList<string> ListXattrs(long ino) =>
        StoreRows.All(Query("SELECT name FROM xattrs WHERE ino = $1 ORDER BY name", ino), static r => r.GetString(0));

    public IReadOnlyList<TargetRecord> ListTargets() =>
        StoreRows.All(Query($"SELECT {StoreRows.TargetColumns} FROM targets ORDER BY id"), StoreRows.Target);

    public void UpsertTarget(TargetRecord target) => Run(
        "INSERT INTO targets (id, pool, address, backend, state, capacity, free, objects, registered_ms, last_heartbeat_ms) " +
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO UPDATE SET pool = excluded.pool, address = excluded.address, " +
        "backend = excluded.backend, state = excluded.state, capacity = excluded.capacity, free = excluded.free, objects = excluded.objects, " +
        "registered_ms = excluded.registered_ms, last_heartbeat_ms = excluded.last_heartbeat_ms",
        target.Id, target.Pool, target.Address, target.Backend, (int)target.State, target.CapacityBytes, target.FreeBytes, target.Objects,
        target.RegisteredMs, target.LastHeartbeatMs);

    public void EnqueueObjectDeletion(int targetId, long objectId) =>
        Run("INSERT INTO object_deletions (target, object) VALUES ($1, $2)", targetId, objectId);

    public IReadOnlyList<ObjectDeletion> ListObjectDeletions(long afterId, int limit) =>
        StoreRows.All(Query("SELECT id, target, object FROM object_deletions WHERE id > $1 ORDER BY id LIMIT $2", afterId, (long)limit), StoreRows.Deletion);

    public void CompleteObjectDeletion(long id) => Run("DELETE FROM object_deletions WHERE id = $1", id);

    public RecordedReply? FindReply(ulong client, uint slot)
    {
        using var reader = Query("SELECT xid, reply FROM replies WHERE client = $1 AND slot = $2", unchecked((long)client), (long)slot);
        return reader.Read() ? new RecordedReply(unchecked((ulong)reader.GetInt64(0)), reader.GetFieldValue<byte[]>(1)) : null;
    }

    public void RecordReply(ulong client, uint slot, ulong xid, byte[] reply) => Run(
        "INSERT INTO replies (client, slot, xid, reply, saved_ms) VALUES ($1, $2, $3, $4, $5) " +
        "ON CONFLICT (client, slot) DO UPDATE SET xid = excluded.xid, reply = excluded.reply, saved_ms = excluded.saved_ms",
        unchecked((long)client), (long)slot, unchecked((long)xid), reply, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    public int ForgetReplies(long beforeMs) => Run("DELETE FROM replies WHERE saved_ms < $1", beforeMs);

    /// <summary>Runs a statement; returns the rows it changed.</summary>
    protected abstract int Run(string sql, params object[] values);

    /// <summary>The first column of the first row, or null (none, or SQL NULL).</summary>
    protected abstract object? Scalar(string sql, params object[] values);

    /// <summary>The rows of a query; the caller disposes the reader.</summary>
    protected abstract DbDataReader Query(string sql, params object[] values);

    /// <summary>A text value that may be null, as this store's driver must be given it.</summary>
    protected abstract object NullableText(string? value);

    /// <summary>A byte-string value that may be null, as this store's driver must be given it.</summary>
    protected abstract object NullableBytes(byte[]? value);

    private object[] InodeValues(InodeRecord i) =>
    [
        i.Ino, (int)i.Type, (long)i.Mode, (long)i.Nlink, (long)i.Uid, (long)i.Gid, i.Size, i.AtimeNs, i.MtimeNs, i.CtimeNs, i.CrtimeNs,
        i.Rdev, i.Parent, NullableText(i.SymlinkTarget), NullableBytes(i.Layout?.ToByteArray()), NullableBytes(i.Policy?.ToByteArray()),
    ];
}
