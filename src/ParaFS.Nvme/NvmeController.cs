using System.Buffers;
using System.Diagnostics;
using ParaFS.Common;

namespace ParaFS.Nvme;

/// <summary>
/// One NVMe controller reached over TCP: the admin queue and its I/O queues, each on its own
/// connection. Brings the controller up in the order of reference section 6 (Connect, CAP/VS,
/// CC.EN=1 and CSTS.RDY, Identify, Set Features number of queues, I/O queue Connects with the
/// admin CNTLID), keeps it alive (Keep Alive every KATO/2), shuts it down (CC.SHN, CSTS.SHST), and
/// brings it back after a dropped connection (<see cref="ReconnectAsync"/>): a failure on any of
/// its connections fails every queue of that incarnation, and the next reconnect builds a new
/// admin queue and new I/O queues (the Linux host's error recovery does the same).
/// </summary>
public sealed class NvmeController : IAsyncDisposable
{
    public const string DiscoveryNqn = "nqn.2014-08.org.nvmexpress.discovery";

    private const uint PropertyCap = 0x00;
    private const uint PropertyVs = 0x08;
    private const uint PropertyCc = 0x14;
    private const uint PropertyCsts = 0x1C;

    /// <summary>CC = IOCQES 4 | IOSQES 6 | EN 1 (CSS 0, MPS 0, AMS 0).</summary>
    private const uint ControllerConfigEnable = 0x00460001;

    private readonly SemaphoreSlim _reconnectLock = new(1, 1);
    private readonly CancellationTokenSource _disposed = new();
    private volatile Incarnation? _current;
    private Task _keepAlive = Task.CompletedTask;
    private int _generation;
    private int _nextQueue;
    private long _keepAlivesSent;
    private (int Generation, long At, NvmeTransportException Error)? _lastReconnectFailure;

    private NvmeController(string host, int port, string subsystemNqn, NvmeTcpOptions options, bool discovery)
    {
        Host = host;
        Port = port;
        SubsystemNqn = subsystemNqn;
        Options = options;
        IsDiscovery = discovery;
        Label = $"nvme-tcp {host}:{port} {subsystemNqn}";
    }

    public string Host { get; }

    public int Port { get; }

    public string SubsystemNqn { get; }

    public NvmeTcpOptions Options { get; }

    public bool IsDiscovery { get; }

    public string Label { get; }

    /// <summary>Bumped by every successful reconnect.</summary>
    public int Generation => Volatile.Read(ref _generation);

    public ushort ControllerId => Current.Admin.ControllerId;

    /// <summary>CAP as read at bring-up (MQES 15:0, TO 31:24, MPSMIN 51:48 ...).</summary>
    public ulong Capabilities => Current.Capabilities;

    /// <summary>VS: major 31:16, minor 15:8, tertiary 7:0.</summary>
    public uint Version => Current.Version;

    public IdentifyController Identity => Current.Identity;

    public NvmeQueuePair AdminQueue => Current.Admin;

    public IReadOnlyList<NvmeQueuePair> IoQueues => Current.IoQueues;

    /// <summary>The largest data transfer MDTS allows (2^MDTS * 2^(12+CAP.MPSMIN)); int.MaxValue when MDTS is 0.</summary>
    public int MaxDataTransferBytes
    {
        get
        {
            var current = Current;
            if (current.Identity.Mdts == 0)
            {
                return int.MaxValue;
            }
            var minPage = 1L << (12 + (int)((current.Capabilities >> 48) & 0xF));
            return (int)Math.Min(minPage << current.Identity.Mdts, int.MaxValue);
        }
    }

    public long KeepAlivesSent => Interlocked.Read(ref _keepAlivesSent);

    public bool IsShutDown { get; private set; }

    private Incarnation Current => _current ?? throw new ObjectDisposedException(Label);

    /// <summary>Connects to an NVM subsystem and brings the controller up with its I/O queues.</summary>
    public static Task<NvmeController> ConnectAsync(string host, int port, string subsystemNqn, NvmeTcpOptions options, CancellationToken cancellationToken) =>
        ConnectAsync(host, port, subsystemNqn, options, discovery: false, cancellationToken);

    internal static async Task<NvmeController> ConnectAsync(string host, int port, string subsystemNqn, NvmeTcpOptions options, bool discovery,
        CancellationToken cancellationToken)
    {
        options.Validate();
        var controller = new NvmeController(host, port, subsystemNqn, options, discovery);
        controller._current = await controller.BringUpAsync(cancellationToken).ConfigureAwait(false);
        if (!discovery && options.KeepAliveTimeout > TimeSpan.Zero)
        {
            controller._keepAlive = Task.Run(controller.KeepAliveLoopAsync, CancellationToken.None);
        }
        return controller;
    }

