using System.Globalization;
using ParaFS.Common;

namespace ParaFS.Cli.Tools;

/// <summary>parafs find: the files under a path with objects in a pool or on a target (what lfs find --pool / --ost answers).</summary>
internal static class FindCommand
{
    public const string Help = """
        usage: parafs find PATH [--pool POOL] [--target N] [--mds HOST:PORT]

        Prints every regular file under PATH (recursively) that has an object in POOL and/or on
        target N. With neither, prints every regular file.
        """;

    public static Task<int> RunAsync(string[] argv) => ToolSession.RunAsync("find", Help, argv, async () =>
    {
        var args = new ToolArgs("find", argv, ["--pool", "-p", "--target", "--ost", "--mds"], []);
        if (args.Paths.Count != 1)
        {
            throw new UsageException("parafs find: give exactly one PATH; see parafs find --help");
        }

        var pool = args.Value("--pool", "-p");
        uint? target = args.Value("--target", "--ost") is { } t
            ? uint.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : throw new UsageException($"parafs find: --target {t} is not a target id")
            : null;
        var root = args.Paths[0];
        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, root)).ConfigureAwait(false);
        var files = File.Exists(root) ? [root] : Directory.EnumerateFiles(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true });
        foreach (var file in files)
        {
            if (new FileInfo(file).LinkTarget is not null)
            {
                continue;
            }

            try
            {
                var layout = (await session.Client.GetStripeAsync(MountedPath.Inode(file)).ConfigureAwait(false)).Layout;
                if (layout is null
                    || (pool is not null && layout.Pool != pool)
                    || (target is { } wanted && layout.Objects.All(o => o.TargetId != wanted)))
                {
                    continue;
                }

                Console.WriteLine(file);
            }
            catch (ParaFsException e) when (e.Errno == Errno.ENOENT)
            {
                // Removed while we walked: not there any more.
            }
        }

        return 0;
    });
}
