using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.FuseAdapter;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Cli;

/// <summary>parafs mount and parafs umount: the client daemon of one mount.</summary>
internal static class MountCommand
{
    public const string Help = """
        usage: parafs mount MDS_HOST:PORT[,MDS_HOST:PORT...] MOUNTPOINT [-o OPTIONS] [-d] [--verbose]
               parafs umount MOUNTPOINT

        Mounts the file system served by the MDS at MOUNTPOINT (fstype fuse.parafs) and serves it
        in the foreground until SIGINT or SIGTERM, which unmount cleanly. -d runs it in the
        background and returns once the mount is up (its log goes to /tmp/parafs-mount-PID.log).
        With several MDS addresses (an active MDS and its standbys on one PostgreSQL store) the
        mount uses the one that answers, and moves to the next if it dies, keeping open files.

          -o allow_other      let other users use the mount (the default when root mounts)
          -o private          only the user who mounted may use it
          -o readers=N        threads reading /dev/fuse (default 4)
          -o lease=SECONDS    how long the kernel keeps names and attributes the MDS answered
                              (default 30): the MDS calls back when one changes, and a lost MDS
                              connection drops them all; 0: no leases
          -o cache=SECONDS    how long the kernel trusts what is not leased (default 1)
          -o readahead=KB     the kernel's read-ahead for the mount (default 4096; 0 keeps the kernel's)
          -o readprio=on|off  pace large writes while they slow small reads down (default on)
          -o flock            fcntl record locks and flock(2) hold across every mount: the MDS
                              keeps them (the default)
          -o localflock       locks are this machine's only (the kernel's own), as with Lustre's
                              localflock: faster, but another node does not see them
          -o bulkthreads=N    OST connections for large reads and writes (2 per OST) that run on
                              threads of their own (default 256; past N, and with 0, they share
                              the thread pool)
          (other -o options that mount(8) passes, such as rw, dev, suid, are accepted and ignored)

        For /etc/fstab, install scripts/mount.fuse.parafs as /sbin/mount.fuse.parafs:
          127.0.0.1:7000  /mnt/parafs  fuse.parafs  defaults,_netdev  0 0
        """;

