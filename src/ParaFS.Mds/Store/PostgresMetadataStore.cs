using System.Data;
using System.Data.Common;
using Npgsql;
using ParaFS.Common;

namespace ParaFS.Mds.Store;

/// <summary>
/// The shared store: a PostgreSQL database that several MDS processes can open (one serves, the
/// others wait: <see cref="PostgresLeaderLock"/>). Every write transaction runs SERIALIZABLE, so
/// two namespace operations that read and write the same names behave as if one ran after the
/// other (no lost rename, no duplicate entry); PostgreSQL aborts one of them with a serialization
/// failure (SQLSTATE 40001) or a deadlock (40P01) and it is run again here. Read transactions
/// run REPEATABLE READ (one snapshot). A commit is durable before it returns (synchronous_commit
/// is the server's; the default, on, flushes the WAL).
/// </summary>
public sealed class PostgresMetadataStore : IMetadataStore
{
    /// <summary>Schema versions in order; a new version appends its statements and never edits old ones.</summary>
    private static readonly string[][] Migrations =
    [
        [
            "CREATE TABLE meta (key text COLLATE \"C\" PRIMARY KEY, value text NOT NULL)",
            """
            CREATE TABLE inodes (
                ino bigint PRIMARY KEY, type integer NOT NULL, mode bigint NOT NULL, nlink bigint NOT NULL,
                uid bigint NOT NULL, gid bigint NOT NULL, size bigint NOT NULL,
                atime_ns bigint NOT NULL, mtime_ns bigint NOT NULL, ctime_ns bigint NOT NULL, crtime_ns bigint NOT NULL,
                rdev bigint NOT NULL, parent bigint NOT NULL, symlink text, layout bytea, policy bytea)
            """,
            "CREATE INDEX inodes_orphans ON inodes (nlink) WHERE nlink = 0",
            // Cookies come from an identity column: increasing, never reused, so a readdir cursor never repeats an entry.
            """
            CREATE TABLE entries (
                cookie bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, parent bigint NOT NULL, name text COLLATE "C" NOT NULL,
                ino bigint NOT NULL, UNIQUE (parent, name))
            """,
            "CREATE INDEX entries_by_parent_cookie ON entries (parent, cookie)",
            "CREATE TABLE xattrs (ino bigint NOT NULL, name text COLLATE \"C\" NOT NULL, value bytea NOT NULL, PRIMARY KEY (ino, name))",
            """
            CREATE TABLE targets (
                id integer PRIMARY KEY, pool text NOT NULL, address text NOT NULL, backend text NOT NULL, state integer NOT NULL,
                capacity bigint NOT NULL, free bigint NOT NULL, objects bigint NOT NULL,
                registered_ms bigint NOT NULL, last_heartbeat_ms bigint NOT NULL)
            """,
            "CREATE TABLE object_deletions (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, target integer NOT NULL, object bigint NOT NULL)",
        ],
        [
            // 2: the reply of each client's last call per slot, so that a retried call is answered, not run twice.
            "CREATE TABLE replies (client bigint NOT NULL, slot bigint NOT NULL, xid bigint NOT NULL, reply bytea NOT NULL, saved_ms bigint NOT NULL, PRIMARY KEY (client, slot))",
        ],
        [
            // 3: the leader epoch, the fencing token of the MDS that serves (ClaimLeadershipAsync).
            "CREATE TABLE leader (id integer PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL)",
            "INSERT INTO leader (id, epoch) VALUES (1, 0)",
        ],
    ];

    /// <summary>Serializes schema migrations of two MDS processes starting at once (pg_advisory_xact_lock).</summary>
    private const long MigrationLockKey = 0x7061726166730002;

    private const int MaxAttempts = 64;

    private PostgresMetadataStore(NpgsqlDataSource dataSource, string description)
    {
        DataSource = dataSource;
        Description = description;
    }

    public string Kind => "postgres";

    /// <summary>The server and database, without the password, for logs and errors.</summary>
    public string Description { get; }

    public static int SchemaVersion => Migrations.Length;

    internal NpgsqlDataSource DataSource { get; }

    /// <summary>Serialization failures retried so far (for logs and tests).</summary>
    public long Retries => Interlocked.Read(ref _retries);

    private readonly SemaphoreSlim _retrying = new(1, 1);

    /// <summary>Counter sequences known to exist, so NextId is one statement.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _sequences = new(StringComparer.Ordinal);

    private readonly TaskCompletionSource<string> _deposed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private long _retries;

    /// <summary>The leader epoch this process claimed; 0 before it claims one (a tool, a standby).</summary>
    private long _epoch;

