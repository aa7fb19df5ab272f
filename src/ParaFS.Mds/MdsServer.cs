using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ParaFS.Common;
using ParaFS.Common.Storage;
using ParaFS.Mds.Namespace;
using ParaFS.Mds.Sessions;
using ParaFS.Mds.Store;
using ParaFS.Mds.Targets;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds;

/// <summary>
/// The metadata server: opens (or formats) the store, serves the namespace and target calls over
/// RPC, and runs the background work (heartbeat checks, session leases, object deletion).
/// </summary>
public sealed class MdsServer : IAsyncDisposable
{
    private readonly IMetadataStore _store;
    private readonly ILogger _logger;
    private readonly TargetConnections _targetConnections;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _deletionsPending = new(0);
    private readonly SemaphoreSlim _draining = new(1, 1);
    private readonly MdsOptions _options;
    private Task _background = Task.CompletedTask;
    private Task _reaper = Task.CompletedTask;
    private PostgresLeaderLock? _leader;

    /// <summary>The SQLite data directory's lock: one MDS process on it at a time.</summary>
    private ExclusiveUse? _exclusive;

    private MdsServer(MdsOptions options, IMetadataStore store, string fsId, string fsName, ILoggerFactory loggerFactory)
    {
        _options = options;
        _store = store;
        _logger = loggerFactory.CreateLogger("ParaFS.Mds");
        FileSystemId = fsId;
        FileSystemName = fsName;
        Targets = new TargetRegistry(store, options.HeartbeatInterval, _logger);
        Sessions = new SessionTable(options.SessionLease);
        _targetConnections = new TargetConnections(Targets, () => FileSystemId, loggerFactory);
        Namespace = new MdsNamespace(store, new StripeAllocator(Targets), Sessions, new CallbackNotifier(Sessions, _logger), _targetConnections, () => _deletionsPending.Release());
        var dispatcher = new RpcDispatcher();
        MdsService.Register(dispatcher, this);
        Rpc = new RpcServer(
            new RpcServerOptions { Listen = options.Listen, Role = Protocol.Rpc.PeerRole.Mds, ServerName = "mds", FileSystemId = fsId, FileSystemName = fsName, KeepsReplies = true },
            dispatcher,
            loggerFactory);
        Rpc.ConnectionClosed += Sessions.Detached;
    }

    public string FileSystemId { get; }

    internal MdsOptions Options => _options;

    internal ILogger Logger => _logger;

    public string FileSystemName { get; }

    public MdsNamespace Namespace { get; }

    public TargetRegistry Targets { get; }

    public SessionTable Sessions { get; }

    public RpcServer Rpc { get; }

    public IMetadataStore Store => _store;

    public TimeSpan HeartbeatInterval => _options.HeartbeatInterval;

    public RpcEndpoint Endpoint => Rpc.Endpoint;

    /// <summary>
    /// Completes (with the reason) if this MDS lost the PostgreSQL leader lock, or found that
    /// another MDS has claimed the store (a newer leader epoch): it has stopped
    /// serving, since another MDS may be serving the same database by now. Never completes with SQLite.
    /// </summary>
    public Task<string> Deposed { get; private set; } = new TaskCompletionSource<string>().Task;

    /// <summary>
    /// Opens the store (SQLite under the data directory, or PostgreSQL), formatting a new file
    /// system if it is empty, and starts serving. On PostgreSQL it first waits to be the one MDS
    /// that serves the database (standby until the leader lock is free).
    /// </summary>
    public static async Task<MdsServer> StartAsync(MdsOptions options, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        var logger = loggerFactory.CreateLogger("ParaFS.Mds");
        var (store, where, exclusive) = await OpenStoreAsync(options, cancellationToken).ConfigureAwait(false);
        PostgresLeaderLock? leader = null;
        MdsServer? server = null;
        try
        {
            if (store is PostgresMetadataStore postgres)
            {
                leader = await PostgresLeaderLock.AcquireAsync(postgres, options.LeaderPoll, () => Log.Standby(logger, where, options.Listen.Text), cancellationToken).ConfigureAwait(false);
                await postgres.MigrateAsync(cancellationToken).ConfigureAwait(false);
                var epoch = await postgres.ClaimLeadershipAsync(options.LeaderPoll, ended => Log.EndedOldWrites(logger, where, ended), cancellationToken).ConfigureAwait(false);
                Log.Leader(logger, where, epoch);
            }

            var (fsId, fsName, formatted) = await FormatOrCheckAsync(store, options, where, cancellationToken).ConfigureAwait(false);
            if (formatted)
            {
                Log.Formatted(logger, fsName, fsId, where);
            }

            server = new MdsServer(options, options.WrapStore?.Invoke(store) ?? store, fsId, fsName, loggerFactory) { _leader = leader, _exclusive = exclusive };
            if (!formatted)
            {
                // Clients that held files open before this start bring their handles back when
                // they reconnect; until they have had their lease to, holders may be missing.
                server.Sessions.StartRecovery();
                Log.Recovering(logger, options.SessionLease.TotalSeconds);
            }

            await server.Targets.LoadAsync().ConfigureAwait(false);
            try
            {
                await server.Rpc.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new StartupException($"parafs mds: {e.Message}", e);
            }
        }
        catch
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                if (leader is not null)
                {
                    await leader.DisposeAsync().ConfigureAwait(false);
                }

                await store.DisposeAsync().ConfigureAwait(false);
                exclusive?.Dispose();
            }

