using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost;

/// <summary>
/// The OST's side of the target registry: registers with the MDS (a first start learns its target
/// id and file system there), then heartbeats its usage. An MDS that goes away (or refuses the
/// target) is logged once when it goes and once when it is back; meanwhile the OST serves on and
/// retries.
/// </summary>
internal sealed class TargetRegistration : IAsyncDisposable
{
    private readonly OstOptions _options;
    private readonly string _address;
    private readonly Func<TargetUsage> _usage;
    private readonly ILogger _logger;
    private RpcClient _client;
    private Superblock? _superblock;
    private TimeSpan _interval;
    private bool _registered;
    private bool _mdsDown;
    private TargetState _state;

    public TargetRegistration(OstOptions options, Superblock? superblock, string address, Func<TargetUsage> usage, ILogger logger)
    {
        _options = options;
        _superblock = superblock;
        _address = address;
        _usage = usage;
        _logger = logger;
        _interval = options.DefaultHeartbeatInterval;
        _client = CreateClient(superblock?.FsId ?? "");
    }

    /// <summary>The heartbeat interval the MDS asked for.</summary>
    public TimeSpan HeartbeatInterval => _interval;

    /// <summary>
    /// A first start: registers as a new target, waiting as long as it takes for the MDS to
    /// answer. An MDS that answers with a refusal stops the start.
    /// </summary>
    public async Task<RegisterTargetReply> RegisterNewTargetAsync(CancellationToken cancellationToken)
    {
        var lastSaid = long.MinValue;
        while (true)
        {
            try
            {
                var reply = await RegisterAsync(0, cancellationToken).ConfigureAwait(false);
                if (reply.FsId.Length == 0)
                {
                    reply.FsId = _client.ServerInfo?.FsId ?? "";
                    reply.FsName = reply.FsName.Length > 0 ? reply.FsName : _client.ServerInfo?.FsName ?? "";
                }

                if (reply.TargetId == 0 || reply.FsId.Length == 0)
                {
                    throw new StartupException(
                        $"the MDS at {_options.Mds} registered {_options.DataDirectory} without assigning a target id and file system id "
                        + $"(target {reply.TargetId}, file system '{reply.FsId}'); check the MDS's version and log");
                }

                _registered = true;
                return reply;
            }
            catch (RpcException e) when (e.IsConnectionFailure)
            {
                if (Stopwatch.GetElapsedTime(lastSaid) >= _options.WaitingLogInterval || lastSaid == long.MinValue)
                {
                    Log.WaitingForMds(_logger, _options.Mds.Text, _options.Pool, _options.DataDirectory, e.Message);
                    lastSaid = Stopwatch.GetTimestamp();
                }
            }
            catch (RpcException e)
            {
                throw new StartupException(
                    $"the MDS at {_options.Mds} refused to register {_options.DataDirectory} as a new target of pool {_options.Pool}: {e.Message}", e);
            }

            await Task.Delay(_options.RetryInterval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Records the formatted superblock: from now on the OST speaks as that target of that file system.</summary>
    public async Task FormattedAsync(Superblock superblock)
    {
        _superblock = superblock;
        var old = _client;
        _client = CreateClient(superblock.FsId);
        await old.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// A later start: one registration attempt. An MDS of another file system stops the start; an
    /// MDS that cannot be reached is logged and left to <see cref="RunAsync"/> to retry.
    /// </summary>
    public async Task RegisterExistingTargetAsync(CancellationToken cancellationToken)
    {
        var superblock = _superblock!;
        try
        {
            await RegisterAsync(superblock.TargetId, cancellationToken).ConfigureAwait(false);
            _registered = true;
        }
        catch (RpcException e)
        {
            // A refused handshake names the MDS's file system only in prose: ask it plainly.
            if (e.Errno == Errno.EPROTO && await ProbeFileSystemAsync(cancellationToken).ConfigureAwait(false) is { } other
                && other.FsId.Length > 0 && other.FsId != superblock.FsId)
            {
                throw superblock.OtherFileSystem(_options.DataDirectory, _options.Mds, other.FsId, other.FsName);
            }

            _mdsDown = true;
            LogLost(e);
        }
    }

    /// <summary>Heartbeats until cancelled, registering again whenever the MDS was lost.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var superblock = _superblock!;
        while (!cancellationToken.IsCancellationRequested)
        {
            TimeSpan delay;
            try
            {
                if (!_registered)
                {
                    await RegisterAsync(superblock.TargetId, cancellationToken).ConfigureAwait(false);
                    _registered = true;
                }
                else
                {
                    var usage = _usage();
                    var reply = await _client.CallAsync(
                        Methods.TargetHeartbeat,
                        new TargetHeartbeatRequest { TargetId = superblock.TargetId, Address = _address, Usage = usage },
                        TargetHeartbeatReply.Parser,
                        CallTimeout,
                        cancellationToken: cancellationToken).ConfigureAwait(false);
                    NoteState(reply.State);
                }

                if (_mdsDown)
                {
                    _mdsDown = false;
                    Log.MdsBack(_logger, _options.Mds.Text, superblock.TargetId);
                }

                // Read after the call: a registration may just have changed the interval.
                delay = _interval;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (RpcException e) when (_registered && !e.IsConnectionFailure)
            {
                // The MDS answered the heartbeat but does not know this target (say, it was
                // restored from a backup): register again at once.
                _registered = false;
                delay = TimeSpan.Zero;
            }
            catch (RpcException e)
            {
                _registered = false;
                delay = _options.RetryInterval < _interval ? _options.RetryInterval : _interval;
                if (!_mdsDown)
                {
                    _mdsDown = true;
                    LogLost(e);
                }
            }
            catch (Exception e)
            {
                Log.HeartbeatLoopFailed(_logger, superblock.TargetId, e);
                delay = _options.RetryInterval;
            }

            try
            {
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public ValueTask DisposeAsync() => _client.DisposeAsync();

    private TimeSpan CallTimeout => _interval > TimeSpan.FromSeconds(5) ? _interval : TimeSpan.FromSeconds(5);

    private async Task<RegisterTargetReply> RegisterAsync(uint targetId, CancellationToken cancellationToken)
    {
        var request = new RegisterTargetRequest
        {
            TargetId = targetId,
            Pool = _options.Pool,
            Address = _address,
            Backend = Backends.BackendSpec.Parse(_options.Backend, _options.DataDirectory).Kind,
            Usage = _usage(),
        };
        var reply = await _client.CallAsync(Methods.RegisterTarget, request, RegisterTargetReply.Parser, CallTimeout, cancellationToken: cancellationToken)
            .ConfigureAwait(false);
        _interval = reply.HeartbeatIntervalMs > 0 ? TimeSpan.FromMilliseconds(reply.HeartbeatIntervalMs) : _options.DefaultHeartbeatInterval;
        if (_superblock is { } superblock && (reply.TargetId != superblock.TargetId || (reply.FsId.Length > 0 && reply.FsId != superblock.FsId)))
        {
            Log.RegistrationMismatch(_logger, _options.Mds.Text, superblock.TargetId,
                $"target {reply.TargetId} of file system {reply.FsId}", _options.DataDirectory, $"target {superblock.TargetId} of {superblock.FsId}");
        }

        Log.Registered(_logger, _options.Mds.Text, reply.TargetId, (uint)_interval.TotalMilliseconds);
        NoteState(reply.State, reply.TargetId);
        return reply;
    }

    private void LogLost(RpcException e)
    {
        var targetId = _superblock?.TargetId ?? 0;
        if (e.IsConnectionFailure)
        {
            Log.MdsUnreachable(_logger, _options.Mds.Text, targetId, e.Message);
        }
        else
        {
            Log.RegistrationRefused(_logger, _options.Mds.Text, targetId, e.Errno.ToString(), e.Message);
        }
    }

    /// <summary>Logs a state change; <paramref name="targetId"/> when the superblock is not written yet (a first registration).</summary>
    private void NoteState(TargetState state, uint targetId = 0)
    {
        if (state != _state && state != TargetState.Unspecified)
        {
            _state = state;
            Log.StateChanged(_logger, _superblock?.TargetId ?? targetId, state.ToString().ToLowerInvariant());
        }
    }

    /// <summary>Which file system the MDS serves, asked without naming ours (so it is not refused).</summary>
    private async Task<HelloReply?> ProbeFileSystemAsync(CancellationToken cancellationToken)
    {
        try
        {
            var options = _client.Options with { FileSystemId = "" };
            await using var connection = await RpcClientConnection.ConnectAsync(_options.Mds, options, _logger, cancellationToken).ConfigureAwait(false);
            return connection.ServerInfo;
        }
        catch (RpcException)
        {
            return null;
        }
    }

    private RpcClient CreateClient(string fsId) => new(_options.Mds, new RpcClientOptions
    {
        ConnectionsPerServer = 1,
        Role = PeerRole.Ost,
        FileSystemId = fsId,
        PeerName = _superblock is { } s ? $"ost {s.TargetId} {_address}" : $"new ost {_address}",
        Limits = _options.Limits,
    });
}
