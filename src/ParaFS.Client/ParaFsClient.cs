using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;
using Empty = ParaFS.Protocol.Ost.Empty;

namespace ParaFS.Client;

/// <summary>
/// The ParaFS client core: a POSIX-shaped API by inode and file handle over the MDS (namespace,
/// layouts) and the OSTs (data, striped and in parallel). The FUSE adapter sits on it; tests and
/// a native API use it directly. Methods taking a <see cref="Caller"/> are checked against that
/// caller's permissions at the MDS. Failures are <see cref="ParaFsException"/> with the errno.
/// </summary>
public sealed partial class ParaFsClient : IAsyncDisposable
{
    private readonly ClientOptions _options;
    private readonly MetadataClient _mds;
    private readonly MetadataCache _cache;
    private readonly ConcurrentDictionary<ulong, FileHandle> _open = new();
    private readonly ConcurrentDictionary<ulong, WriteBehind> _writes = new();
    private readonly SemaphoreSlim _writeBudget;
    private readonly SemaphoreSlim _globalWindow;
    private readonly Timer _sizeReporter;
    private readonly Timer _sessionKeeper;
    private int _reattaching;

    /// <summary>When the session keeper first found no connection to the MDS (0 while connected), and how many minute reports it has logged since.</summary>
    private long _mdsAwaySince;
    private int _mdsAwayReports;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private ObjectClients _objects = null!;
    private long _readAheadBytes;

