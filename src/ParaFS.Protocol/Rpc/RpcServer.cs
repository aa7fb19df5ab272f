using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// Accepts connections (TCP or a Unix domain socket), shakes hands, and dispatches calls by method
/// id to the handlers registered in its <see cref="RpcDispatcher"/>.
/// </summary>
public sealed class RpcServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<long, RpcServerConnection> _connections = new();
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private long _lastConnectionId;
    private volatile string _fileSystemId;

    public RpcServer(RpcServerOptions options, RpcDispatcher dispatcher, ILoggerFactory? loggerFactory = null)
    {
        Options = options;
        Dispatcher = dispatcher;
        BulkThreadPlaces = new BulkThreadBudget(options.MaxBulkThreads);
        _fileSystemId = options.FileSystemId;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("ParaFS.Rpc");
    }

    public RpcServerOptions Options { get; }

    public RpcDispatcher Dispatcher { get; }

    /// <summary>The file system this server answers for; set once known (an OST learns it at registration).</summary>
    public string FileSystemId
    {
        get => _fileSystemId;
        set => _fileSystemId = value;
    }

    /// <summary>Where the server listens, with the port it was given when it asked for 0.</summary>
    public RpcEndpoint Endpoint { get; private set; } = null!;

    public ICollection<RpcServerConnection> Connections => _connections.Values;

    /// <summary>Bulk connections served on threads of their own right now (at most <see cref="RpcServerOptions.MaxBulkThreads"/>).</summary>
    public int BulkThreads => BulkThreadPlaces.InUse;

    internal BulkThreadBudget BulkThreadPlaces { get; }

    /// <summary>Raised when a connection has closed and its receive loop has ended.</summary>
    public event Action<RpcServerConnection>? ConnectionClosed;

    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Options.Listen.IsList)
        {
            throw new IOException($"cannot listen on {Options.Listen}: a server listens on one address");
        }

        var address = await Options.Listen.ResolveAsync(cancellationToken).ConfigureAwait(false);
        Socket listener;
        if (Options.Listen.IsUnix)
        {
            // A socket file left by a process that died would make bind fail.
            File.Delete(Options.Listen.UnixPath!);
            listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        }
        else
        {
            // No ReuseAddress: on Linux .NET turns it into SO_REUSEPORT too, and a second server
            // could then bind a port that is in use. (.NET already lets a restarted server bind
            // past connections in TIME_WAIT.)
            listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        }

        try
        {
            listener.Bind(address);
            listener.Listen(512);
        }
        catch (SocketException e)
        {
            listener.Dispose();
            throw new IOException($"cannot listen on {Options.Listen}: {e.Message}; is another server using that address?", e);
        }

        _listener = listener;
        Endpoint = Options.Listen.IsUnix ? Options.Listen : RpcEndpoint.FromEndPoint((IPEndPoint)listener.LocalEndPoint!);
        Log.Listening(_logger, Endpoint.Text);
        _acceptLoop = Task.Run(AcceptLoopAsync, CancellationToken.None);
    }

    /// <summary>Stops accepting, closes every connection and waits for their receive loops to end.</summary>
    public async Task StopAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        foreach (var connection in _connections.Values)
        {
            connection.Abort("the server is shutting down");
        }

        await Task.WhenAll(_connections.Values.Select(c => c.Completion)).ConfigureAwait(false);
        if (Options.Listen.IsUnix)
        {
            File.Delete(Options.Listen.UnixPath!);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener!.AcceptAsync(_stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                Log.AcceptFailed(_logger, Endpoint.Text, e.Message);
                continue;
            }

            if (!Options.Listen.IsUnix)
            {
                socket.NoDelay = true;
            }

            var id = Interlocked.Increment(ref _lastConnectionId);
            var address = socket.RemoteEndPoint?.ToString() is { Length: > 0 } remote ? remote : $"local socket #{id}";
            var connection = new RpcServerConnection(this, socket, id, address, _logger);
            _connections[id] = connection;
            Log.ConnectionAccepted(_logger, address);
            _ = connection.Completion.ContinueWith(
                static (_, s) =>
                {
                    var (server, c) = ((RpcServer, RpcServerConnection))s!;
                    server._connections.TryRemove(KeyValuePair.Create(c.Id, c));
                    server.ConnectionClosed?.Invoke(c);
                },
                (this, connection),
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
            connection.Start();
        }
    }
}
