using System.Globalization;
using ParaFS.Client;
using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Cli.Tools;

/// <summary>parafs migrate: restripes files onto another pool or layout while they stay in use (lfs migrate).</summary>
internal static class MigrateCommand
{
    public const string Help = """
        usage: parafs migrate [-p POOL] [-c COUNT] [-S SIZE] [-r] [--throttle MB/s] [-j N] [--json] [--mds HOST:PORT] PATH...
               parafs migrate --abort [-r] PATH...

        Moves each file's data onto a new layout while the file stays open and in use by any
        client: writers are never stopped for the copy. The copy is checked byte for byte, chunk
        by chunk, before one MDS transaction switches the file over; the old objects are deleted
        once every client holding the file open has moved on. Interrupted (Ctrl-C, a restart), a file stays
        whole on its old layout: run the same command again to resume, or --abort to roll back.

          -p, --pool POOL            the pool to move to (default: the file's own)
          -c, --stripe-count COUNT   targets per file (-1: all targets of the pool; default: keep)
          -S, --stripe-size SIZE     bytes per stripe, a multiple of 4K (default: keep)
          -r, --recursive            every file under the directories given
          --throttle MB/s            copy at most this many MB (10^6 bytes) per second in all
          -j, --parallel N           files copied at once (default 4)
          --json                     JSON lines on stdout: progress, one per file, a summary
          --abort                    give up migrations in progress (the files keep their old layout)
        """;

    public static Task<int> RunAsync(string[] argv) => ToolSession.RunAsync("migrate", Help, argv, async () =>
    {
        var args = new ToolArgs("migrate", argv,
            ["-p", "--pool", "-c", "--stripe-count", "-S", "--stripe-size", "--throttle", "-j", "--parallel", "--mds"],
            ["-r", "--recursive", "--json", "--abort"]);
        if (args.Paths.Count == 0)
        {
            throw new UsageException("parafs migrate: give at least one PATH; see parafs migrate --help");
        }

        var policy = new LayoutPolicy { Pool = args.Value("-p", "--pool") ?? "" };
        if (args.Value("-c", "--stripe-count") is { } count)
        {
            policy.StripeCount = int.TryParse(count, out var c) && c >= -1 && c != 0 ? c : throw new UsageException($"parafs migrate: -c {count}: a stripe count is a positive number or -1");
        }

        if (args.Value("-S", "--stripe-size") is { } size)
        {
            var bytes = Sizes.Parse(size, "parafs migrate -S");
            policy.StripeSize = bytes is > 0 and <= uint.MaxValue && bytes % 4096 == 0 ? (uint)bytes : throw new UsageException($"parafs migrate: -S {size}: a stripe size is a multiple of 4K up to 4G");
        }

        var parallel = args.Value("-j", "--parallel") is { } j
            ? int.TryParse(j, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new UsageException($"parafs migrate: -j {j} is not a positive number")
            : 4;
        var throttle = Throttle(args, "migrate");
        var files = Collect(args.Paths, args.Has("-r", "--recursive"));

        using var stop = new StopSignals();
        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, args.Paths[0])).ConfigureAwait(false);
        if (args.Has("--abort"))
        {
            foreach (var (path, ino, _) in files)
            {
                var layout = await session.Client.AbortMigrationAsync(session.Caller, ino).ConfigureAwait(false);
                Console.WriteLine($"{path}: stays on pool {layout.Pool} (generation {layout.Generation})");
            }

            return 0;
        }

        using var reporter = new MigrationReporter("migrate", args.Has("--json"));
        reporter.AddWork(files.Count, files.Sum(f => f.Size));
        var options = new MigrationOptions { Throttle = throttle, Waiting = reporter.Waiting };
        var interrupted = await RunFilesAsync(session, files.Select(f => (f.Path, f.Ino)), policy, options, parallel, reporter, stop.Token).ConfigureAwait(false);
        reporter.Finish(interrupted);
        return interrupted ? 130 : reporter.Failed > 0 ? 1 : 0;
    });

    /// <summary>Migrates the files, <paramref name="parallel"/> at a time; true when stopped by a signal.</summary>
    public static async Task<bool> RunFilesAsync(
        ToolSession session, IEnumerable<(string Name, ulong Ino)> files, LayoutPolicy policy, MigrationOptions options, int parallel,
        MigrationReporter reporter, CancellationToken cancellationToken)
    {
        try
        {
            await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = parallel, CancellationToken = cancellationToken }, async (file, ct) =>
            {
                try
                {
                    var result = await session.Client.MigrateAsync(session.Caller, file.Ino, policy, options, reporter.Copied, ct).ConfigureAwait(false);
                    reporter.FileDone(file.Name, file.Ino, result);
                }
                catch (ParaFsException e) when (e.Errno == Errno.ENOENT)
                {
                    // Removed while we worked: nothing left to move.
                    reporter.FileDone(file.Name, file.Ino, new MigrationResult(MigrationOutcome.AlreadyThere, new Layout(), 0, 0, 0, TimeSpan.Zero, TimeSpan.Zero));
                }
                catch (ParaFsException e)
                {
                    reporter.FileFailed(file.Name, e.Message);
                }
            }).ConfigureAwait(false);
            return false;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return true;
        }
    }

    public static MigrationThrottle? Throttle(ToolArgs args, string verb) => args.Value("--throttle") is { } t
        ? double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var mb) && mb > 0
            ? new MigrationThrottle((long)(mb * 1_000_000))
            : throw new UsageException($"parafs {verb}: --throttle {t} is not a positive number of MB/s")
        : null;

    /// <summary>The regular files named or (with -r) under the directories named, each inode once.</summary>
    private static List<(string Path, ulong Ino, long Size)> Collect(IEnumerable<string> paths, bool recursive)
    {
        var seen = new HashSet<ulong>();
        var list = new List<(string, ulong, long)>();
        foreach (var path in paths)
        {
            IEnumerable<string> candidates;
            if (Directory.Exists(path))
            {
                if (!recursive)
                {
                    throw new UsageException($"parafs migrate: {path} is a directory; give -r to migrate every file under it");
                }

                candidates = Directory.EnumerateFiles(path, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true });
            }
            else if (File.Exists(path))
            {
                candidates = [path];
            }
            else
            {
                throw new ParaFsException(Errno.ENOENT, $"{path}: no such file or directory");
            }

            foreach (var file in candidates)
            {
                var info = new FileInfo(file);
                if (info.LinkTarget is not null)
                {
                    continue;
                }

                var ino = MountedPath.Inode(file);
                if (seen.Add(ino))
                {
                    list.Add((file, ino, info.Length));
                }
            }
        }

        return list;
    }
}