    /// <summary>The leader epoch this process claimed (<see cref="ClaimLeadershipAsync"/>), 0 if none.</summary>
    public long LeaderEpoch => Interlocked.Read(ref _epoch);

    /// <summary>
    /// Completes, with the reason, when a write transaction found that another process has claimed
    /// the store since this one did: this MDS must stop serving at once.
    /// </summary>
    public Task<string> Deposed => _deposed.Task;

    /// <summary>True for <c>--store</c> values that name a PostgreSQL database: a connection string or a postgres:// URL.</summary>
    public static bool IsConnectionString(string store) =>
        store.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
        || store.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase)
        || store.Contains('=', StringComparison.Ordinal);

    /// <summary>
    /// Connects, checks the schema and (with <paramref name="migrate"/>) brings it up to date.
    /// Every way this can fail (server unreachable, wrong credentials, no such database, a newer
    /// schema, a database that holds something else) is one <see cref="StartupException"/>
    /// naming the store and what to do. An MDS opens without migrating, and migrates
    /// (<see cref="MigrateAsync(CancellationToken)"/>) once it holds the leader lock, so a
    /// standby never changes the schema under the MDS that serves.
    /// </summary>
    public static async Task<PostgresMetadataStore> OpenAsync(string store, bool migrate = true, CancellationToken cancellationToken = default)
    {
        var builder = ParseConnectionString(store);
        var description = Describe(builder);
        var dataSource = NpgsqlDataSource.Create(builder);
        try
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await MigrateAsync(connection, description, migrate, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or System.Net.Sockets.SocketException)
        {
            await dataSource.DisposeAsync().ConfigureAwait(false);
            throw new StartupException($"cannot open the metadata store {description}: {Explain(e)}", e);
        }
        catch
        {
            await dataSource.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return new PostgresMetadataStore(dataSource, description);
    }

    /// <summary>A connection string (<c>Host=...;Database=...</c>) or a URL (<c>postgres://user:password@host:port/database?sslmode=require</c>).</summary>
    public static NpgsqlConnectionStringBuilder ParseConnectionString(string store)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = store.Contains("://", StringComparison.Ordinal) ? FromUrl(store) : new NpgsqlConnectionStringBuilder(store);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or UriFormatException)
        {
            throw new StartupException($"the metadata store '{Redact(store)}' is not a PostgreSQL connection string (Host=...;Database=...) or a postgres://user@host:port/database URL: {e.Message}", e);
        }

        if (string.IsNullOrEmpty(builder.Host))
        {
            throw new StartupException($"the metadata store '{Redact(store)}' names no host; write Host=HOST;Database=NAME or postgres://HOST/NAME");
        }

        // Statements repeat for every operation: let Npgsql prepare the common ones.
        if (builder.MaxAutoPrepare == 0)
        {
            builder.MaxAutoPrepare = 64;
        }

        builder.ApplicationName ??= "parafs-mds";

        // The MDS sets no session state, so a pooled connection needs no reset between transactions.
        builder.NoResetOnClose = true;
        return builder;
    }

    public async Task<T> ReadAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await using var tx = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
                var result = work(new Transaction(connection, tx, _sequences));
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                return result;
            }
            catch (PostgresException e) when (IsRetryable(e) && attempt < MaxAttempts)
            {
                await BackOffAsync(attempt, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Makes this process the one writer of the store, the fencing the leader lock alone does not
    /// give: the lock says who should serve, but an MDS that lost it goes on writing until its
    /// one-second check notices, or longer if it is paused. Claiming bumps the leader epoch and
    /// remembers it. Every write transaction of an MDS that has claimed first reads the epoch row
    /// with FOR SHARE, which the bump's UPDATE waits for:
    /// - a write of the old MDS still running waits the bump out, or, if it has not ended within
    ///   <paramref name="grace"/> (its process paused, its machine gone), is ended here
    ///   (pg_terminate_backend; <paramref name="ended"/> hears how many), so it changes nothing;
    /// - a write of the old MDS that starts later finds the new epoch, changes nothing and ends
    ///   with <see cref="LeadershipLostException"/>.
    /// So every write of the old MDS lands before the new MDS reads the store, or not at all.
    /// Called once the leader lock is held and the schema is current.
    /// </summary>
    public async Task<long> ClaimLeadershipAsync(TimeSpan grace, Action<int> ended, CancellationToken cancellationToken = default)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await using var tx = await connection.BeginTransactionAsync(IsolationLevel.Serializable, cancellationToken).ConfigureAwait(false);
                var bump = ScalarAsync(connection, tx, "UPDATE leader SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch", cancellationToken);
                while (await Task.WhenAny(bump, Task.Delay(grace, cancellationToken)).ConfigureAwait(false) != bump)
                {
                    if (cancellationToken.IsCancellationRequested)
                    {
                        // The bump sees the same token: Npgsql cancels it on the server, and it throws.
                        await bump.ConfigureAwait(false);
                    }

                    if (await EndWritersBlockingAsync(connection.ProcessID, cancellationToken).ConfigureAwait(false) is var count and > 0)
                    {
                        ended(count);
                    }
                }

                var epoch = (long)(await bump.ConfigureAwait(false))!;
                await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                Interlocked.Exchange(ref _epoch, epoch);
                return epoch;
            }
            catch (PostgresException e) when (IsRetryable(e) && attempt < MaxAttempts)
            {
                await BackOffAsync(attempt, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Ends the sessions whose locks the backend <paramref name="pid"/> waits for: writes of an MDS that no longer serves.</summary>
    private async Task<int> EndWritersBlockingAsync(int pid, CancellationToken cancellationToken)
    {
        await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("SELECT count(*) FILTER (WHERE pg_terminate_backend(b)) FROM unnest(pg_blocking_pids($1)) AS b", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = pid });
        try
        {
            return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            // Another database user's session: only waiting is left (PostgreSQL ends it when its connection times out).
            return 0;
        }
    }

    /// <summary>
    /// Transactions run concurrently; one that had to be run again runs its next attempts one at
    /// a time with the other retried ones (<see cref="_retrying"/>), so operations that collide
    /// over one hot row (a busy directory's inode) queue up instead of colliding again and again.
    /// </summary>
    public async Task<T> WriteAsync<T>(Func<IStoreTransaction, T> work, CancellationToken cancellationToken = default)
    {
        var gated = false;
        try
        {
            for (var attempt = 1; ; attempt++)
            {
                await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    await using var tx = await connection.BeginTransactionAsync(IsolationLevel.Serializable, cancellationToken).ConfigureAwait(false);
                    var result = work(new Transaction(connection, tx, _sequences, FenceBeforeFirstWrite(LeaderEpoch)));
                    await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
                    return result;
                }
                catch (NpgsqlException e) when (LeaderEpoch != 0 && e is not PostgresException { SqlState: PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.UniqueViolation })
                {
                    // Ended by an MDS that claimed the store (EndWritersBlockingAsync), or a failure
                    // of the server: the epoch tells which.
                    await CheckEpochAsync(e, cancellationToken).ConfigureAwait(false);
                    throw;
                }
                catch (PostgresException e) when (IsRetryable(e) && attempt < MaxAttempts)
                {
                    Interlocked.Increment(ref _retries);
                    if (!gated)
                    {
                        await _retrying.WaitAsync(cancellationToken).ConfigureAwait(false);
                        gated = true;
                    }
                    else
                    {
                        await BackOffAsync(attempt, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
        }
        finally
        {
            if (gated)
            {
                _retrying.Release();
            }
        }
    }

    /// <summary>
    /// What a write transaction runs before its first change once this process has claimed the
    /// store (null before that): reads the epoch row FOR SHARE, which holds it against a claim's
    /// bump until the transaction ends, and throws <see cref="LeadershipLostException"/> if another
    /// MDS claimed since. A transaction that changes nothing (a plain open registering its handle,
    /// a close that finds no orphan to delete) never takes that row lock, so it gets no
    /// transaction id and its commit waits for no WAL flush. Checked at the first change rather
    /// than at BEGIN, the fence still holds: a transaction whose snapshot predates a claim fails
    /// to lock the row the claim updated (a serialization failure, run again) and its next
    /// attempt finds the new epoch.
    /// </summary>
    private Action<long>? FenceBeforeFirstWrite(long mine) => mine == 0 ? null : current => ThrowIfDeposed(current, mine, inner: null);

    /// <summary>After a failed write: reads the epoch on a connection of its own, and throws <see cref="LeadershipLostException"/> if another MDS has claimed the store.</summary>
    private async Task CheckEpochAsync(Exception failure, CancellationToken cancellationToken)
    {
        long current;
        try
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using var command = new NpgsqlCommand("SELECT epoch FROM leader WHERE id = 1", connection);
            current = (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
        catch (NpgsqlException)
        {
            // The server is down, not taken over: the first failure is the one to report.
            return;
        }

        ThrowIfDeposed(current, LeaderEpoch, failure);
    }

    private void ThrowIfDeposed(long current, long mine, Exception? inner)
    {
        if (current == mine)
        {
            return;
        }

        var reason = $"another MDS has claimed the metadata store {Description} since this one did (leader epoch {current}; this MDS served epoch {mine})";
        _deposed.TrySetResult(reason);
        throw inner is null ? new LeadershipLostException(reason) : new LeadershipLostException(reason, inner);
    }

    public ValueTask DisposeAsync()
    {
        _retrying.Dispose();
        return DataSource.DisposeAsync();
    }

    /// <summary>
    /// 40001 serialization_failure and 40P01 deadlock_detected: the transaction did nothing and
    /// can run again. 23505 unique_violation too: under SERIALIZABLE a concurrent insert of the
    /// same name can surface as one, and the rerun then sees the name and answers EEXIST.
    /// </summary>
    private static bool IsRetryable(PostgresException e) =>
        e.SqlState is PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.UniqueViolation;

    private static Task BackOffAsync(int attempt, CancellationToken cancellationToken)
    {
        // Random, growing delays so two operations that collided do not collide again in step.
        var ceiling = Math.Min(50, 1 << Math.Min(attempt, 6));
        return Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.NextDouble() * ceiling), cancellationToken);
    }

    /// <summary>Brings the schema up to date (see <see cref="OpenAsync"/>).</summary>
    public async Task MigrateAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await MigrateAsync(connection, Description, apply: true, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            throw new StartupException($"cannot update the schema of the metadata store {Description}: {Explain(e)}", e);
        }
    }

    private static async Task MigrateAsync(NpgsqlConnection connection, string description, bool apply, CancellationToken cancellationToken)
    {
        await using var tx = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);
        await ExecAsync(connection, tx, $"SELECT pg_advisory_xact_lock({MigrationLockKey})", cancellationToken).ConfigureAwait(false);
        var hasVersionTable = await ScalarAsync(connection, tx, "SELECT to_regclass('parafs_schema') IS NOT NULL", cancellationToken).ConfigureAwait(false) is true;
        var version = 0;
        if (hasVersionTable)
        {
            version = Convert.ToInt32(await ScalarAsync(connection, tx, "SELECT version FROM parafs_schema", cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
        }
        else
        {
            var tables = Convert.ToInt64(await ScalarAsync(connection, tx, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()", cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
            if (tables > 0)
            {
                throw new StartupException(
                    $"the metadata store {description} already holds {tables} tables that are not a ParaFS schema (no parafs_schema table); give parafs an empty database of its own");
            }
        }

        if (version > Migrations.Length)
        {
            throw new StartupException(
                $"the metadata store {description} has schema version {version}, newer than this parafs understands ({Migrations.Length}); run a newer parafs");
        }

        if (!apply)
        {
            return;
        }

        if (!hasVersionTable)
        {
            await ExecAsync(connection, tx, "CREATE TABLE parafs_schema (version integer NOT NULL)", cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, tx, "INSERT INTO parafs_schema (version) VALUES (0)", cancellationToken).ConfigureAwait(false);
        }

        for (var v = version; v < Migrations.Length; v++)
        {
            foreach (var statement in Migrations[v])
            {
                await ExecAsync(connection, tx, statement, cancellationToken).ConfigureAwait(false);
            }

            await ExecAsync(connection, tx, $"UPDATE parafs_schema SET version = {v + 1}", cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ExecAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, tx);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task<object?> ScalarAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection, tx);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>What went wrong, in words a user can act on.</summary>
    private static string Explain(Exception e) => e switch
    {
        PostgresException { SqlState: PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification } p =>
            $"{p.MessageText}; check the user name and password in --store",
        PostgresException { SqlState: PostgresErrorCodes.InvalidCatalogName } p =>
            $"{p.MessageText}; create it first (createdb NAME) or name another database in --store",
        PostgresException p => $"{p.MessageText} (SQLSTATE {p.SqlState})",
        NpgsqlException { InnerException: System.Net.Sockets.SocketException s } => $"the server does not answer ({s.Message}); is PostgreSQL running and listening there?",
        NpgsqlException { InnerException: TimeoutException } => "connecting timed out; is PostgreSQL running and reachable?",
        _ => e.Message,
    };

    private static string Describe(NpgsqlConnectionStringBuilder builder) =>
        $"postgres://{(string.IsNullOrEmpty(builder.Username) ? "" : builder.Username + "@")}{builder.Host}:{builder.Port}/{builder.Database ?? builder.Username ?? ""}";

    /// <summary>The store text with any password cut out, for error messages.</summary>
    private static string Redact(string store) =>
        System.Text.RegularExpressions.Regex.Replace(
            System.Text.RegularExpressions.Regex.Replace(store, "(?i)(password|pwd)\\s*=[^;]*", "$1=***"),
            "://([^:@/]+):[^@/]*@",
            "://$1:***@");

    private static NpgsqlConnectionStringBuilder FromUrl(string url)
    {
        var uri = new Uri(url);
        if (uri.Scheme is not ("postgres" or "postgresql"))
        {
            throw new FormatException($"the URL scheme is {uri.Scheme}, not postgres");
        }

        var builder = new NpgsqlConnectionStringBuilder { Host = uri.Host.Trim('[', ']') };
        if (uri.Port > 0)
        {
            builder.Port = uri.Port;
        }

        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2)
            {
                builder.Password = Uri.UnescapeDataString(parts[1]);
            }
        }

        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            var value = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
            builder[key.Equals("sslmode", StringComparison.OrdinalIgnoreCase) ? "SSL Mode" : key] = value;
        }

        return builder;
    }

    /// <summary>One transaction's statements. Counters are PostgreSQL sequences: never a hot row every create must lock.</summary>
    private sealed class Transaction(
        NpgsqlConnection connection, NpgsqlTransaction tx, System.Collections.Concurrent.ConcurrentDictionary<string, bool> knownSequences,
        Action<long>? checkEpoch = null) : SqlTransaction
    {
        /// <summary>Given the leader epoch, read FOR SHARE, before the transaction's first change; then cleared.</summary>
        private Action<long>? _checkEpoch = checkEpoch;

        /// <summary>
        /// One sequence per counter (created on first use). A sequence hands out each value once
        /// even to transactions that roll back or are retried, so ids may skip but never repeat,
        /// and concurrent creates do not conflict over a counter row.
        /// </summary>
        public override long NextId(string counter, long first = 1)
        {
            var sequence = SequenceName(counter);
            if (!knownSequences.ContainsKey(sequence))
            {
                // Remembered once it is seen committed: a sequence this transaction creates
                // disappears again if the transaction rolls back.
                if (Scalar("SELECT to_regclass($1) IS NOT NULL", sequence) is true)
                {
                    knownSequences.TryAdd(sequence, true);
                }
                else
                {
                    Run($"CREATE SEQUENCE IF NOT EXISTS {sequence} START WITH {first} MINVALUE {Math.Min(first, 1)}");
                }
            }

            return (long)Scalar("SELECT nextval($1::regclass)", sequence)!;
        }

        public override long LastId(string counter)
        {
            var sequence = SequenceName(counter);
            if (Scalar("SELECT to_regclass($1) IS NOT NULL", sequence) is not true)
            {
                return 0;
            }

            // A sequence is not transactional: a value taken by a transaction that rolled back
            // counts too, which is what an upper bound of the ids handed out wants.
            return (long)Scalar($"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {sequence}")!;
        }

        /// <summary>A counter's sequence: its name with everything but ASCII letters and digits as '_'.</summary>
        private static string SequenceName(string counter) =>
            "counter_" + new string(counter.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '_').ToArray());

        protected override int Run(string sql, params object[] values)
        {
            // Every change goes through here (reads use Scalar and Query).
            if (_checkEpoch is { } check)
            {
                _checkEpoch = null;
                check((long)Scalar("SELECT epoch FROM leader WHERE id = 1 FOR SHARE")!);
            }

            using var command = Prepare(sql, values);
            return command.ExecuteNonQuery();
        }

        protected override object? Scalar(string sql, params object[] values)
        {
            using var command = Prepare(sql, values);
            return command.ExecuteScalar() is var v && v is DBNull ? null : v;
        }

        protected override DbDataReader Query(string sql, params object[] values)
        {
            // The reader owns the command's lifetime from here; disposing the reader is enough.
            var command = Prepare(sql, values);
            return command.ExecuteReader(CommandBehavior.Default);
        }

        /// <summary>A null needs its type: PostgreSQL cannot infer one from a NULL parameter.</summary>
        protected override object NullableText(string? value) =>
            new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text, Value = (object?)value ?? DBNull.Value };

        protected override object NullableBytes(byte[]? value) =>
            new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bytea, Value = (object?)value ?? DBNull.Value };

        private NpgsqlCommand Prepare(string sql, object[] values)
        {
            var command = new NpgsqlCommand(sql, connection, tx);
            foreach (var value in values)
            {
                command.Parameters.Add(value as NpgsqlParameter ?? new NpgsqlParameter { Value = value });
            }

            return command;
        }
    }
}