            throw;
        }

        server._background = Task.Run(server.BackgroundLoopAsync, CancellationToken.None);
        server._reaper = Task.Run(server.DeleteObjectsLoopAsync, CancellationToken.None);
        if (leader is not null)
        {
            server.Deposed = server.StepDownWhenLostAsync(leader, (PostgresMetadataStore)store, where);
        }

        Log.Serving(logger, server.FileSystemName, server.FileSystemId, server.Endpoint.Text, store.Kind, where);
        return server;
    }

    private static async Task<(IMetadataStore Store, string Where, ExclusiveUse? Exclusive)> OpenStoreAsync(MdsOptions options, CancellationToken cancellationToken)
    {
        if (options.Store is { } text && text != "sqlite")
        {
            if (!PostgresMetadataStore.IsConnectionString(text))
            {
                throw new StartupException(
                    $"parafs mds: --store {text} is neither sqlite nor a PostgreSQL connection string (Host=HOST;Database=NAME;Username=USER) or URL (postgres://USER@HOST:PORT/NAME)");
            }

            var postgres = await PostgresMetadataStore.OpenAsync(text, migrate: false, cancellationToken).ConfigureAwait(false);
            return (postgres, postgres.Description, null);
        }

        if (string.IsNullOrEmpty(options.DataDirectory))
        {
            throw new StartupException("parafs mds: the SQLite store needs a data directory (--data DIR)");
        }

        Directory.CreateDirectory(options.DataDirectory);
        var exclusive = ExclusiveUse.OfDirectory(options.DataDirectory, "parafs mds");
        var path = Path.Combine(options.DataDirectory, "mds.db");
        try
        {
            return (SqliteMetadataStore.Open(path), path, exclusive);
        }
        catch
        {
            exclusive.Dispose();
            throw;
        }
    }

    private static Task<(string Id, string Name, bool Formatted)> FormatOrCheckAsync(IMetadataStore store, MdsOptions options, string where, CancellationToken cancellationToken) =>
        store.WriteAsync(tx =>
        {
            if (tx.GetMeta("fs_id") is { } id)
            {
                var name = tx.GetMeta("fs_name") ?? "";
                if (options.RequireFileSystemName && name != options.FileSystemName)
                {
                    throw new StartupException(
                        $"the metadata store {where} holds file system {name} ({id}), not {options.FileSystemName}; give --fsname {name}, or another store for a new file system");
                }

                return (id, name, false);
            }

            var newId = Guid.NewGuid().ToString();
            tx.SetMeta("fs_id", newId);
            tx.SetMeta("fs_name", options.FileSystemName);
            tx.SetMeta("created_ms", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
            MdsNamespace.FormatRoot(tx, MdsNamespace.RootPolicy(options.RootPool));
            return (newId, options.FileSystemName, true);
        }, cancellationToken);

    /// <summary>
    /// Once the leader lock is lost, or a write found a newer leader epoch, stop answering at
    /// once: a standby may already be serving the same database.
    /// </summary>
    private async Task<string> StepDownWhenLostAsync(PostgresLeaderLock leader, PostgresMetadataStore store, string where)
    {
        var reason = await (await Task.WhenAny(leader.Lost, store.Deposed).ConfigureAwait(false)).ConfigureAwait(false);
        Log.LeadershipLost(_logger, where, reason);
        await Rpc.StopAsync().ConfigureAwait(false);
        return reason;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Rpc.StopAsync().ConfigureAwait(false);
        await Task.WhenAll(_background, _reaper).ConfigureAwait(false);
        await _targetConnections.DisposeAsync().ConfigureAwait(false);
        if (_leader is not null)
        {
            await _leader.DisposeAsync().ConfigureAwait(false);
        }

        await _store.DisposeAsync().ConfigureAwait(false);
        _exclusive?.Dispose();
        _stopping.Dispose();
    }

    /// <summary>Deletes queued objects on their OSTs until the queue is empty; for tests and shutdown.</summary>
    public async Task<int> DrainDeletionsAsync(CancellationToken cancellationToken = default)
    {
        await _draining.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await DrainDeletionsOnceAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _draining.Release();
        }
    }

    private async Task<int> DrainDeletionsOnceAsync(CancellationToken cancellationToken)
    {
        var done = 0;
        var failedTargets = new HashSet<int>();
        while (true)
        {
            var batch = await _store.ReadAsync(tx => tx.ListObjectDeletions(0, 256), cancellationToken).ConfigureAwait(false);
            var todo = batch.Where(d => !failedTargets.Contains(d.TargetId)).ToList();
            if (todo.Count == 0)
            {
                return done;
            }

            var deleted = new List<long>();
            foreach (var deletion in todo)
            {
                if (failedTargets.Contains(deletion.TargetId))
                {
                    continue;
                }

                try
                {
                    await _targetConnections.DeleteAsync(deletion.TargetId, deletion.ObjectId, cancellationToken).ConfigureAwait(false);
                    deleted.Add(deletion.Id);
                }
                catch (ParaFsException e)
                {
                    // The target is down or unknown: its deletions wait in the queue for the next round.
                    failedTargets.Add(deletion.TargetId);
                    Log.DeletionDeferred(_logger, deletion.ObjectId, deletion.TargetId, e.Message);
                }
            }

            // One commit for the batch; a crash before it only repeats deletes, which are idempotent.
            await _store.WriteAsync(tx =>
            {
                deleted.ForEach(tx.CompleteObjectDeletion);
                return 0;
            }, cancellationToken).ConfigureAwait(false);
            done += deleted.Count;
        }
    }

    private async Task BackgroundLoopAsync()
    {
        var orphansReclaimed = false;
        var repliesForgottenAt = 0L;
        try
        {
            await Namespace.FindRetiringAsync(_stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Stopped during the scan (a server stopped right after it started).
            return;
        }
        catch (Exception e)
        {
            Log.BackgroundFailed(_logger, "scan for retired objects", e);
        }

        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Min(1000, HeartbeatInterval.TotalMilliseconds)));
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                try
                {
                    await Targets.CheckHeartbeatsAsync().ConfigureAwait(false);
                    var lastClosed = Sessions.ExpireSessions(out var unlocked);
                    Namespace.WakeLockWaiters(unlocked);
                    foreach (var ino in lastClosed)
                    {
                        await Namespace.ReclaimIfOrphanAsync(ino).ConfigureAwait(false);
                    }

                    // Objects a migration left behind go once every open holder moved on.
                    await Namespace.ReleaseRetiredAsync().ConfigureAwait(false);

                    // Reply records of calls no client can still be retrying.
                    if (Environment.TickCount64 - repliesForgottenAt > 60_000)
                    {
                        repliesForgottenAt = Environment.TickCount64;
                        await Namespace.ForgetOldRepliesAsync().ConfigureAwait(false);
                    }

                    // Files unlinked while open before a restart: their clients had a lease to
                    // come back and claim them; what nobody claimed is deleted now.
                    if (!orphansReclaimed && Sessions.RecoveryLeft == TimeSpan.Zero)
                    {
                        orphansReclaimed = true;
                        if (await Namespace.ReclaimOrphansAsync().ConfigureAwait(false) > 0)
                        {
                            _deletionsPending.Release();
                        }
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.BackgroundFailed(_logger, "heartbeat and session checks", e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task DeleteObjectsLoopAsync()
    {
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                // Woken when deletions are queued; otherwise retries every few seconds (a target came back).
                await _deletionsPending.WaitAsync(TimeSpan.FromSeconds(5), _stopping.Token).ConfigureAwait(false);
                try
                {
                    await DrainDeletionsAsync(_stopping.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.BackgroundFailed(_logger, "object deletion", e);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
