using Npgsql;

namespace ParaFS.Mds.Store;

/// <summary>
/// Which of the MDS processes on one PostgreSQL database serves: the one holding a session-level
/// advisory lock (pg_try_advisory_lock) on a connection of its own. PostgreSQL releases the lock
/// when that session ends, so a process that dies (kill -9, a crash, its machine gone: TCP
/// keepalives end the session) hands the lock to the next one that asks. The holder checks its
/// connection every second and, if it is gone, must stop serving: another process may hold the
/// lock by then.
/// </summary>
public sealed class PostgresLeaderLock : IAsyncDisposable
{
    /// <summary>One key per database ("parafs" + 1); advisory locks are scoped to the database.</summary>
    private const long LeaderLockKey = 0x7061726166730001;

    private readonly NpgsqlConnection _connection;
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource<string> _lost = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _watch = Task.CompletedTask;

    private PostgresLeaderLock(NpgsqlConnection connection) => _connection = connection;

    /// <summary>Completes with the reason when this process no longer holds the lock.</summary>
    public Task<string> Lost => _lost.Task;

    /// <summary>
    /// Takes the lock, waiting (polling every <paramref name="poll"/>) while another process
    /// holds it. <paramref name="waiting"/> is called once when this process has to wait.
    /// </summary>
    public static async Task<PostgresLeaderLock> AcquireAsync(PostgresMetadataStore store, TimeSpan poll, Action waiting, CancellationToken cancellationToken)
    {
        var builder = new NpgsqlConnectionStringBuilder(store.DataSource.ConnectionString)
        {
            Pooling = false,
            // Client side: notice a dead server; server side (below): end the session of a dead MDS.
            KeepAlive = 5,
            ApplicationName = "parafs-mds-leader",
        };
        var saidWaiting = false;
        while (true)
        {
            var connection = new NpgsqlConnection(builder.ConnectionString);
            try
            {
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                await using (var keepalive = new NpgsqlCommand("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 5", connection))
                {
                    await keepalive.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }

                while (true)
                {
                    await using var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock({LeaderLockKey})", connection);
                    if (await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true)
                    {
                        var leader = new PostgresLeaderLock(connection);
                        leader._watch = Task.Run(() => leader.WatchAsync(poll), CancellationToken.None);
                        return leader;
                    }

                    if (!saidWaiting)
                    {
                        saidWaiting = true;
                        waiting();
                    }

                    await Task.Delay(poll, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (NpgsqlException) when (!cancellationToken.IsCancellationRequested)
            {
                // The database went away while we waited: try again with a new connection.
                await connection.DisposeAsync().ConfigureAwait(false);
                await Task.Delay(poll, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _watch.ConfigureAwait(false);

        // Closing the session releases the lock: a standby takes over within its poll interval.
        await _connection.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task WatchAsync(TimeSpan poll)
    {
        using var timer = new PeriodicTimer(poll);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
                    timeout.CancelAfter(TimeSpan.FromSeconds(5));
                    await using var command = new NpgsqlCommand(
                        $"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objid = {LeaderLockKey & 0xFFFFFFFF}",
                        _connection);
                    if (await command.ExecuteScalarAsync(timeout.Token).ConfigureAwait(false) is not > 0L)
                    {
                        _lost.TrySetResult("the leader lock is no longer held by this process's database session");
                        return;
                    }
                }
                catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException && !_stopping.IsCancellationRequested)
                {
                    _lost.TrySetResult($"the connection that holds the leader lock failed: {e.Message}");
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