    private async Task<Incarnation> BringUpAsync(CancellationToken cancellationToken)
    {
        var kato = IsDiscovery ? 0u : (uint)Options.KeepAliveTimeout.TotalMilliseconds;
        var admin = await NvmeQueuePair.ConnectAsync(
            new NvmeQueueParameters(Host, Port, SubsystemNqn, 0, 31, 0xFFFF, Options, kato), cancellationToken).ConfigureAwait(false);
        var ioQueues = new List<NvmeQueuePair>();
        try
        {
            var cap = await GetPropertyAsync(admin, PropertyCap, eightBytes: true, cancellationToken).ConfigureAwait(false);
            var vs = (uint)await GetPropertyAsync(admin, PropertyVs, eightBytes: false, cancellationToken).ConfigureAwait(false);
            await SetPropertyAsync(admin, PropertyCc, ControllerConfigEnable, cancellationToken).ConfigureAwait(false);
            var readyTimeout = TimeSpan.FromMilliseconds(Math.Max(1, (cap >> 24) & 0xFF) * 500);
            await WaitForStatusAsync(admin, static csts => (csts & 1) == 1, "CSTS.RDY = 1", readyTimeout, cancellationToken).ConfigureAwait(false);

            var identity = await IdentifyControllerAsync(admin, cancellationToken).ConfigureAwait(false);
            if (!IsDiscovery)
            {
                var granted = await SetNumberOfQueuesAsync(admin, Options.IoQueues, cancellationToken).ConfigureAwait(false);
                var count = Math.Min(Options.IoQueues, granted);
                var mqes = (int)(cap & 0xFFFF);            // 0's based: MQES+1 entries
                var depth = Math.Min(Options.QueueDepth, mqes); // SQSIZE = depth (0's based) keeps one entry free
                var inCapsule = identity.InCapsuleDataBytes;
                var connects = new Task<NvmeQueuePair>[count];
                for (var i = 0; i < count; i++)
                {
                    connects[i] = NvmeQueuePair.ConnectAsync(
                        new NvmeQueueParameters(Host, Port, SubsystemNqn, (ushort)(i + 1), depth, admin.ControllerId, Options), cancellationToken);
                }
                try
                {
                    await Task.WhenAll(connects).ConfigureAwait(false);
                }
                finally
                {
                    foreach (var connect in connects)
                    {
                        if (connect.IsCompletedSuccessfully)
                        {
                            ioQueues.Add(connect.Result);
                        }
                    }
                }
                foreach (var queue in ioQueues)
                {
                    queue.InCapsuleCapacity = inCapsule;
                }
            }
            var incarnation = new Incarnation(admin, ioQueues.ToArray(), cap, vs, identity);
            foreach (var queue in incarnation.AllQueues)
            {
                queue.Faulted = (_, cause) => incarnation.Fail(cause);
            }
            return incarnation;
        }
        catch
        {
            foreach (var queue in ioQueues)
            {
                await queue.DisposeAsync().ConfigureAwait(false);
            }
            await admin.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // ---------------------------------------------------------------- admin commands

    /// <summary>Runs a command on the admin queue and throws <see cref="NvmeStatusException"/> on an error status.</summary>
    public ValueTask<NvmeCompletion> ExecuteAdminAsync(NvmeCommand command, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn, CancellationToken cancellationToken) =>
        ExecuteCheckedAsync(Current.Admin, command, dataOut, dataIn, cancellationToken);

    internal static async ValueTask<NvmeCompletion> ExecuteCheckedAsync(NvmeQueuePair queue, NvmeCommand command, ReadOnlyMemory<byte> dataOut,
        Memory<byte> dataIn, CancellationToken cancellationToken)
    {
        var completion = await queue.ExecuteAsync(command, dataOut, dataIn, cancellationToken).ConfigureAwait(false);
        if (!completion.IsSuccess)
        {
            throw new NvmeStatusException($"{queue.Label}: {command.Name} failed: {completion.DescribeStatus()}", completion);
        }
        return completion;
    }

    public async Task<ulong> GetPropertyAsync(uint offset, bool eightBytes, CancellationToken cancellationToken) =>
        await GetPropertyAsync(Current.Admin, offset, eightBytes, cancellationToken).ConfigureAwait(false);

    private static async Task<ulong> GetPropertyAsync(NvmeQueuePair admin, uint offset, bool eightBytes, CancellationToken cancellationToken)
    {
        var completion = await ExecuteCheckedAsync(admin, NvmeCommand.PropertyGet(offset, eightBytes), default, default, cancellationToken)
            .ConfigureAwait(false);
        return eightBytes ? completion.Result64 : completion.Dw0;
    }

    private static async Task SetPropertyAsync(NvmeQueuePair admin, uint offset, uint value, CancellationToken cancellationToken) =>
        await ExecuteCheckedAsync(admin, NvmeCommand.PropertySet(offset, value, eightBytes: false), default, default, cancellationToken)
            .ConfigureAwait(false);

    private async Task WaitForStatusAsync(NvmeQueuePair admin, Func<uint, bool> done, string what, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var csts = (uint)await GetPropertyAsync(admin, PropertyCsts, eightBytes: false, cancellationToken).ConfigureAwait(false);
            if ((csts & 2) != 0)
            {
                throw new NvmeTransportException(Errno.EIO, $"{Label}: controller fatal status (CSTS.CFS = 1, CSTS 0x{csts:x}) while waiting for {what}");
            }
            if (done(csts))
            {
                return;
            }
            if (clock.Elapsed > timeout)
            {
                throw new NvmeTransportException(Errno.ETIMEDOUT,
                    $"{Label}: no {what} within {timeout.TotalSeconds:0.#} s (CSTS 0x{csts:x})");
            }
            await Task.Delay(5, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<IdentifyController> IdentifyControllerAsync(NvmeQueuePair admin, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(IdentifyController.Size);
        try
        {
            await ExecuteCheckedAsync(admin, NvmeCommand.Identify(1, 0), default, buffer.AsMemory(0, IdentifyController.Size), cancellationToken)
                .ConfigureAwait(false);
            return IdentifyController.Parse(buffer);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<int> SetNumberOfQueuesAsync(NvmeQueuePair admin, int count, CancellationToken cancellationToken)
    {
        var completion = await ExecuteCheckedAsync(admin, NvmeCommand.SetNumberOfQueues(count), default, default, cancellationToken)
            .ConfigureAwait(false);
        var submission = (int)(completion.Dw0 & 0xFFFF) + 1;
        var completionQueues = (int)(completion.Dw0 >> 16) + 1;
        return Math.Min(submission, completionQueues);
    }

    public async Task<IdentifyNamespace> IdentifyNamespaceAsync(uint nsid, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(IdentifyController.Size);
        try
        {
            await ExecuteAdminAsync(NvmeCommand.Identify(0, nsid), default, buffer.AsMemory(0, IdentifyController.Size), cancellationToken)
                .ConfigureAwait(false);
            return IdentifyNamespace.Parse(buffer);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Identify CNS 2: the active namespace ids, ascending.</summary>
    public async Task<IReadOnlyList<uint>> ActiveNamespacesAsync(CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(IdentifyController.Size);
        try
        {
            await ExecuteAdminAsync(NvmeCommand.Identify(2, 0), default, buffer.AsMemory(0, IdentifyController.Size), cancellationToken)
                .ConfigureAwait(false);
            var ids = new List<uint>();
            for (var i = 0; i < 1024; i++)
            {
                var id = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(i * 4));
                if (id == 0)
                {
                    break;
                }
                ids.Add(id);
            }
            return ids;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Get Log Page into <paramref name="destination"/> (length a multiple of 4).</summary>
    public async Task GetLogPageAsync(byte logId, ulong offset, Memory<byte> destination, CancellationToken cancellationToken) =>
        await ExecuteAdminAsync(NvmeCommand.GetLogPage(logId, destination.Length, offset), default, destination, cancellationToken)
            .ConfigureAwait(false);

    public async Task SendKeepAliveAsync(CancellationToken cancellationToken)
    {
        await ExecuteAdminAsync(NvmeCommand.KeepAlive(), default, default, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref _keepAlivesSent);
    }

    private async Task KeepAliveLoopAsync()
    {
        var interval = Options.KeepAliveInterval ?? Options.KeepAliveTimeout / 2;
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_disposed.Token).ConfigureAwait(false))
            {
                if (IsShutDown)
                {
                    return;
                }
                var generation = Generation;
                try
                {
                    await SendKeepAliveAsync(_disposed.Token).ConfigureAwait(false);
                }
                catch (ParaFsException) when (!_disposed.IsCancellationRequested)
                {
                    // The controller is gone (the connection dropped, or the target killed it).
                    // Bring it back now rather than at the next I/O; a failure here is retried next tick.
                    try
                    {
                        await ReconnectAsync(generation, _disposed.Token).ConfigureAwait(false);
                    }
                    catch (ParaFsException)
                    {
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            // Disposed meanwhile.
        }
    }

    // ---------------------------------------------------------------- I/O queues and recovery

    /// <summary>The next I/O queue, round robin, or the current incarnation's failure.</summary>
    public NvmeQueuePair NextIoQueue()
    {
        var queues = Current.IoQueues;
        if (queues.Length == 0)
        {
            throw new InvalidOperationException($"{Label}: a discovery controller has no I/O queues");
        }
        var index = (uint)Interlocked.Increment(ref _nextQueue) % (uint)queues.Length;
        return queues[index];
    }

    /// <summary>
    /// Rebuilds the controller if it is still at <paramref name="observedGeneration"/> (callers that
    /// saw the same failure share one reconnect): every old connection is closed, then a new admin
    /// Connect (nvmet may hand out the same CNTLID again) and new I/O queues. Tries
    /// <see cref="NvmeTcpOptions.ReconnectAttempts"/> times, 0.2 s, 0.4 s, ... apart.
    /// </summary>
    public async Task ReconnectAsync(int observedGeneration, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        cancellationToken = linked.Token;
        var asked = Environment.TickCount64;
        await _reconnectLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Generation != observedGeneration || _disposed.IsCancellationRequested || IsShutDown)
            {
                ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
                return;
            }
            // Callers that were waiting while a reconnect of this generation failed share its
            // failure instead of each running the whole sequence again, one after the other.
            if (_lastReconnectFailure is { } failure && failure.Generation == observedGeneration && failure.At >= asked)
            {
                throw failure.Error;
            }
            var old = _current;
            if (old is not null)
            {
                await old.DisposeAsync().ConfigureAwait(false);
            }
            Exception? last = null;
            for (var attempt = 0; attempt < Math.Max(1, Options.ReconnectAttempts); attempt++)
            {
                if (attempt > 0)
                {
                    await Task.Delay(200 << Math.Min(attempt - 1, 4), cancellationToken).ConfigureAwait(false);
                }
                try
                {
                    _current = await BringUpAsync(cancellationToken).ConfigureAwait(false);
                    Interlocked.Increment(ref _generation);
                    return;
                }
                catch (ParaFsException e)
                {
                    last = e;
                }
            }
            var error = new NvmeTransportException(Errno.EIO,
                $"{Label}: reconnect failed after {Options.ReconnectAttempts} attempts: {last?.Message}", last);
            _lastReconnectFailure = (observedGeneration, Environment.TickCount64, error);
            throw error;
        }
        finally
        {
            _reconnectLock.Release();
        }
    }

    /// <summary>Drops every connection as if the network had failed (tests and fault drills).</summary>
    public void FailConnections(string reason)
    {
        var current = _current;
        current?.Fail(new NvmeTransportException(Errno.EIO, $"{Label}: {reason}"));
    }

    /// <summary>Normal shutdown: CC.SHN = 01b, wait for CSTS.SHST = 10b (up to CAP.TO), then close every connection.</summary>
    public async Task ShutdownAsync(CancellationToken cancellationToken)
    {
        if (IsShutDown)
        {
            return;
        }
        IsShutDown = true;
        var current = Current;
        try
        {
            var cc = (uint)await GetPropertyAsync(current.Admin, PropertyCc, eightBytes: false, cancellationToken).ConfigureAwait(false);
            await SetPropertyAsync(current.Admin, PropertyCc, (cc & ~0xC000u) | 0x4000u, cancellationToken).ConfigureAwait(false);
            var timeout = TimeSpan.FromMilliseconds(Math.Max(1, (current.Capabilities >> 24) & 0xFF) * 500);
            await WaitForStatusAsync(current.Admin, static csts => ((csts >> 2) & 3) == 2, "CSTS.SHST = 10b (shutdown complete)", timeout,
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await current.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Stops keep-alive, shuts the controller down if it is healthy (best effort), closes every connection.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }
        _disposed.Cancel();
        try
        {
            await _keepAlive.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
        // A reconnect in progress stops at its next await (it watches _disposed); wait for it so
        // that the incarnation it may have installed is the one closed here.
        await _reconnectLock.WaitAsync().ConfigureAwait(false);
        _reconnectLock.Release();
        var current = _current;
        if (current is not null && !IsShutDown && !current.Admin.IsFaulted)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await ShutdownAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ParaFsException or OperationCanceledException)
            {
            }
        }
        if (current is not null)
        {
            await current.DisposeAsync().ConfigureAwait(false);
        }
        _current = null;
    }

    /// <summary>One bring-up's queues; a failure on any of them fails all of them.</summary>
    private sealed class Incarnation : IAsyncDisposable
    {
        public Incarnation(NvmeQueuePair admin, NvmeQueuePair[] ioQueues, ulong capabilities, uint version, IdentifyController identity)
        {
            Admin = admin;
            IoQueues = ioQueues;
            Capabilities = capabilities;
            Version = version;
            Identity = identity;
        }

        public NvmeQueuePair Admin { get; }

        public NvmeQueuePair[] IoQueues { get; }

        public ulong Capabilities { get; }

        public uint Version { get; }

        public IdentifyController Identity { get; }

        public IEnumerable<NvmeQueuePair> AllQueues => IoQueues.Prepend(Admin);

        public void Fail(Exception cause)
        {
            foreach (var queue in AllQueues)
            {
                queue.FailConnection(cause);
            }
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var queue in AllQueues)
            {
                await queue.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
