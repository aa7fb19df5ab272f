using System.Text.Json;
using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Cli.Tools;

/// <summary>parafs setstripe and getstripe, as Lustre's lfs has them.</summary>
internal static class StripeCommands
{
    public const string SetHelp = """
        usage: parafs setstripe [-c COUNT] [-S SIZE] [-p POOL] [--mds HOST:PORT] PATH

        On a directory: sets the layout new files in it (and new subdirectories) get.
        On an empty file: gives it a new layout. On a path that does not exist: creates an empty
        file with that layout. A file that has data keeps its layout (use parafs migrate).

          -c, --stripe-count COUNT   targets per file (-1: all targets of the pool)
          -S, --stripe-size SIZE     bytes per stripe, a multiple of 4K (e.g. 64K, 1M, 4M)
          -p, --pool POOL            the pool the targets come from
        """;

    public const string GetHelp = """
        usage: parafs getstripe [--json] [--mds HOST:PORT] PATH...

        Shows each file's layout (stripe size, count, pool, generation, and which object on which
        target holds each stripe; a migration in progress and old objects awaiting deletion) and
        each directory's default layout.
        """;

    public static Task<int> SetAsync(string[] argv) => ToolSession.RunAsync("setstripe", SetHelp, argv, async () =>
    {
        var args = new ToolArgs("setstripe", argv, ["-c", "--stripe-count", "-S", "--stripe-size", "-p", "--pool", "--mds"], []);
        if (args.Paths.Count != 1)
        {
            throw new UsageException("parafs setstripe: give exactly one PATH; see parafs setstripe --help");
        }

        var path = args.Paths[0];
        var policy = new LayoutPolicy();
        if (args.Value("-c", "--stripe-count") is { } count)
        {
            policy.StripeCount = int.TryParse(count, out var c) && c >= -1 && c != 0 ? c : throw new UsageException($"parafs setstripe: -c {count}: a stripe count is a positive number or -1");
        }

        if (args.Value("-S", "--stripe-size") is { } size)
        {
            var bytes = Sizes.Parse(size, "parafs setstripe -S");
            policy.StripeSize = bytes is > 0 and <= uint.MaxValue && bytes % 4096 == 0 ? (uint)bytes : throw new UsageException($"parafs setstripe: -S {size}: a stripe size is a multiple of 4K up to 4G");
        }

        policy.Pool = args.Value("-p", "--pool") ?? "";
        // A path that does not exist yet is found through its directory; one that does (the mount
        // point itself included, whose parent is another file system) through itself.
        var exists = File.Exists(path) || Directory.Exists(path);
        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, exists ? path : Path.GetDirectoryName(Path.GetFullPath(path)))).ConfigureAwait(false);
        if (!exists)
        {
            // Created through the mount, so the kernel applies this process's umask, then given
            // its layout while still empty.
            using var created = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        }

        var ino = MountedPath.Inode(path);

        try
        {
            await session.Client.SetStripeAsync(session.Caller, ino, policy).ConfigureAwait(false);
        }
        catch (ParaFsException e)
        {
            throw new ParaFsException(e.Errno, $"{path}: {e.Message}", e);
        }

        return 0;
    });

    public static Task<int> GetAsync(string[] argv) => ToolSession.RunAsync("getstripe", GetHelp, argv, async () =>
    {
        var args = new ToolArgs("getstripe", argv, ["--mds"], ["--json"]);
        if (args.Paths.Count == 0)
        {
            throw new UsageException("parafs getstripe: give at least one PATH; see parafs getstripe --help");
        }

        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, args.Paths[0])).ConfigureAwait(false);
        var targets = (await session.Client.ListTargetsAsync().ConfigureAwait(false)).ToDictionary(t => t.TargetId);
        var reports = new List<object>();
        foreach (var path in args.Paths)
        {
            var ino = MountedPath.Inode(path);
            GetStripeReply reply;
            try
            {
                reply = await session.Client.GetStripeAsync(ino).ConfigureAwait(false);
            }
            catch (ParaFsException e)
            {
                throw new ParaFsException(e.Errno, $"{path}: {e.Message}", e);
            }

            if (args.Has("--json"))
            {
                reports.Add(ToJson(path, reply, targets));
                continue;
            }

            Console.WriteLine(path);
            if (reply.Layout is { } layout)
            {
                Console.WriteLine($"stripe_count: {layout.StripeCount}  stripe_size: {layout.StripeSize}  pool: {Pool(layout.Pool)}  generation: {layout.Generation}");
                var table = new Table("index", "target", "object", "address", "pool");
                foreach (var (o, i) in layout.Objects.Select((o, i) => (o, i)))
                {
                    var t = targets.GetValueOrDefault(o.TargetId);
                    table.Add(i.ToString(System.Globalization.CultureInfo.InvariantCulture), o.TargetId.ToString(System.Globalization.CultureInfo.InvariantCulture), $"0x{o.ObjectId:x}", t?.Address ?? "?", t?.Pool ?? "?");
                }

                table.Write(Console.Out);
                if (layout.Pending is { } pending)
                {
                    Console.WriteLine($"migrating to: pool {Pool(pending.Pool)}, stripe_count {pending.StripeCount}, stripe_size {pending.StripeSize}, targets {string.Join(',', pending.Objects.Select(o => o.TargetId))} (writes go to both)");
                }

                if (layout.Retired.Count > 0)
                {
                    Console.WriteLine($"old objects awaiting deletion: {layout.Retired.Count} on targets {string.Join(',', layout.Retired.Select(o => o.TargetId).Distinct())}");
                }
            }

            if (reply.Policy is { } policy)
            {
                Console.WriteLine($"default for new files: stripe_count: {(policy.StripeCount == -1 ? "all" : policy.StripeCount)}  stripe_size: {policy.StripeSize}  pool: {Pool(policy.Pool)}");
            }
        }

        if (args.Has("--json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(reports.Count == 1 ? reports[0] : reports, ToolSession.Json));
        }

        return 0;
    });

    private static string Pool(string pool) => pool.Length == 0 ? "(any)" : pool;

    private static object ToJson(string path, GetStripeReply reply, Dictionary<uint, TargetInfo> targets) => new
    {
        Path = path,
        Layout = reply.Layout is { } l ? new
        {
            l.StripeSize,
            l.StripeCount,
            l.Pool,
            l.Generation,
            Objects = l.Objects.Select(o => new { Target = o.TargetId, Object = o.ObjectId, targets.GetValueOrDefault(o.TargetId)?.Address }).ToList(),
            MigratingTo = l.Pending is { } m ? new
            {
                m.Pool,
                m.StripeSize,
                m.StripeCount,
                Objects = m.Objects.Select(o => new { Target = o.TargetId, Object = o.ObjectId }).ToList(),
            } : null,
            RetiredObjects = l.Retired.Select(o => new { Target = o.TargetId, Object = o.ObjectId }).ToList(),
        } : null,
        Default = reply.Policy is { } p ? new { p.StripeSize, p.StripeCount, p.Pool } : null,
    };
}
