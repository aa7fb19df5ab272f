using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ParaFS.Common;
using ParaFS.Common.Storage;
using ParaFS.Nvme;
using ParaFS.Ost.Backends;
using ParaFS.Ost.Backends.Block;
using ParaFS.Ost.Backends.Dir;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost;

/// <summary>
/// One object storage target: its data directory, the backend over it, the RPC server clients
/// call, and the link to the MDS. A first start listens, registers with the MDS (waiting for it if
/// need be) and formats the directory with what the MDS assigned; a later start checks the
/// superblock, serves at once, and registers in the background if the MDS is away.
/// </summary>
public sealed class OstServer : IAsyncDisposable
{
    private readonly OstOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly ObjectService _service;
    private readonly RpcDispatcher _dispatcher = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly string _dataDirectory;
    private RpcServer? _server;
    private TargetRegistration? _registration;
    private IObjectBackend? _backend;
    private IBlockDevice? _device;
    private BackendSpec? _spec;

    /// <summary>The data directory's (or block store's) lock: one OST process on it at a time.</summary>
    private ExclusiveUse? _exclusive;
    private Task _heartbeats = Task.CompletedTask;
    private long _usageTakenAt = Stopwatch.GetTimestamp();
    private long _usageCompleted;
    private int _stopped;

    public OstServer(OstOptions options, ILoggerFactory? loggerFactory = null)
    {
        _options = options;
        // A directory or image path is made absolute; an nvme-tcp:// URL is kept as it is.
        _dataDirectory = options.DataDirectory.Contains("://", StringComparison.Ordinal) ? options.DataDirectory : Path.GetFullPath(options.DataDirectory);
        _loggerFactory = loggerFactory ?? NullLoggerFactory.Instance;
        _logger = _loggerFactory.CreateLogger("ParaFS.Ost");
        _service = new ObjectService(Metrics, options.Limits.MaxPayloadBytes);
        _service.Register(_dispatcher);
    }

    public OstMetrics Metrics { get; } = new();

    /// <summary>What the data directory is; null until a first start has formatted it.</summary>
    public Superblock? Superblock { get; private set; }

    public IObjectBackend Backend => _backend ?? throw new InvalidOperationException("the OST has not started");

    /// <summary>Where clients reach it (the port it got when asked for 0).</summary>
    public RpcEndpoint Endpoint => _server?.Endpoint ?? throw new InvalidOperationException("the OST has not started");

    /// <summary>How often it heartbeats, as the MDS asked.</summary>
    public TimeSpan HeartbeatInterval => _registration?.HeartbeatInterval ?? _options.DefaultHeartbeatInterval;

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        BackendSpec spec;
        try
        {
            spec = BackendSpec.Parse(_options.Backend, _dataDirectory);
        }
        catch (ParaFsException e)
        {
            throw new StartupException($"parafs ost: {e.Message}", e);
        }

