using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ParaFS.Ost;
using ParaFS.Ost.Backends;
using ParaFS.Ost.Backends.Dir;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Cli;

/// <summary>parafs ost: one object storage target, hosted until SIGTERM or Ctrl-C.</summary>
internal static class OstCommand
{
    public const string Help = """
        usage: parafs ost --data DIR --listen HOST:PORT --mds HOST:PORT[,HOST:PORT...] --pool NAME [options]
               parafs ost --backend block:PATH --listen HOST:PORT --mds HOST:PORT[,HOST:PORT...] --pool NAME [options]
               parafs ost fsck --backend block:PATH|nvme-tcp://HOST:PORT/NQN/NSID

        Serves the objects (file stripes) of one target. The first start registers with the MDS,
        which assigns the target id, and formats DIR; later starts check DIR belongs to the file
        system the MDS serves. The OST keeps serving while the MDS is away and registers again
        when it is back.

        options:
          --data DIR            the target's data directory (an empty one on the first start)
          --listen HOST:PORT    where clients connect (unix:/path for a Unix socket)
          --mds HOST:PORT       the metadata server to register with and heartbeat to; with
                                an active MDS and standbys, all their addresses, comma-separated
          --pool NAME           the pool this target belongs to (e.g. the array's vendor)
          --backend KIND        how objects are kept:
                                  dir (default) or dir:DIR   files under DIR
                                  block:PATH                 directly on a file or block device (O_DIRECT),
                                                             with its own index and journal; PATH is
                                                             formatted on the first start (it must be
                                                             blank or this target's); no --data needed
                                  nvme-tcp://HOST:PORT/NQN[/NSID]  on an NVMe namespace through ParaFS's
                                                             own NVMe/TCP host (no kernel initiator)
          --advertise HOST:PORT the address clients are told (default: the listen address)
          --open-objects N      object files kept open at once (default 1024)
          --bulk-threads N      client bulk connections (large reads and writes) served on a
                                thread of their own at once (default 512); past N, and with 0,
                                they share the thread pool
          --config FILE         settings as JSON ({"data": "...", "pool": "..."})
          --verbose true        debug logging

        Every option can also come from the environment: PARAFS_DATA, PARAFS_LISTEN, PARAFS_MDS,
        PARAFS_POOL, PARAFS_BACKEND, ... Exit status: 0 after a clean stop, 1 when it cannot start
        (e.g. DIR belongs to another file system), 2 on a usage error.

        parafs ost fsck --backend block:PATH|nvme-tcp://... (the OST stopped) checks a block store offline: its
        superblock, checkpoint and journal checksums, chunks held twice or outside the device, and
        chunks leaked past an object's end. Exit status 0 when sound, 1 when not.
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args is ["fsck", .. var rest])
        {
            return await OstFsck.RunAsync(rest).ConfigureAwait(false);
        }

        if (Daemon.WantsHelp(args))
        {
            await Console.Out.WriteLineAsync(Help).ConfigureAwait(false);
            return 0;
        }

        return await Daemon.RunAsync(() => Build(args)).ConfigureAwait(false);
    }

    private static IHost Build(string[] args)
    {
        var builder = Daemon.CreateBuilder(args);
        var configuration = builder.Configuration;
        var backend = configuration["backend"] ?? DirBackend.BackendName;
        BackendSpec spec;
        try
        {
            spec = BackendSpec.Parse(backend, configuration["data"] is { } d ? Path.GetFullPath(d) : null);
        }
        catch (ParaFS.Common.ParaFsException e)
        {
            throw new UsageException($"parafs ost: {e.Message}");
        }

        var options = new OstOptions
        {
            DataDirectory = spec.IsDirectory ? Path.GetFullPath(spec.Location) : spec.Location,
            Listen = Endpoint(configuration, "listen"),
            Mds = Endpoint(configuration, "mds"),
            Pool = Daemon.Require(configuration, "pool", "ost"),
            Backend = spec.IsDirectory ? DirBackend.BackendName : backend,
            Advertise = configuration["advertise"],
            OpenObjectLimit = configuration["open-objects"] is { } n ? Number(n, "open-objects") : 1024,
            BulkThreads = configuration["bulk-threads"] is { } b ? Number(b, "bulk-threads", allowZero: true) : 512,
        };

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(sp => new OstServer(options, sp.GetRequiredService<ILoggerFactory>()));
        builder.Services.AddHostedService(sp => new OstHostedService(sp.GetRequiredService<OstServer>()));
        return builder.Build();

        RpcEndpoint Endpoint(Microsoft.Extensions.Configuration.IConfiguration c, string key)
        {
            var text = Daemon.Require(c, key, "ost");
            try
            {
                return RpcEndpoint.Parse(text);
            }
            catch (FormatException e)
            {
                throw new UsageException($"parafs ost: --{key}: {e.Message}");
            }
        }
    }

    private static int Number(string text, string key, bool allowZero = false) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && (n > 0 || (allowZero && n == 0))
            ? n
            : throw new UsageException($"parafs ost: --{key} wants a {(allowZero ? "number (0 or more)" : "positive number")}, not '{text}'");
}