    public static async Task<int> MountAsync(string[] argv)
    {
        if (argv.Any(a => a is "--help" or "-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }

        try
        {
            var args = new Tools.ToolArgs("mount", argv, ["-o"], ["-d", "--verbose"]);
            if (args.Paths.Count != 2)
            {
                throw new UsageException("parafs mount: give MDS_HOST:PORT and MOUNTPOINT; see parafs mount --help");
            }

            var mds = RpcEndpoint.Parse(args.Paths[0]);
            var mountPoint = Path.GetFullPath(args.Paths[1]);
            var settings = Settings(args.Value("-o") ?? "");
            return args.Has("-d")
                ? await DaemonizeAsync(argv.Where(a => a != "-d").ToArray(), mountPoint).ConfigureAwait(false)
                : await ServeAsync(mds, mountPoint, settings, args.Has("--verbose")).ConfigureAwait(false);
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 2;
        }
        catch (FormatException e)
        {
            await Console.Error.WriteLineAsync($"parafs mount: {e.Message}").ConfigureAwait(false);
            return 2;
        }
        catch (Exception e) when (e is ParaFsException or IOException)
        {
            await Console.Error.WriteLineAsync($"parafs mount: {e.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    public static int Unmount(string[] argv)
    {
        if (argv is not [var path] || path is "--help" or "-h")
        {
            Console.WriteLine("usage: parafs umount MOUNTPOINT\n\nUnmounts a ParaFS mount, also one whose daemon died (then callers saw ENOTCONN).");
            return argv is [_] ? 0 : 2;
        }

        var full = Path.GetFullPath(path);
        try
        {
            if (!Fuse.FuseSession.Unmount(full, lazy: false))
            {
                Console.Error.WriteLine($"parafs umount: nothing is mounted at {full}");
                return 1;
            }

            Console.WriteLine($"unmounted {full}");
            return 0;
        }
        catch (Exception e) when (e is IOException)
        {
            try
            {
                // Busy (a shell inside it) or a dead daemon: detach it now, the kernel finishes later.
                Fuse.FuseSession.Unmount(full, lazy: true);
                Console.WriteLine($"unmounted {full} (lazily: it was busy or its daemon was gone)");
                return 0;
            }
            catch (Exception again) when (again is IOException)
            {
                Console.Error.WriteLine($"parafs umount: {path}: {again.Message}");
                return 1;
            }
        }
    }

    private static async Task<int> ServeAsync(RpcEndpoint mds, string mountPoint, MountSettings settings, bool verbose)
    {
        using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(verbose ? LogLevel.Information : LogLevel.Warning));
        using var stop = new StopSignals();

        ParaFsMount mount;
        using (var connect = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
        {
            connect.CancelAfter(TimeSpan.FromSeconds(15));
            try
            {
                mount = await ParaFsMount.MountAsync(mds, mountPoint, settings, loggerFactory, connect.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stop.Requested)
            {
                throw new ParaFsException(Errno.ETIMEDOUT, $"cannot reach the MDS at {mds} (no answer in 15 s); is `parafs mds` running there?");
            }
        }

        await using (mount)
        {
            Console.WriteLine($"mounted {mount.FileSystemName} ({mount.FileSystemId}) from {mds} at {mountPoint}; Ctrl-C or SIGTERM unmounts");
            await Task.WhenAny(mount.Completion, stop.WhenRequested).ConfigureAwait(false);
        }

        Console.WriteLine($"unmounted {mountPoint}");
        return 0;
    }

    private static async Task<int> DaemonizeAsync(string[] argv, string mountPoint)
    {
        var log = Path.Combine(Path.GetTempPath(), $"parafs-mount-{Environment.ProcessId}.log");
        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo("setsid") { UseShellExecute = false, RedirectStandardOutput = false, RedirectStandardError = false };
        info.ArgumentList.Add("sh");
        info.ArgumentList.Add("-c");
        var command = Path.GetFileNameWithoutExtension(self) == "dotnet"
            ? $"exec '{self}' '{typeof(MountCommand).Assembly.Location}' mount"
            : $"exec '{self}' mount";
        info.ArgumentList.Add($"{command} {string.Join(' ', argv.Select(a => $"'{a.Replace("'", "'\\''", StringComparison.Ordinal)}'"))} >'{log}' 2>&1 </dev/null");
        using var child = Process.Start(info) ?? throw new IOException("cannot start the background mount daemon (setsid)");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ') is var f && f.Length > 4 && f[4] == mountPoint && l.Contains(" - fuse.parafs ", StringComparison.Ordinal)))
            {
                Console.WriteLine($"mounted at {mountPoint} (daemon log: {log})");
                return 0;
            }

            if (child.HasExited && child.ExitCode != 0)
            {
                break;
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        await Console.Error.WriteLineAsync($"parafs mount: the background daemon did not mount {mountPoint}; its log {log} says:\n{(File.Exists(log) ? await File.ReadAllTextAsync(log).ConfigureAwait(false) : "(nothing)")}").ConfigureAwait(false);
        return 1;
    }

    /// <summary>The -o options of a mount (parafs mount and parafs up take the same).</summary>
    internal static MountSettings Settings(string options)
    {
        var settings = new MountSettings();
        foreach (var option in options.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var (key, value) = option.Split('=', 2) is [var k, var v] ? (k, v) : (option, "");
            settings = key switch
            {
                "allow_other" => settings with { AllowOther = true },
                "private" => settings with { AllowOther = false },
                "readers" => settings with { ReaderThreads = int.TryParse(value, out var n) && n is >= 1 and <= 64 ? n : throw new UsageException($"parafs mount: -o readers={value}: a number from 1 to 64") },
                "readprio" => settings with { ReadPriority = value switch { "on" or "" => true, "off" => false, _ => throw new UsageException($"parafs mount: -o readprio={value}: on or off") } },
                "flock" => settings with { ClusterLocks = true },
                "localflock" => settings with { ClusterLocks = false },
                "bulkthreads" => settings with { Client = settings.Client with { BulkThreadConnections = int.TryParse(value, out var b) && b is >= 0 and <= 65536 ? b : throw new UsageException($"parafs mount: -o bulkthreads={value}: a number from 0 to 65536") } },
                "readahead" => settings with { ReadAheadKb = int.TryParse(value, out var kb) && kb >= 0 ? kb : throw new UsageException($"parafs mount: -o readahead={value}: KiB, e.g. 4096") },
                "lease" => settings with { Lease = double.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var t) && t >= 0 ? TimeSpan.FromSeconds(t) : throw new UsageException($"parafs mount: -o lease={value}: seconds, e.g. 30 (0: no leases, everything lives -o cache seconds)") },
                "cache" => settings with { CacheTimeout = double.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out var s) && s >= 0 ? TimeSpan.FromSeconds(s) : throw new UsageException($"parafs mount: -o cache={value}: seconds, e.g. 1 or 0.5") },
                _ => settings,
            };
        }

        return settings;
    }
}