        Superblock? superblock;
        try
        {
            if (spec.IsDirectory)
            {
                Directory.CreateDirectory(_dataDirectory);
                _exclusive = ExclusiveUse.OfDirectory(_dataDirectory, "parafs ost");
                superblock = Superblock.Load(_dataDirectory);
                superblock?.CheckSettings(_dataDirectory, _options.Pool, spec.Kind);
            }
            else
            {
                // The device carries the target's identity in its own superblock.
                _device = await OpenDeviceAsync(spec, cancellationToken).ConfigureAwait(false);

                // A remote namespace (nvme-tcp) cannot be flocked here: NVMe reservations would be its lock.
                if (spec.Kind == BlockBackend.BackendName)
                {
                    try
                    {
                        _exclusive = ExclusiveUse.OfDevice(spec.Location, "parafs ost");
                    }
                    catch
                    {
                        await _device.DisposeAsync().ConfigureAwait(false);
                        throw;
                    }
                }

                superblock = await DeviceSuperblockAsync(_device, spec, cancellationToken).ConfigureAwait(false);
            }

            _spec = spec;
            if (superblock is not null)
            {
                await OpenBackendAsync(superblock, cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            ReleaseExclusive();
            throw;
        }

        var server = new RpcServer(
            new RpcServerOptions
            {
                Listen = _options.Listen,
                Role = PeerRole.Ost,
                ServerName = _options.ServerName,
                FileSystemId = superblock?.FsId ?? "",
                FileSystemName = superblock?.FsName ?? "",
                Limits = _options.Limits,
                BulkThreads = _options.BulkThreads > 0,
                MaxBulkThreads = _options.BulkThreads,
            },
            _dispatcher,
            _loggerFactory);
        try
        {
            await server.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            _backend?.Dispose();
            if (_backend is null && _device is not null)
            {
                await _device.DisposeAsync().ConfigureAwait(false);
            }

            ReleaseExclusive();
            throw new StartupException($"parafs ost ({_dataDirectory}): {e.Message}", e);
        }

        _server = server;
        try
        {
            _registration = new TargetRegistration(_options, superblock, AdvertisedAddress(server.Endpoint), Usage, _logger);
            if (superblock is null)
            {
                var reply = await _registration.RegisterNewTargetAsync(cancellationToken).ConfigureAwait(false);
                superblock = new Superblock
                {
                    FsId = reply.FsId,
                    FsName = reply.FsName,
                    TargetId = reply.TargetId,
                    Pool = _options.Pool,
                    Backend = spec.Kind,
                    Created = DateTimeOffset.UtcNow,
                };
                if (spec.IsDirectory)
                {
                    superblock.Write(_dataDirectory);
                }

                // A block device is formatted here, with the identity the MDS assigned.
                await OpenBackendAsync(superblock, cancellationToken).ConfigureAwait(false);
                Log.Formatted(_logger, _dataDirectory, superblock.TargetId, superblock.FsId, superblock.FsName, superblock.Pool);
                server.FileSystemId = superblock.FsId;
                await _registration.FormattedAsync(superblock).ConfigureAwait(false);
            }
            else
            {
                await _registration.RegisterExistingTargetAsync(cancellationToken).ConfigureAwait(false);
            }

            _service.Attach(_backend!, superblock);
            var registration = _registration;
            _heartbeats = Task.Run(() => registration.RunAsync(_stopping.Token), CancellationToken.None);
            Log.Serving(_logger, superblock.TargetId, superblock.Pool, superblock.Backend, superblock.FsId, _dataDirectory, server.Endpoint.Text);
        }
        catch (OperationCanceledException e) when (cancellationToken.IsCancellationRequested)
        {
            await StopAsync().ConfigureAwait(false);
            throw new StartupException(
                $"parafs ost stopped while starting ({(Superblock is null ? $"waiting for the MDS at {_options.Mds}; {_dataDirectory} was not formatted" : $"registering {_dataDirectory}")})", e);
        }
        catch
        {
            await StopAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops heartbeats and the RPC server (in-flight calls end), then closes the objects.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await _heartbeats.ConfigureAwait(false);
        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
        }

        if (_registration is not null)
        {
            await _registration.DisposeAsync().ConfigureAwait(false);
        }

        _backend?.Dispose();
        if (_backend is null && _device is not null)
        {
            await _device.DisposeAsync().ConfigureAwait(false);
        }

        ReleaseExclusive();
        if (Superblock is not null)
        {
            Log.Stopped(_logger, Superblock.TargetId);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        Metrics.Dispose();
        _stopping.Dispose();
    }

    private void ReleaseExclusive()
    {
        _exclusive?.Dispose();
        _exclusive = null;
    }

    private async Task OpenBackendAsync(Superblock superblock, CancellationToken cancellationToken)
    {
        if (_spec!.IsDirectory)
        {
            _backend = DirBackend.Open(_dataDirectory, superblock.Label, _options.OpenObjectLimit, _logger);
        }
        else
        {
            try
            {
                _backend = await BlockBackend.OpenAsync(_spec.Kind, _device!, superblock.FsId, superblock.FsName, superblock.TargetId, superblock.Pool, _logger, cancellationToken).ConfigureAwait(false);
            }
            catch (ParaFsException e)
            {
                _device = null;
                throw new StartupException($"parafs ost: {e.Message}", e);
            }
        }

        Superblock = superblock;
    }

    /// <summary>Opens the device a block or nvme-tcp backend keeps its objects on.</summary>
    private async Task<IBlockDevice> OpenDeviceAsync(BackendSpec spec, CancellationToken cancellationToken)
    {
        try
        {
            IBlockDevice device = spec.Kind == BlockBackend.BackendName
                ? FileBlockDevice.Open(spec.Location)
                : await NvmeNamespaceDevice.OpenAsync(spec.Location, cancellationToken: cancellationToken).ConfigureAwait(false);
            if (device.SizeBytes < BlockFormat.MinimumBytes())
            {
                await device.DisposeAsync().ConfigureAwait(false);
                throw new ParaFsException(Errno.ENOSPC, $"{device.Description} holds {device.SizeBytes} bytes; the block store needs at least {BlockFormat.MinimumBytes()}");
            }

            return device;
        }
        catch (ParaFsException e)
        {
            throw new StartupException($"parafs ost: {e.Message}", e);
        }
    }

    /// <summary>The target a device was formatted for (null when blank), refused when it belongs to another pool or backend.</summary>
    private async Task<Superblock?> DeviceSuperblockAsync(IBlockDevice device, BackendSpec spec, CancellationToken cancellationToken)
    {
        BlockFormat? format;
        try
        {
            format = await BlockBackend.PeekAsync(device, cancellationToken).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            await device.DisposeAsync().ConfigureAwait(false);
            throw new StartupException($"parafs ost: {e.Message}", e);
        }

        if (format is null)
        {
            return null;
        }

        var superblock = new Superblock
        {
            FsId = format.FsId,
            FsName = format.FsName,
            TargetId = format.TargetId,
            Pool = format.Pool,
            Backend = spec.Kind,
            Created = DateTimeOffset.FromUnixTimeMilliseconds(format.CreatedMs),
        };
        try
        {
            superblock.CheckSettings(device.Description, _options.Pool, spec.Kind);
        }
        catch
        {
            await device.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return superblock;
    }

    /// <summary>What the heartbeat reports: space, objects, and operations per second since the last report.</summary>
    private TargetUsage Usage()
    {
        StorageUsage storage;
        if (_backend is { } backend)
        {
            storage = backend.GetUsage();
        }
        else if (_device is { } device)
        {
            storage = new StorageUsage(device.SizeBytes, device.SizeBytes, 0);
        }
        else
        {
            var drive = new DriveInfo(_dataDirectory);
            storage = new StorageUsage(drive.TotalSize, drive.AvailableFreeSpace, 0);
        }

        var now = Stopwatch.GetTimestamp();
        var completed = Metrics.CompletedOperations;
        var since = Stopwatch.GetElapsedTime(Interlocked.Exchange(ref _usageTakenAt, now), now).TotalSeconds;
        var operations = completed - Interlocked.Exchange(ref _usageCompleted, completed);
        return new TargetUsage
        {
            CapacityBytes = (ulong)storage.CapacityBytes,
            FreeBytes = (ulong)storage.FreeBytes,
            Objects = (ulong)storage.Objects,
            OpsPerSecond = since > 0 ? operations / since : 0,
            InFlight = (uint)Math.Max(0, Metrics.InFlight),
        };
    }

    /// <summary>The address the MDS hands to clients: --advertise, else the listen address with a wildcard host replaced by this host's name.</summary>
    private string AdvertisedAddress(RpcEndpoint endpoint)
    {
        if (_options.Advertise is { Length: > 0 } advertise)
        {
            return advertise;
        }

        if (endpoint.IsUnix)
        {
            return endpoint.Text;
        }

        var host = endpoint.Host!;
        if (IPAddress.TryParse(host, out var ip) && (ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any)))
        {
            host = Dns.GetHostName();
        }

        return host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{endpoint.Port}" : $"{host}:{endpoint.Port}";
    }
}
