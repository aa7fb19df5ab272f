using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ParaFS.Fuse.Mounting;
using ParaFS.Fuse.Session;
using ParaFS.Fuse.Transport;

namespace ParaFS.Fuse;

/// <summary>
/// A mounted FUSE connection and the loop that serves it.
/// <para>
/// <see cref="Mount"/> mounts (the kernel then holds every access to the mount until INIT is
/// answered, so call <see cref="RunAsync"/> right away); <see cref="RunAsync"/> starts the reader
/// threads and completes when the kernel ends the session (unmount, abort) or when its token is
/// cancelled, in which case it unmounts first. Disposing stops a running session the same way and
/// unmounts a session that never ran.
/// </para>
/// <para>
/// Threading: <see cref="FuseMountOptions.ReaderThreads"/> dedicated threads each read one
/// request at a time from their own cloned /dev/fuse descriptor into a page-aligned native
/// buffer. A handler runs on the reader thread until its first incomplete await; the reader
/// then goes on with the next request while the handler completes on the thread pool, and its
/// reply is one writev on the descriptor the request came from. FORGET, BATCH_FORGET and INIT are
/// handled on the reader thread itself.
/// </para>
/// </summary>
public sealed partial class FuseSession : IDisposable, IAsyncDisposable
{
    private readonly IFuseChannel _channel;
    private readonly FuseMountOptions _options;
    private readonly ILogger _logger;
    private readonly int _bufferSize;
    private readonly int _readerCount;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<IFuseChannel> _clones = [];
    private readonly ConcurrentStack<Request> _freeRequests = new();
    private int _freeCount;
    private int _running;
    private int _disposed;
    private bool _mounted;
    private Task? _run;

    private FuseSession(IFuseChannel channel, FuseMountOptions options, string? mountPoint)
    {
        if (options.MaxWrite is < 4096 or > 16 * 1024 * 1024 || options.MaxWrite % 4096 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxWrite, "MaxWrite must be a multiple of 4096 between 4 KiB and 16 MiB");
        }

        if (options.ReaderThreads is < 1 or > 256)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ReaderThreads, "ReaderThreads must be between 1 and 256");
        }

        _channel = channel;
        _options = options;
        _logger = options.Logger ?? StderrLogger.Instance;
        _readerCount = options.ReaderThreads;

        // libfuse's FUSE_BUFFER_HEADER_SIZE: the kernel refuses a read smaller than max_write + 80 (reference 4.1).
        _bufferSize = options.MaxWrite + 4096;
        MountPoint = mountPoint;
        _mounted = mountPoint is not null;
    }

    /// <summary>The full path of the mount point; null for a session not backed by a mount.</summary>
    public string? MountPoint { get; }

    /// <summary>
    /// Mounts a new FUSE file system at <see cref="FuseMountOptions.MountPoint"/>: mount(2) as root,
    /// fusermount3 otherwise. Throws <see cref="FuseMountException"/> when the mount point is
    /// missing, not a directory, already mounted or dead, naming the path and the remedy.
    /// </summary>
    public static FuseSession Mount(FuseMountOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.MountPoint);
        var mountPoint = Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.MountPoint));
        var fd = KernelMount.Mount(options, mountPoint);
        DeviceChannel channel;
        try
        {
            channel = new DeviceChannel(fd);
        }
        catch
        {
            Interop.Libc.Close(fd);
            KernelMount.Unmount(mountPoint, lazy: true);
            throw;
        }

        return new FuseSession(channel, options, mountPoint);
    }

    /// <summary>
    /// Unmounts whatever is mounted at <paramref name="mountPoint"/> (umount2, or fusermount3 -u
    /// for an ordinary user); <paramref name="lazy"/> detaches it even while busy (MNT_DETACH).
    /// For recovering a mount point left by a dead daemon. Returns false if nothing was mounted
    /// there; throws <see cref="FuseMountException"/> if it is busy and not lazy.
    /// </summary>
    public static bool Unmount(string mountPoint, bool lazy = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(mountPoint);
        return KernelMount.Unmount(Path.TrimEndingDirectorySeparator(Path.GetFullPath(mountPoint)), lazy);
    }

    /// <summary>
    /// Serves requests with <paramref name="fileSystem"/> until the kernel ends the session
    /// (the file system was unmounted: read returned ENODEV) or <paramref name="cancellationToken"/>
    /// is cancelled, in which case it unmounts (lazily if busy) and completes normally. Before
    /// completing it cancels the tokens of requests still in flight, waits for them, and calls
    /// <see cref="IFuseFileSystem.Destroy"/>. Faults only if a reader failed unexpectedly.
    /// May be called once.
    /// </summary>
    public Task RunAsync(IFuseFileSystem fileSystem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fileSystem);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (Interlocked.Exchange(ref _running, 1) != 0)
        {
            throw new InvalidOperationException("RunAsync may be called once per session");
        }

        _fileSystem = fileSystem;
        _run = RunCoreAsync(cancellationToken);
        return _run;
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_run is { } run)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await run.ConfigureAwait(false);
            }
            catch (IOException)
            {
                // Already reported by RunAsync's own task.
            }
        }
        else if (_mounted)
        {
            // Never served: close the descriptor first, which aborts the connection (INIT was
            // never answered), so the unmount cannot wait on this process (libfuse does the same).
            _channel.Dispose();
            UnmountQuietly(lazy: false);
        }

        _channel.Dispose();
        foreach (var clone in _clones)
        {
            clone.Dispose();
        }

        _stop.Dispose();
        _notifications.Dispose();
        _initDone.Dispose();
        while (_freeRequests.TryPop(out var request))
        {
            ((IDisposable)request).Dispose();
        }
    }

    /// <summary>Builds a session over an already connected channel (tests use a fake one).</summary>
    internal static FuseSession ForChannel(IFuseChannel channel, FuseMountOptions options) => new(channel, options, mountPoint: null);

    internal static string FileSystemType(FuseMountOptions options) =>
        string.IsNullOrEmpty(options.Subtype) ? "fuse" : "fuse." + options.Subtype;

    /// <summary>Unmounts, falling back to a lazy detach when busy; failures are logged, not thrown.</summary>
    private void UnmountQuietly(bool lazy)
    {
        if (MountPoint is null || !_mounted)
        {
            return;
        }

        _mounted = false;
        try
        {
            KernelMount.Unmount(MountPoint, lazy);
        }
        catch (FuseMountException) when (!lazy)
        {
            try
            {
                KernelMount.Unmount(MountPoint, lazy: true);
            }
            catch (FuseMountException e)
            {
                Log.UnmountFailed(_logger, MountPoint, e.Message);
            }
        }
        catch (FuseMountException e)
        {
            Log.UnmountFailed(_logger, MountPoint, e.Message);
        }
    }
}
