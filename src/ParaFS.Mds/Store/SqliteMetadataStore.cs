using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using ParaFS.Common;

namespace ParaFS.Mds.Store;

/// <summary>
/// The embedded store: one SQLite database in WAL mode with synchronous=FULL, so a committed
/// transaction is on disk before the MDS replies. Writers are serialized (SQLite has one writer)
/// and those that arrive together share one commit (<see cref="WriteAsync{T}"/>); reads run side
/// by side on connections of their own and see the last committed state.
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

    /// <summary>At most this many transactions share one commit (a bound on the wait of the first).</summary>
    private const int MaxGroup = 64;

    private const string Savepoint = "one_write";

    private readonly SqliteConnection _writer;
    private readonly Transaction _writeTx;
    private readonly List<PendingWrite> _waiting = [];
    private bool _committing;

    /// <summary>
    /// Read transactions run side by side, each on a connection of its own (WAL readers do not
    /// wait for each other or for the writer): one connection would serialize every lookup and
    /// stat of every client behind one lock.
    /// </summary>
    private readonly Reader[] _readers;
    private readonly System.Collections.Concurrent.ConcurrentStack<Reader> _idleReaders;
    private readonly SemaphoreSlim _readerSlots;

    private SqliteMetadataStore(SqliteConnection writer, SqliteConnection[] readers, string path)
    {
        _writer = writer;
        Path = path;
        _writeTx = new Transaction(writer);
        _readers = [.. readers.Select(r => new Reader(r, new Transaction(r)))];
        _idleReaders = new(_readers);
        _readerSlots = new SemaphoreSlim(_readers.Length, _readers.Length);
    }

    /// <summary>How many read transactions may run at once: one per core, at least 2 and at most 8.</summary>
    private static readonly int ReaderCount = Math.Clamp(Environment.ProcessorCount, 2, 8);

    public string Kind => "sqlite";

    public string Path { get; }

    public static int SchemaVersion => Migrations.Length;

    /// <summary>Opens (creating if needed) the database at <paramref name="path"/> and brings its schema up to date.</summary>
    public static SqliteMetadataStore Open(string path)
    {
        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false };
        var writer = new SqliteConnection(builder.ToString());
        var readers = Enumerable.Range(0, ReaderCount).Select(_ => new SqliteConnection(builder.ToString())).ToArray();
        try
        {
            writer.Open();
            Exec(writer, "PRAGMA journal_mode=WAL");
            Exec(writer, "PRAGMA synchronous=FULL");
            Exec(writer, "PRAGMA busy_timeout=10000");
            Migrate(writer, path);
            foreach (var reader in readers)
            {
                reader.Open();
                Exec(reader, "PRAGMA busy_timeout=10000");
            }
        }
        catch (SqliteException e)
        {
            writer.Dispose();
            Array.ForEach(readers, r => r.Dispose());
            throw new StartupException($"cannot open the metadata database {path}: {e.Message}", e);
        }

        return new SqliteMetadataStore(writer, readers, path);
    }

    public async Task<T> ReadAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
    {
        await _readerSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        _idleReaders.TryPop(out var reader);
        try
        {
            using var tx = reader!.Connection.BeginTransaction(deferred: true);
            reader.Tx.Current = tx;
            try
            {
                return work(reader.Tx);
            }
            finally
            {
                reader.Tx.Current = null;
            }
        }
        finally
        {
            _idleReaders.Push(reader!);
            _readerSlots.Release();
        }
    }

    /// <summary>
    /// Group commit: transactions that arrive while one commits wait, then run together, each
    /// inside a savepoint of one SQLite transaction, and are made durable by one commit (one WAL
    /// sync instead of one each; the sync, not the statements, is what a write costs). The first
    /// caller to find no commit running becomes the committer on its own thread and goes on while
    /// work is waiting, so a lone write runs at once with no handoff. A work that throws has its
    /// savepoint rolled back and gets its exception; the others in its group are not touched. A
    /// SQLite error, which may have ended the whole transaction, or a failed commit, rolls the group
    /// back and runs each of its works alone, in a transaction of its own (a work may run more than
    /// once; see <see cref="IMetadataStore.WriteAsync{T}"/>).
    /// </summary>
    public Task<T> WriteAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<T>(cancellationToken);
        }

        var write = new PendingWrite<T>(work, cancellationToken);
        bool commit;
        lock (_waiting)
        {
            _waiting.Add(write);
            commit = !_committing;
            _committing = true;
        }

        if (commit)
        {
            CommitWhileWaiting(inline: true);
        }

        return write.Task;
    }

    /// <summary>The most transactions one commit has made durable together so far (for tests).</summary>
    internal int LargestGroup { get; private set; }

    /// <summary>
    /// Runs and commits the waiting writes, group after group, until none is left. Called
    /// <paramref name="inline"/> by the writer that found no commit running, it commits one group
    /// (its own write is in it) and leaves the rest to a thread-pool thread, so that its caller is
    /// not held by the writes of others.
    /// </summary>
    private void CommitWhileWaiting(bool inline)
    {
        while (true)
        {
            List<PendingWrite> group;
            lock (_waiting)
            {
                if (_waiting.Count == 0)
                {
                    _committing = false;
                    return;
                }

                group = [.. _waiting.Take(MaxGroup)];
                _waiting.RemoveRange(0, group.Count);
            }

            CommitGroup(group);
            if (inline)
            {
                lock (_waiting)
                {
                    if (_waiting.Count == 0)
                    {
                        _committing = false;
                        return;
                    }
                }

                ThreadPool.UnsafeQueueUserWorkItem(static store => store.CommitWhileWaiting(inline: false), this, preferLocal: false);
                return;
            }
        }
    }

    /// <summary>Commits <paramref name="group"/> together, or each of its writes alone when that fails.</summary>
    private void CommitGroup(List<PendingWrite> group)
    {
        group.RemoveAll(w => w.CancelIfRequested());
        if (group.Count == 0)
        {
            return;
        }

        LargestGroup = Math.Max(LargestGroup, group.Count);
        if (!TryCommitGroup(group))
        {
            foreach (var write in group)
            {
                TryCommitGroup([write]);
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="group"/> in one transaction and commits it, then completes each write.
    /// False, with everything rolled back and no write completed, when a group of more than one
    /// met a SQLite error or failed to commit (the caller then runs each alone).
    /// </summary>
    private bool TryCommitGroup(List<PendingWrite> group)
    {
        var outcomes = new Exception?[group.Count];
        SqliteTransaction? tx = null;
        try
        {
            tx = _writer.BeginTransaction();
            _writeTx.Current = tx;
            if (group.Count == 1)
            {
                outcomes[0] = group[0].Run(_writeTx);
            }
            else
            {
                for (var i = 0; i < group.Count; i++)
                {
                    tx.Save(Savepoint);
                    outcomes[i] = group[i].Run(_writeTx);
                    if (outcomes[i] is SqliteException)
                    {
                        // It may have ended the whole transaction: every write of the group runs alone.
                        RollBackQuietly(tx);
                        return false;
                    }

                    if (outcomes[i] is not null)
                    {
                        tx.Rollback(Savepoint);
                    }

                    tx.Release(Savepoint);
                }
            }

            if (outcomes.All(o => o is not null))
            {
                RollBackQuietly(tx);
            }
            else
            {
                tx.Commit();
            }
        }
        catch (Exception e)
        {
            RollBackQuietly(tx);
            if (group.Count > 1)
            {
                return false;
            }

            // Beginning or committing the lone write's transaction failed.
            outcomes[0] = e;
        }
        finally
        {
            _writeTx.Current = null;
            tx?.Dispose();
        }

        for (var i = 0; i < group.Count; i++)
        {
            group[i].Complete(outcomes[i]);
        }

        return true;
    }

    private static void RollBackQuietly(SqliteTransaction? tx)
    {
        try
        {
            tx?.Rollback();
        }
        catch (Exception e) when (e is SqliteException or InvalidOperationException)
        {
            // SQLite already rolled it back (an I/O or full-disk error ends the transaction).
        }
    }

    /// <summary>A reader connection and its prepared statements.</summary>
    private sealed record Reader(SqliteConnection Connection, Transaction Tx);

    /// <summary>A write waiting for its group: its work, run inside the group's transaction, and who waits for it.</summary>
    private abstract class PendingWrite
    {
        /// <summary>Runs the work; its exception, or null when it succeeded.</summary>
        public abstract Exception? Run(IStoreTransaction tx);

        /// <summary>Gives the caller the work's result (once committed) or its exception.</summary>
        public abstract void Complete(Exception? failure);

        /// <summary>Ends a write whose caller gave up before it ran; true if it did.</summary>
        public abstract bool CancelIfRequested();
    }

    private sealed class PendingWrite<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken) : PendingWrite
    {
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T _result = default!;

        public Task<T> Task => _done.Task;

        public override Exception? Run(IStoreTransaction tx)
        {
            try
            {
                _result = work(tx);
                return null;
            }
            catch (Exception e)
            {
                return e;
            }
        }

        public override void Complete(Exception? failure)
        {
            if (failure is null)
            {
                _done.TrySetResult(_result);
            }
            else
            {
                _done.TrySetException(failure);
            }
        }

        public override bool CancelIfRequested() => cancellationToken.IsCancellationRequested && _done.TrySetCanceled(cancellationToken);
    }

    public ValueTask DisposeAsync()
    {
        _writeTx.Dispose();
        _writer.Dispose();
        foreach (var reader in _readers)
        {
            reader.Tx.Dispose();
            reader.Connection.Dispose();
        }

        _readerSlots.Dispose();
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

    /// <summary>The statements of one connection, prepared once and reused; counters are rows of one table.</summary>
    private sealed class Transaction(SqliteConnection connection) : SqlTransaction, IDisposable
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

        public override long NextId(string counter, long first = 1)
        {
            Run("INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = value + 1", counter, first);
            return (long)Scalar("SELECT value FROM counters WHERE name = $1", counter)!;
        }

        public override long LastId(string counter) => Scalar("SELECT value FROM counters WHERE name = $1", counter) is long value ? value : 0;

        protected override int Run(string sql, params object[] values) => Prepare(sql, values).ExecuteNonQuery();

        protected override object? Scalar(string sql, params object[] values) => Prepare(sql, values).ExecuteScalar() is var v && v is DBNull ? null : v;

        protected override DbDataReader Query(string sql, params object[] values) => Prepare(sql, values).ExecuteReader();

        protected override object NullableText(string? value) => (object?)value ?? DBNull.Value;

        protected override object NullableBytes(byte[]? value) => (object?)value ?? DBNull.Value;

        private SqliteCommand Prepare(string sql, object[] values)
        {
            if (!_commands.TryGetValue(sql, out var command))
            {
                command = connection.CreateCommand();
                command.CommandText = sql;
                for (var i = 0; i < values.Length; i++)
                {
                    command.Parameters.Add(new SqliteParameter("$" + (i + 1).ToString(CultureInfo.InvariantCulture), null));
                }

                _commands[sql] = command;
            }

            command.Transaction = Current ?? throw new InvalidOperationException("no transaction is open");
            for (var i = 0; i < values.Length; i++)
            {
                command.Parameters[i].Value = values[i];
            }

            return command;
        }
    }
}
