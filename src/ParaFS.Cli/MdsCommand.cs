using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ParaFS.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Cli;

/// <summary>parafs mds: the metadata server, hosted until SIGINT or SIGTERM.</summary>
internal static class MdsCommand
{
    public const string Help = """
        usage: parafs mds (--data DIR | --store POSTGRES) --listen HOST:PORT [--fsname NAME] [--root-pool POOL] [--config FILE]

        Runs the metadata server. The first start formats the store (a new file system with a new
        id, the root directory, and the root default layout: 1 MiB stripes over 4 targets of pool
        'default'); later starts serve what it holds.

        The store is SQLite in DIR (one MDS per file system) or a PostgreSQL database, given as a
        connection string ("Host=db1;Database=parafs;Username=parafs;Password=...") or a URL
        (postgres://parafs:PASSWORD@db1:5432/parafs). Several MDS processes may share one
        PostgreSQL database: one serves, the others wait as standbys (not listening) and the
        first to get the database's leader lock takes over within a second when it dies.

          --data DIR          where the SQLite database lives (DIR/mds.db)        PARAFS_DATA
          --store POSTGRES    a PostgreSQL database instead of SQLite             PARAFS_STORE
          --listen HOST:PORT  address to serve on (unix:/path for a socket)       PARAFS_LISTEN
          --fsname NAME       the file system's name, at format time              PARAFS_FSNAME
          --root-pool POOL    pool of the root default layout, at format time     PARAFS_ROOT_POOL
          --heartbeat-ms N    how often OSTs heartbeat (default 3000)             PARAFS_HEARTBEAT_MS
          --lease-ms N        how long a vanished client keeps its opens and      PARAFS_LEASE_MS
                              locks (30000), and how long a restarted MDS waits for
                              clients to come back (migrations do not cut over and
                              no new advisory lock is granted until then)
          --config FILE       JSON file with the same keys ("data", "listen", ...)
        """;

    public static Task<int> RunAsync(string[] args)
    {
        if (Daemon.WantsHelp(args))
        {
            Console.WriteLine(Help);
            return Task.FromResult(0);
        }

        return Daemon.RunAsync(() =>
        {
            var builder = Daemon.CreateBuilder(args);
            var config = builder.Configuration;
            var store = config["store"] is { Length: > 0 } s && s != "sqlite" ? s : null;
            var options = new MdsOptions
            {
                DataDirectory = store is null ? Path.GetFullPath(Daemon.Require(config, "data", "mds")) : config["data"] ?? "",
                Store = store,
                Listen = ParseEndpoint(Daemon.Require(config, "listen", "mds")),
                FileSystemName = config["fsname"] ?? "parafs",
                RequireFileSystemName = config["fsname"] is not null,
                RootPool = config["root-pool"] ?? config["root_pool"] ?? "default",
                HeartbeatInterval = TimeSpan.FromMilliseconds(int.Parse(config["heartbeat-ms"] ?? config["heartbeat_ms"] ?? "3000", System.Globalization.CultureInfo.InvariantCulture)),
                SessionLease = TimeSpan.FromMilliseconds(int.Parse(config["lease-ms"] ?? config["lease_ms"] ?? "30000", System.Globalization.CultureInfo.InvariantCulture)),
            };
            builder.Services.AddSingleton(options);
            builder.Services.AddHostedService<MdsHostedService>();
            return builder.Build();
        });
    }

    internal static RpcEndpoint ParseEndpoint(string text)
    {
        try
        {
            return RpcEndpoint.Parse(text);
        }
        catch (FormatException e)
        {
            throw new UsageException($"parafs: {e.Message}");
        }
    }

    private sealed class MdsHostedService(MdsOptions options, ILoggerFactory loggerFactory, IHostApplicationLifetime lifetime) : IHostedService
    {
        private MdsServer? _server;

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            try
            {
                _server = await MdsServer.StartAsync(options, loggerFactory, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Stopped while waiting as a standby: nothing was served, nothing to stop.
                return;
            }

            // A leader that lost its lock has stopped serving; the process ends (exit 1) so a
            // supervisor can start it again, as a standby.
            _ = _server.Deposed.ContinueWith(
                _ =>
                {
                    Environment.ExitCode = 1;
                    lifetime.StopApplication();
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            if (_server is not null)
            {
                await _server.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