    private ParaFsClient(RpcEndpoint mds, ClientOptions options, ILoggerFactory loggerFactory)
    {
        _options = options;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger("ParaFS.Client");
        _cache = new MetadataCache(options.CacheLifetime);
        _globalWindow = new SemaphoreSlim(options.GlobalRequests);
        _writeBudget = new SemaphoreSlim(Math.Max(1, options.WriteBehindBytes / WriteBudgetUnit));
        _mds = new MetadataClient(mds, options, () => _open.Values.Select(h => h.ToOpenHandle()), HeldLocks, LocksLost, OnPushAsync, OnMdsConnectionLost, loggerFactory);
        _sizeReporter = new Timer(static s => _ = ((ParaFsClient)s!).ReportSizesAsync(), this, options.SizeReportInterval, options.SizeReportInterval);

        // Started once the first connection is up (ConnectAsync): a check that ran while a slow
        // first connect was still under way said the MDS had gone away.
        _sessionKeeper = new Timer(static s => _ = ((ParaFsClient)s!).KeepSessionAsync(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Raised when the MDS says an inode's attributes (or layout) changed: the FUSE layer invalidates the kernel's cache.</summary>
    public event Action<ulong>? AttrInvalidated;

    /// <summary>Raised when the MDS says a directory entry changed.</summary>
    public event Action<ulong, string>? EntryInvalidated;

    /// <summary>
    /// Raised when a connection to the MDS ended: callbacks sent on it may be lost, so no entry or
    /// attributes known before can be trusted past the short cache lifetime (the FUSE layer
    /// revokes what it let the kernel keep longer).
    /// </summary>
    public event Action? CachesMayBeStale;

    /// <summary>
    /// Drop counts of inode attributes, taken before a call that answers attributes; with
    /// <see cref="AttrUnchanged"/> afterwards they say whether the answer can be trusted for
    /// longer than the cache lifetime (no callback, own change or lost connection touched it).
    /// </summary>
    public long[] AttrVersions() => _cache.AttrVersions();

    /// <inheritdoc cref="MetadataCache.AttrUnchanged"/>
    public bool AttrUnchanged(ulong ino, long[] versions) => _cache.AttrUnchanged(ino, versions);

    /// <summary>
    /// A count that moves whenever the entry (<paramref name="parent"/>, <paramref name="name"/>)
    /// may have changed: an MDS callback, this client's own unlink or rename, a lost MDS
    /// connection. Taken before a lookup, it says afterwards whether the answer can be trusted for
    /// longer than the cache lifetime (nothing revoked it while it was on its way).
    /// </summary>
    public long EntryVersion(ulong parent, string name) => _cache.EntryVersion(parent, name);

    /// <summary>The entry counts of every stripe, for a call that answers entries not known before it (a directory listing).</summary>
    public long[] EntryVersions() => _cache.EntryVersions();

    /// <inheritdoc cref="MetadataCache.EntryUnchanged"/>
    public bool EntryUnchanged(ulong parent, string name, long[] versions) => _cache.EntryUnchanged(parent, name, versions);

    public string FileSystemId => _mds.FileSystemId;

    public string FileSystemName => _mds.FileSystemName;

    public ulong SessionId => _mds.SessionId;

    public const ulong RootIno = 1;

    /// <summary>Connects to the MDS, opens a session and learns the targets.</summary>
    public static async Task<ParaFsClient> ConnectAsync(RpcEndpoint mds, ClientOptions? options = null, ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        var client = new ParaFsClient(mds, options ?? new ClientOptions(), loggerFactory ?? NullLoggerFactory.Instance);
        try
        {
            await client._mds.ConnectAsync(cancellationToken).ConfigureAwait(false);
            client._sessionKeeper.Change(SessionCheckInterval, SessionCheckInterval);
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        client._objects = new ObjectClients(client._options, client.ListTargetsAsync, client.FileSystemId, client._loggerFactory);
        await client._objects.RefreshAsync(cancellationToken).ConfigureAwait(false);
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await _sizeReporter.DisposeAsync().ConfigureAwait(false);
        await _sessionKeeper.DisposeAsync().ConfigureAwait(false);
        foreach (var handle in _open.Values.ToList())
        {
            try
            {
                await ReleaseAsync(handle).ConfigureAwait(false);
            }
            catch (ParaFsException)
            {
                // Best effort at shutdown; the MDS releases the session's opens after its lease.
            }
        }

        if (_objects is not null)
        {
            await _objects.DisposeAsync().ConfigureAwait(false);
        }

        await _mds.DisposeAsync().ConfigureAwait(false);
        _globalWindow.Dispose();
        _writeBudget.Dispose();
    }

    public async Task<IReadOnlyList<TargetInfo>> ListTargetsAsync(CancellationToken cancellationToken = default) =>
        (await _mds.CallAsync(Methods.MdsListTargets, new StatFsRequest(), ListTargetsReply.Parser, idempotent: true, cancellationToken).ConfigureAwait(false)).Targets;

    private void OnMdsConnectionLost()
    {
        _cache.DropAll();
        CachesMayBeStale?.Invoke();
    }

    private ValueTask OnPushAsync(RpcPush push)
    {
        switch (push.Method)
        {
            case Methods.PushEntryChanged:
                var entry = push.ParseMessage(EntryChanged.Parser);
                _cache.DropEntry(entry.Parent, entry.Name);
                EntryInvalidated?.Invoke(entry.Parent, entry.Name);
                break;
            case Methods.PushAttrChanged:
                var attr = push.ParseMessage(AttrChanged.Parser);
                _cache.DropAttr(attr.Ino);
                _cache.DropXattrs(attr.Ino);
                AttrInvalidated?.Invoke(attr.Ino);
                break;
            case Methods.PushLayoutChanged:
                var layout = push.ParseMessage(LayoutChanged.Parser);
                _cache.DropAttr(layout.Ino);
                var holding = false;
                foreach (var handle in _open.Values.Where(h => h.Ino == layout.Ino))
                {
                    holding = true;
                    if (handle.Layout.Generation < layout.Generation)
                    {
                        handle.LayoutStale = true;
                    }
                }

                // Acknowledged even when an I/O already fetched the new layout: the MDS asks only
                // until this session says so (it repeats the callback while a mover waits).
                if (holding)
                {
                    _ = SwitchLayoutAsync(layout.Ino);
                }

                AttrInvalidated?.Invoke(layout.Ino);
                break;
            case Methods.PushLockReleased:
                WakeLockWaiters(push.ParseMessage(LockReleased.Parser).Ino);
                break;
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// After a layout change (a migration began, cut over or was aborted): every open handle of the
    /// inode takes the new layout, the writes sent under the old one are waited for, and then the
    /// MDS is told, so a mover never copies while a write it cannot see is still on its way.
    /// </summary>
    private async Task SwitchLayoutAsync(ulong ino)
    {
        try
        {
            var fresh = (await GetAttrAsync(ino, fresh: true).ConfigureAwait(false)).Layout ?? new Layout();
            foreach (var handle in HandlesOf(ino).Where(h => h.Layout.Generation < fresh.Generation))
            {
                handle.SetLayout(fresh);
                DropReadAhead(handle);
            }

            if (_writes.TryGetValue(ino, out var writes))
            {
                await writes.WaitForCurrentAsync().ConfigureAwait(false);
            }

            await _mds.CallAsync(Methods.MdsLayoutAck, new LayoutAckRequest { Ino = ino, Generation = fresh.Generation }, Empty.Parser, idempotent: true).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            // The file may be gone, or the MDS away: the mover asks again (the MDS repeats the
            // callback), and the next I/O refetches the layout anyway.
            Log.LayoutSwitchFailed(_logger, ino, e.Message);
        }
    }

    /// <summary>How often the client checks that it still has a connection to the MDS.</summary>
    private static readonly TimeSpan SessionCheckInterval = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Reconnects to the MDS as soon as it answers again after every connection to it closed (an
    /// MDS restart, a failover, a network break), instead of at the next metadata call: the new
    /// connection re-attaches the session with the handles held open, within the lease the MDS
    /// gives returning clients, and callbacks reach this client again.
    /// </summary>
    private async Task KeepSessionAsync()
    {
        if (_mds.IsConnected)
        {
            // A metadata call may have reconnected first.
            NoteMdsBack();
            return;
        }

        if (Interlocked.Exchange(ref _reattaching, 1) == 1)
        {
            return;
        }

        try
        {
            if (_mdsAwaySince == 0)
            {
                _mdsAwaySince = Stopwatch.GetTimestamp();
                Log.MdsAway(_logger, _mds.Endpoint, _open.Count);
            }

            await _mds.TryReconnectAsync().ConfigureAwait(false);
            var away = Stopwatch.GetElapsedTime(_mdsAwaySince);
            if (_mds.IsConnected)
            {
                NoteMdsBack();
            }
            else if (away.TotalSeconds >= 60 * (_mdsAwayReports + 1))
            {
                _mdsAwayReports++;
                Log.MdsStillAway(_logger, _mds.Endpoint, (long)away.TotalSeconds);
            }
        }
        finally
        {
            Volatile.Write(ref _reattaching, 0);
        }
    }

    private void NoteMdsBack()
    {
        var since = Interlocked.Exchange(ref _mdsAwaySince, 0);
        if (since != 0)
        {
            _mdsAwayReports = 0;
            Log.MdsBack(_logger, _mds.Endpoint, Stopwatch.GetElapsedTime(since).TotalSeconds);
        }
    }

    /// <summary>Reports every open file's size extension the MDS does not know yet (at most one interval late).</summary>
    private async Task ReportSizesAsync()
    {
        // A file with writes still on their way is left for the next round (or its flush): the MDS
        // must never learn a size whose bytes a crash could leave unwritten.
        var pending = _open.Values
            .Where(h => !_writes.TryGetValue(h.Ino, out var w) || w.IsIdle)
            .Select(h => (Handle: h, Report: h.PendingReport())).Where(p => p.Report is not null).ToList();
        if (pending.Count == 0)
        {
            return;
        }

        var request = new SizeReportRequest();
        request.Reports.AddRange(pending.Select(p => p.Report!));
        try
        {
            await _mds.CallAsync(Methods.MdsReportSize, request, Empty.Parser, idempotent: true).ConfigureAwait(false);
            foreach (var (handle, report) in pending)
            {
                handle.Reported(report!);
                _cache.DropAttr(handle.Ino);
            }
        }
        catch (ParaFsException)
        {
            // The MDS is away; the next interval, fsync or close reports again.
        }
    }
}
