using System.Globalization;
using System.Text.Json;
using ParaFS.Protocol.Mds;

namespace ParaFS.Cli.Tools;

/// <summary>parafs df and parafs targets: space and health per target, as lfs df shows them.</summary>
internal static class TargetCommands
{
    public const string DfHelp = """
        usage: parafs df [-h] [--json] [--mds HOST:PORT] [PATH]

        Size, used, available and use% of every target, and the file system's total, like lfs df.
        PATH (default: the current directory) names the mount; -h prints sizes as 1.5G.
        """;

    public const string TargetsHelp = """
        usage: parafs targets [--json] [--mds HOST:PORT] [PATH]

        Every target: id, address, pool, state (up, down, draining with the objects still on it,
        retired), seconds since its last heartbeat, load (operations per second and requests in
        flight), objects and use%.
        """;

    public static Task<int> DfAsync(string[] argv) => ToolSession.RunAsync("df", DfHelp, argv, async () =>
    {
        var args = new ToolArgs("df", argv, ["--mds"], ["-h", "--human-readable", "--json"]);
        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, args.Paths.FirstOrDefault())).ConfigureAwait(false);
        var targets = await session.Client.ListTargetsAsync().ConfigureAwait(false);
        var rows = targets.Select(t => (
            Name: $"target{t.TargetId}",
            t.Pool,
            Size: (long)t.Usage.CapacityBytes,
            Used: (long)(t.Usage.CapacityBytes - Math.Min(t.Usage.FreeBytes, t.Usage.CapacityBytes)),
            Available: (long)t.Usage.FreeBytes,
            State: State(t.State))).ToList();
        var up = rows.Where(r => r.State is "up" or "draining").ToList();
        var total = (Size: up.Sum(r => r.Size), Used: up.Sum(r => r.Used), Available: up.Sum(r => r.Available));
        if (args.Has("--json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                Targets = rows.Select(r => new { r.Name, r.Pool, SizeBytes = r.Size, UsedBytes = r.Used, AvailableBytes = r.Available, r.State }),
                Total = new { SizeBytes = total.Size, UsedBytes = total.Used, AvailableBytes = total.Available },
            }, ToolSession.Json));
            return 0;
        }

        var human = args.Has("-h", "--human-readable");
        string Bytes(long b) => human ? Sizes.Human(b) : b.ToString(CultureInfo.InvariantCulture);
        var table = new Table("target", "pool", human ? "size" : "bytes", "used", "available", "use%", "state");
        foreach (var r in rows)
        {
            table.Add(r.Name, r.Pool, Bytes(r.Size), Bytes(r.Used), Bytes(r.Available), Percent(r.Used, r.Size), r.State);
        }

        table.Add("filesystem_summary:", "", Bytes(total.Size), Bytes(total.Used), Bytes(total.Available), Percent(total.Used, total.Size), "");
        table.Write(Console.Out);
        return 0;
    });

    public static Task<int> TargetsAsync(string[] argv) => ToolSession.RunAsync("targets", TargetsHelp, argv, async () =>
    {
        var args = new ToolArgs("targets", argv, ["--mds"], ["--json"]);
        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, args.Paths.FirstOrDefault())).ConfigureAwait(false);
        var targets = await session.Client.ListTargetsAsync().ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        if (args.Has("--json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(targets.Select(t => new
            {
                Id = t.TargetId,
                t.Address,
                t.Pool,
                t.Backend,
                State = State(t.State),
                LastHeartbeatSecondsAgo = (now - t.LastHeartbeatMs) / 1000.0,
                t.Usage.OpsPerSecond,
                t.Usage.InFlight,
                CapacityBytes = t.Usage.CapacityBytes,
                FreeBytes = t.Usage.FreeBytes,
                t.Usage.Objects,
            }), ToolSession.Json));
            return 0;
        }

        var table = new Table("id", "address", "pool", "backend", "state", "heartbeat", "ops/s", "in-flight", "objects", "use%");
        foreach (var t in targets)
        {
            var used = (long)(t.Usage.CapacityBytes - Math.Min(t.Usage.FreeBytes, t.Usage.CapacityBytes));
            table.Add(
                t.TargetId.ToString(CultureInfo.InvariantCulture),
                t.Address,
                t.Pool,
                t.Backend,
                t.State == TargetState.Draining ? $"draining ({t.Usage.Objects} objects left)" : State(t.State),
                $"{Math.Max(0, now - t.LastHeartbeatMs) / 1000.0:0.0}s ago",
                t.Usage.OpsPerSecond.ToString("0", CultureInfo.InvariantCulture),
                t.Usage.InFlight.ToString(CultureInfo.InvariantCulture),
                t.Usage.Objects.ToString(CultureInfo.InvariantCulture),
                Percent(used, (long)t.Usage.CapacityBytes));
        }

        table.Write(Console.Out);
        return 0;
    });

    private static string State(TargetState state) => state switch
    {
        TargetState.Up => "up",
        TargetState.Down => "down",
        TargetState.Draining => "draining",
        TargetState.Retired => "retired",
        _ => "unknown",
    };

    private static string Percent(long used, long size) => size == 0 ? "-" : $"{Math.Ceiling(used * 100.0 / size):0}%";
}
