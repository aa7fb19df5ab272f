using System.Globalization;
using ParaFS.Client;
using ParaFS.Protocol.Mds;

namespace ParaFS.Cli.Tools;

/// <summary>parafs drain: moves every object off a target and retires it (what lfs_migrate does after lctl set_param ... max_create_count=0).</summary>
internal static class DrainCommand
{
    public const string Help = """
        usage: parafs drain TARGET [-p POOL] [--throttle MB/s] [-j N] [--json] [--mds HOST:PORT] [PATH]

        Marks target TARGET draining (nothing new is placed on it), migrates every file with an
        object on it to the other targets of its pool (or to POOL), waits until its objects are
        deleted, and marks it retired. Files stay in use throughout, as with parafs migrate.
        Interrupted, the target stays draining: run the same command again to go on, or
        parafs drain TARGET --undo to put it back in service. Root only.

          -p, --pool POOL            move the files to this pool (default: each file's own)
          --throttle MB/s            copy at most this many MB (10^6 bytes) per second in all
          -j, --parallel N           files copied at once (default 4)
          --json                     JSON lines on stdout: progress, one per file, a summary
          --undo                     set the target up again (files already moved stay moved)
          --wait SECONDS             how long to wait for the last objects' deletion (default 120)
        """;

    public static Task<int> RunAsync(string[] argv) => ToolSession.RunAsync("drain", Help, argv, async () =>
    {
        var args = new ToolArgs("drain", argv, ["-p", "--pool", "--throttle", "-j", "--parallel", "--mds", "--wait"], ["--json", "--undo"]);
        if (args.Paths.Count is 0 or > 2 || !uint.TryParse(args.Paths[0], NumberStyles.None, CultureInfo.InvariantCulture, out var target) || target == 0)
        {
            throw new UsageException("parafs drain: give a target id (parafs targets lists them), then optionally a PATH in the mount; see parafs drain --help");
        }

        var parallel = args.Value("-j", "--parallel") is { } j
            ? int.TryParse(j, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : throw new UsageException($"parafs drain: -j {j} is not a positive number")
            : 4;
        var wait = args.Value("--wait") is { } w
            ? int.TryParse(w, NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? TimeSpan.FromSeconds(s) : throw new UsageException($"parafs drain: --wait {w} is not a number of seconds")
            : TimeSpan.FromSeconds(120);
        var json = args.Has("--json");
        using var stop = new StopSignals();
        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, args.Paths.ElementAtOrDefault(1))).ConfigureAwait(false);
        var client = session.Client;
        var info = (await client.ListTargetsAsync().ConfigureAwait(false)).FirstOrDefault(t => t.TargetId == target)
            ?? throw new UsageException($"parafs drain: no target {target} is registered; parafs targets lists them");
        if (args.Has("--undo"))
        {
            await client.SetTargetStateAsync(session.Caller, target, TargetState.Up).ConfigureAwait(false);
            Console.WriteLine($"target {target} is up again: new files may be placed on it");
            return 0;
        }

        await client.SetTargetStateAsync(session.Caller, target, TargetState.Draining).ConfigureAwait(false);
        if (!json)
        {
            Console.Error.WriteLine($"target {target} (pool {info.Pool}, {info.Usage.Objects} objects) is draining: nothing new is placed on it");
        }

        var policy = new LayoutPolicy { Pool = args.Value("-p", "--pool") ?? "" };
        using var reporter = new MigrationReporter("drain", json);
        var options = new MigrationOptions { Throttle = MigrateCommand.Throttle(args, "drain"), AvoidTarget = target, Waiting = reporter.Waiting };

        // Rounds until no file has data (or a migration in progress) on the target: a scan may
        // meet files created just before the drain began.
        for (var round = 0; ; round++)
        {
            var files = new List<(string Name, ulong Ino)>();
            ulong after = 0;
            do
            {
                var page = await client.ListFilesAsync(after, 1024, target, stop.Token).ConfigureAwait(false);
                foreach (var file in page.Files)
                {
                    var layout = file.Layout;
                    if (layout.Pending?.Objects.Any(o => o.TargetId == target) == true)
                    {
                        // A migration onto the draining target was under way: it restarts elsewhere.
                        await client.AbortMigrationAsync(session.Caller, file.Ino, stop.Token).ConfigureAwait(false);
                    }

                    if (layout.Objects.Any(o => o.TargetId == target) || layout.Pending?.Objects.Any(o => o.TargetId == target) == true)
                    {
                        files.Add(($"inode {file.Ino}", file.Ino));
                        reporter.AddWork(1, (long)file.Size);
                    }
                }

                after = page.NextAfter;
            }
            while (after != 0);

            if (files.Count == 0)
            {
                break;
            }

            if (round >= 5)
            {
                reporter.Finish(interrupted: false);
                await Console.Error.WriteLineAsync($"parafs drain: {files.Count} files still have data on target {target} after {round} rounds; run the command again").ConfigureAwait(false);
                return 1;
            }

            if (await MigrateCommand.RunFilesAsync(session, files, policy, options, parallel, reporter, stop.Token).ConfigureAwait(false))
            {
                reporter.Finish(interrupted: true);
                return 130;
            }

            if (reporter.Failed > 0)
            {
                reporter.Finish(interrupted: false);
                await Console.Error.WriteLineAsync($"parafs drain: target {target} stays draining; fix the errors above and run the command again").ConfigureAwait(false);
                return 1;
            }
        }

        reporter.Finish(interrupted: false);

        // The old objects go once every client holding their files moved on; the OST's count says when.
        var deadline = DateTime.UtcNow + wait;
        ulong left;
        while (true)
        {
            left = (await client.ListTargetsAsync(stop.Token).ConfigureAwait(false)).First(t => t.TargetId == target).Usage.Objects;
            var referenced = await CountReferencesAsync(client, target, stop.Token).ConfigureAwait(false);
            if ((left == 0 && referenced == 0) || DateTime.UtcNow > deadline)
            {
                break;
            }

            if (!json)
            {
                Console.Error.WriteLine($"drain: waiting for {left} objects on target {target} to be deleted");
            }

            await Task.Delay(TimeSpan.FromSeconds(1), stop.Token).ConfigureAwait(false);
        }

        await client.SetTargetStateAsync(session.Caller, target, TargetState.Retired).ConfigureAwait(false);
        var note = left == 0 ? "no objects left on it" : $"{left} objects are still on it (not referenced by any file: left over from before; they can be removed with the target)";
        Console.WriteLine($"target {target} is retired: {note}");
        return 0;
    });

    /// <summary>Files that still name the target in any way (their own objects, a migration's, or retired ones not deleted yet).</summary>
    private static async Task<int> CountReferencesAsync(ParaFsClient client, uint target, CancellationToken cancellationToken)
    {
        var count = 0;
        ulong after = 0;
        do
        {
            var page = await client.ListFilesAsync(after, 1024, target, cancellationToken).ConfigureAwait(false);
            count += page.Files.Count;
            after = page.NextAfter;
        }
        while (after != 0);
        return count;
    }
}
