using Google.Protobuf;
using Microsoft.Data.Sqlite;
using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Store;

/// <summary>
/// The embedded store: one SQLite database in WAL mode with synchronous=FULL, so a committed
/// transaction is on disk before the MDS replies. Writers are serialized (SQLite has one writer);
/// readers use their own connection and see the last committed state.
/// </summary>
public sealed class SqliteMetadataStore : IMetadataStore
{
    /// <summary>Schema versions in order; a new version appends its statements and never edits old ones.</summary>
    private static readonly string[][] Migrations =
    [
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            """
            CREATE TABLE inodes (
                ino INTEGER PRIMARY KEY, type INTEGER NOT NULL, mode INTEGER NOT NULL, nlink INTEGER NOT NULL,
                uid INTEGER NOT NULL, gid INTEGER NOT NULL, size INTEGER NOT NULL,
                atime_ns INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, crtime_ns INTEGER NOT NULL,
                rdev INTEGER NOT NULL, parent INTEGER NOT NULL, symlink TEXT, layout BLOB, policy BLOB)
            """,
            "CREATE INDEX inodes_orphans ON inodes (nlink) WHERE nlink = 0",
            """
            CREATE TABLE entries (
                cookie INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER NOT NULL, name TEXT NOT NULL, ino INTEGER NOT NULL,
                UNIQUE (parent, name))
            """,
            "CREATE INDEX entries_by_parent_cookie ON entries (parent, cookie)",
            "CREATE TABLE xattrs (ino INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ino, name))",
            """
            CREATE TABLE targets (
                id INTEGER PRIMARY KEY, pool TEXT NOT NULL, address TEXT NOT NULL, backend TEXT NOT NULL, state INTEGER NOT NULL,
                capacity INTEGER NOT NULL, free INTEGER NOT NULL, objects INTEGER NOT NULL,
                registered_ms INTEGER NOT NULL, last_heartbeat_ms INTEGER NOT NULL)
            """,
            "CREATE TABLE object_deletions (id INTEGER PRIMARY KEY AUTOINCREMENT, target INTEGER NOT NULL, object INTEGER NOT NULL)",
        ],
        [
            // 2: the reply of each client's last call per slot, so that a retried call is answered, not run twice.
            "CREATE TABLE replies (client INTEGER NOT NULL, slot INTEGER NOT NULL, xid INTEGER NOT NULL, reply BLOB NOT NULL, saved_ms INTEGER NOT NULL, PRIMARY KEY (client, slot))",
        ],
    ];

    private readonly SqliteConnection _writer;
    private readonly SqliteConnection _reader;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly SemaphoreSlim _readLock = new(1, 1);
    private readonly Transaction _writeTx;
    private readonly Transaction _readTx;

    private SqliteMetadataStore(SqliteConnection writer, SqliteConnection reader, string path)
    {
        _writer = writer;
        _reader = reader;
        Path = path;
        _writeTx = new Transaction(writer);
        _readTx = new Transaction(reader);
    }

    public string Kind => "sqlite";

    public string Path { get; }

    public static int SchemaVersion => Migrations.Length;

    /// <summary>Opens (creating if needed) the database at <paramref name="path"/> and brings its schema up to date.</summary>
    public static SqliteMetadataStore Open(string path)
    {
        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false };
        var writer = new SqliteConnection(builder.ToString());
        var reader = new SqliteConnection(builder.ToString());
        try
        {
            writer.Open();
            Exec(writer, "PRAGMA journal_mode=WAL");
            Exec(writer, "PRAGMA synchronous=FULL");
            Exec(writer, "PRAGMA busy_timeout=10000");
            Migrate(writer, path);
            reader.Open();
            Exec(reader, "PRAGMA busy_timeout=10000");
        }
        catch (SqliteException e)
        {
            writer.Dispose();
            reader.Dispose();
            throw new StartupException($"cannot open the metadata database {path}: {e.Message}", e);
        }

        return new SqliteMetadataStore(writer, reader, path);
    }

    public async Task<T> ReadAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
    {
        await _readLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var tx = _reader.BeginTransaction(deferred: true);
            _readTx.Current = tx;
            try
            {
                return work(_readTx);
            }
            finally
            {
                _readTx.Current = null;
            }
        }
        finally
        {
            _readLock.Release();
        }
    }

    public async Task<T> WriteAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var tx = _writer.BeginTransaction();
            _writeTx.Current = tx;
            try
            {
                var result = work(_writeTx);
                tx.Commit();
                return result;
            }
            finally
            {
                _writeTx.Current = null;
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public ValueTask DisposeAsync()
    {
        _writeTx.Dispose();
        _readTx.Dispose();
        _writer.Dispose();
        _reader.Dispose();
        _writeLock.Dispose();
        _readLock.Dispose();
        return ValueTask.CompletedTask;
    }

    private static void Exec(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static void Migrate(SqliteConnection connection, string path)
    {
        using var read = connection.CreateCommand();
        read.CommandText = "PRAGMA user_version";
        var version = Convert.ToInt32(read.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        if (version > Migrations.Length)
        {
            throw new StartupException(
                $"the metadata database {path} has schema version {version}, newer than this parafs understands ({Migrations.Length}); run a newer parafs");
        }

        for (var v = version; v < Migrations.Length; v++)
        {
            using var tx = connection.BeginTransaction();
            foreach (var statement in Migrations[v])
            {
                using var command = connection.CreateCommand();
                command.Transaction = tx;
                command.CommandText = statement;
                command.ExecuteNonQuery();
            }

            using (var bump = connection.CreateCommand())
            {
                bump.Transaction = tx;
                bump.CommandText = $"PRAGMA user_version = {v + 1}";
                bump.ExecuteNonQuery();
            }

            tx.Commit();
        }
    }

    /// <summary>The statements of one connection, prepared once and reused.</summary>
    private sealed class Transaction(SqliteConnection connection) : IStoreTransaction, IDisposable
    {
        private readonly Dictionary<string, SqliteCommand> _commands = [];

        public SqliteTransaction? Current { get; set; }

        public void Dispose()
        {
            foreach (var command in _commands.Values)
            {
                command.Dispose();
            }
        }

        public string? GetMeta(string key) => Scalar("SELECT value FROM meta WHERE key = $a", key) as string;

        public void SetMeta(string key, string value) =>
            Run("INSERT INTO meta (key, value) VALUES ($a, $b) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value);

        public long NextId(string counter, long first = 1)
        {
            Run("INSERT INTO counters (name, value) VALUES ($a, $b) ON CONFLICT (name) DO UPDATE SET value = value + 1", counter, first);
            return (long)Scalar("SELECT value FROM counters WHERE name = $a", counter)!;
        }

        public long LastId(string counter) => Scalar("SELECT value FROM counters WHERE name = $a", counter) is long value ? value : 0;

        public InodeRecord? GetInode(long ino)
        {
            using var reader = Query($"SELECT {StoreRows.InodeColumns} FROM inodes WHERE ino = $a", ino);
            return reader.Read() ? StoreRows.Inode(reader) : null;
        }

        public IReadOnlyList<InodeRecord> ListFiles(long afterIno, int limit)
        {
            return StoreRows.All(Query($"SELECT {StoreRows.InodeColumns} FROM inodes WHERE ino > $a AND type = $b ORDER BY ino LIMIT $c", afterIno, (int)FileType.Regular, limit), StoreRows.Inode);
        }

        public void InsertInode(InodeRecord i) => Run(
            "INSERT INTO inodes (ino, type, mode, nlink, uid, gid, size, atime_ns, mtime_ns, ctime_ns, crtime_ns, rdev, parent, symlink, layout, policy) " +
            "VALUES ($a, $b, $c, $d, $e, $f, $g, $h, $i, $j, $k, $l, $m, $n, $o, $p)",
            InodeValues(i));

        public void UpdateInode(InodeRecord i) => Run(
            "UPDATE inodes SET type = $b, mode = $c, nlink = $d, uid = $e, gid = $f, size = $g, atime_ns = $h, mtime_ns = $i, ctime_ns = $j, " +
            "crtime_ns = $k, rdev = $l, parent = $m, symlink = $n, layout = $o, policy = $p WHERE ino = $a",
            InodeValues(i));

        public void DeleteInode(long ino)
        {
            Run("DELETE FROM inodes WHERE ino = $a", ino);
            Run("DELETE FROM xattrs WHERE ino = $a", ino);
        }

        public long CountInodes() => (long)Scalar("SELECT count(*) FROM inodes")!;

        public IReadOnlyList<long> ListOrphans()
        {
            return StoreRows.All(Query("SELECT ino FROM inodes WHERE nlink = 0"), static r => r.GetInt64(0));
        }

        public long? LookupEntry(long parent, string name) => Scalar("SELECT ino FROM entries WHERE parent = $a AND name = $b", parent, name) as long?;

        public void InsertEntry(long parent, string name, long ino) =>
            Run("INSERT INTO entries (parent, name, ino) VALUES ($a, $b, $c)", parent, name, ino);

        public void ReplaceEntry(long parent, string name, long ino)
        {
            DeleteEntry(parent, name);
            InsertEntry(parent, name, ino);
        }

        public void DeleteEntry(long parent, string name) => Run("DELETE FROM entries WHERE parent = $a AND name = $b", parent, name);

        public IReadOnlyList<EntryRecord> ListEntries(long parent, long afterCookie, int limit)
        {
            return StoreRows.All(Query(
                "SELECT e.name, e.ino, i.type, e.cookie FROM entries e JOIN inodes i ON i.ino = e.ino " +
                "WHERE e.parent = $a AND e.cookie > $b ORDER BY e.cookie LIMIT $c", parent, afterCookie, limit), StoreRows.Entry);
        }

        public bool HasEntries(long parent) => Scalar("SELECT 1 FROM entries WHERE parent = $a LIMIT 1", parent) is not null;

        public byte[]? GetXattr(long ino, string name) => Scalar("SELECT value FROM xattrs WHERE ino = $a AND name = $b", ino, name) as byte[];

        public void SetXattr(long ino, string name, byte[] value) =>
            Run("INSERT INTO xattrs (ino, name, value) VALUES ($a, $b, $c) ON CONFLICT (ino, name) DO UPDATE SET value = excluded.value", ino, name, value);

        public bool RemoveXattr(long ino, string name) => Run("DELETE FROM xattrs WHERE ino = $a AND name = $b", ino, name) > 0;

        public IReadOnlyList<string> ListXattrs(long ino)
        {
            return StoreRows.All(Query("SELECT name FROM xattrs WHERE ino = $a ORDER BY name", ino), static r => r.GetString(0));
        }

        public IReadOnlyList<TargetRecord> ListTargets()
        {
            return StoreRows.All(Query($"SELECT {StoreRows.TargetColumns} FROM targets ORDER BY id"), StoreRows.Target);
        }

        public void UpsertTarget(TargetRecord t) => Run(
            "INSERT INTO targets (id, pool, address, backend, state, capacity, free, objects, registered_ms, last_heartbeat_ms) " +
            "VALUES ($a, $b, $c, $d, $e, $f, $g, $h, $i, $j) ON CONFLICT (id) DO UPDATE SET pool = excluded.pool, address = excluded.address, " +
            "backend = excluded.backend, state = excluded.state, capacity = excluded.capacity, free = excluded.free, objects = excluded.objects, " +
            "registered_ms = excluded.registered_ms, last_heartbeat_ms = excluded.last_heartbeat_ms",
            t.Id, t.Pool, t.Address, t.Backend, (int)t.State, t.CapacityBytes, t.FreeBytes, t.Objects, t.RegisteredMs, t.LastHeartbeatMs);

        public void EnqueueObjectDeletion(int targetId, long objectId) =>
            Run("INSERT INTO object_deletions (target, object) VALUES ($a, $b)", targetId, objectId);

        public IReadOnlyList<ObjectDeletion> ListObjectDeletions(long afterId, int limit)
        {
            return StoreRows.All(Query("SELECT id, target, object FROM object_deletions WHERE id > $a ORDER BY id LIMIT $b", afterId, limit), StoreRows.Deletion);
        }

        public void CompleteObjectDeletion(long id) => Run("DELETE FROM object_deletions WHERE id = $a", id);

        public RecordedReply? FindReply(ulong client, uint slot)
        {
            using var reader = Query("SELECT xid, reply FROM replies WHERE client = $a AND slot = $b", unchecked((long)client), (long)slot);
            return reader.Read() ? new RecordedReply(unchecked((ulong)reader.GetInt64(0)), (byte[])reader.GetValue(1)) : null;
        }

        public void RecordReply(ulong client, uint slot, ulong xid, byte[] reply) => Run(
            "INSERT INTO replies (client, slot, xid, reply, saved_ms) VALUES ($a, $b, $c, $d, $e) " +
            "ON CONFLICT (client, slot) DO UPDATE SET xid = excluded.xid, reply = excluded.reply, saved_ms = excluded.saved_ms",
            unchecked((long)client), (long)slot, unchecked((long)xid), reply, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

        public int ForgetReplies(long beforeMs) => Run("DELETE FROM replies WHERE saved_ms < $a", beforeMs);

        private static object?[] InodeValues(InodeRecord i) =>
        [
            i.Ino, (int)i.Type, (long)i.Mode, (long)i.Nlink, (long)i.Uid, (long)i.Gid, i.Size, i.AtimeNs, i.MtimeNs, i.CtimeNs, i.CrtimeNs,
            i.Rdev, i.Parent, i.SymlinkTarget, i.Layout?.ToByteArray(), i.Policy?.ToByteArray(),
        ];

        private SqliteCommand Prepare(string sql, object?[] values)
        {
            if (!_commands.TryGetValue(sql, out var command))
            {
                command = connection.CreateCommand();
                command.CommandText = sql;
                for (var i = 0; i < values.Length; i++)
                {
                    command.Parameters.Add(new SqliteParameter("$" + (char)('a' + i), null));
                }

                _commands[sql] = command;
            }

            command.Transaction = Current ?? throw new InvalidOperationException("no transaction is open");
            for (var i = 0; i < values.Length; i++)
            {
                command.Parameters[i].Value = values[i] ?? DBNull.Value;
            }

            return command;
        }

        private int Run(string sql, params object?[] values) => Prepare(sql, values).ExecuteNonQuery();

        private object? Scalar(string sql, params object?[] values) => Prepare(sql, values).ExecuteScalar() is var v && v is DBNull ? null : v;

        private SqliteDataReader Query(string sql, params object?[] values) => Prepare(sql, values).ExecuteReader();
    }
}
