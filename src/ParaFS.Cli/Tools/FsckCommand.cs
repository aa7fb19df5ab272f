using System.Globalization;
using System.Text.Json;
using ParaFS.Client;
using ParaFS.Common;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Cli.Tools;

/// <summary>
/// parafs fsck: the online check that no object is leaked (DESIGN.md, "Consistency and
/// durability"), in the spirit of Lustre's LFSCK layout check. It compares what each target holds
/// with what the MDS refers to: the layouts of every file (current, pending and retired objects)
/// and the deletion queue. Then the MDS checks its namespace (link counts, names, reachability)
/// in one transaction.
/// </summary>
/// <remarks>
/// The order makes it safe while the file system is in use. The targets are listed first, then the
/// MDS is read. An object gets its id from the MDS, in the same transaction that puts it in a
/// layout, before anyone can write it; so an object a target held when it was listed was in a
/// layout by then. It leaves the layouts only through the deletion queue, and the queue entry goes
/// only after the target deleted it. An object neither in a layout nor in the queue is therefore
/// an orphan if the target still holds it when asked again at the end.
/// </remarks>
internal static class FsckCommand
{
    public const string Help = """
        usage: parafs fsck [--repair] [--json] [--mds HOST:PORT] [PATH]

        Checks, with the file system in use, that every object on every target belongs to a file
        (its layout, a migration's new layout, or objects retired by one) or waits in the MDS's
        deletion queue, like Lustre's LFSCK layout check. It reports per target:
          orphans   objects nothing refers to: left by a crash the queue did not cover, or by a
                    metadata store restored from an older copy; they only take space
          ahead     orphans with an id the MDS has not handed out yet on that target: the
                    metadata store is older than the target's data, and the MDS would give such
                    an id to a new file, which would then read the old bytes. Restore the newer
                    store if there is one; --repair deletes them before that can happen
          dangling  files with objects on a target that is retired or no longer registered:
                    their data there cannot be read
        Objects a layout names but no target holds are not errors: objects are made by their
        first write. Retired targets are not listed; a target that does not answer is reported
        as not checked.
        Then the MDS checks its namespace in one transaction, like LFSCK's namespace check:
          link-count  a file's link count is not its number of names, or a directory's is not
                      2 plus its subdirectories
          parent      a directory records another parent than the directory naming it
          no-name     an inode with a link count but no name (a directory: nor what it holds)
          dangling-entry, entry-outside-directory
                      a name of an inode that does not exist, or kept in a non-directory
          unreachable a directory no path from the root reaches (a loop, or a nameless parent)
        Root only. Progress goes to stderr, the report to stdout.

          --repair   delete the orphans (ahead ones included), after checking once more that
                     nothing refers to them; set link counts and parents to what the names
                     say (the other namespace problems are reported, not repaired)
          --json     the report as one JSON object
          --mds      the MDS's address (default: the mount holding PATH, or the current directory)

        Exit status: 0 when nothing is wrong (or --repair fixed all of it), 1 when something
        is left (orphans not deleted, dangling files, a target not checked, a namespace problem),
        2 on a usage error.
        """;

    /// <summary>Lines of one kind printed before "... and N more".</summary>
    private const int ListedLines = 50;

    /// <summary>Namespace problems of each kind the MDS lists (and repairs in one run).</summary>
    private const int ListedProblems = 10_000;

    public static Task<int> RunAsync(string[] argv) => ToolSession.RunAsync("fsck", Help, argv, async () =>
    {
        var args = new ToolArgs("fsck", argv, ["--mds"], ["--repair", "--json"]);
        if (args.Paths.Count > 1)
        {
            throw new UsageException("parafs fsck: give at most one PATH (in the mount to check); see parafs fsck --help");
        }

        using var stop = new StopSignals();
        await using var session = await ToolSession.OpenAsync(ToolSession.Mds(args, args.Paths.FirstOrDefault())).ConfigureAwait(false);
        var report = await CheckAsync(session.Client, session.Caller, args.Has("--repair"), stop.Token).ConfigureAwait(false);
        if (args.Has("--json"))
        {
            Console.WriteLine(JsonSerializer.Serialize(report.ToJson(), ToolSession.Json));
        }
        else
        {
            report.Write(Console.Out);
        }

        return report.Clean ? 0 : 1;
    });

    private static async Task<FsckReport> CheckAsync(ParaFsClient client, Caller caller, bool repair, CancellationToken cancellationToken)
    {
        var report = new FsckReport();

        // Root only: asked first, so that a user learns it before the targets are listed.
        await client.ObjectBookkeepingAsync(caller, 0, 1, cancellationToken).ConfigureAwait(false);
        var targets = await client.ListTargetsAsync(cancellationToken).ConfigureAwait(false);
        var registered = targets.ToDictionary(t => t.TargetId);

        // 1. What the targets hold, listed before anything is read from the MDS (see the remarks).
        var held = new Dictionary<uint, HeldObjects>();
        foreach (var target in targets.Where(t => t.State != TargetState.Retired))
        {
            var row = report.Target(target.TargetId, target.Pool, target.Address);
            try
            {
                held[target.TargetId] = await ListTargetAsync(client, target.TargetId, cancellationToken).ConfigureAwait(false);
                row.Objects = held[target.TargetId].Count;
                Progress($"target {target.TargetId} ({target.Address}, pool {target.Pool}): {row.Objects:N0} objects");
            }
            catch (Exception e) when (e is ParaFsException or InvalidDataException && !cancellationToken.IsCancellationRequested)
            {
                row.NotChecked = e.Message;
                Progress($"target {target.TargetId} ({target.Address}, pool {target.Pool}): not checked: {e.Message}");
            }
        }

        // 2. What the MDS refers to: every file's layouts, then the deletion queue.
        var files = 0L;
        for (ulong after = 0; ;)
        {
            var page = await client.ListFilesAsync(after, 1024, 0, cancellationToken).ConfigureAwait(false);
            foreach (var file in page.Files)
            {
                files++;
                foreach (var o in file.Layout.AllObjects())
                {
                    if (held.TryGetValue(o.TargetId, out var objects))
                    {
                        objects.Refer(o.ObjectId);
                    }
                    else if ((!registered.TryGetValue(o.TargetId, out var info) || info.State == TargetState.Retired) && file.Layout.Objects.Contains(o))
                    {
                        // Only the objects reads use: a migration's or a cut-over's leftovers there lose nothing.
                        report.Dangling.Add(new Dangling(file.Ino, o.TargetId, o.ObjectId, info is null ? "not registered" : "retired"));
                    }
                }
            }

            if (files > 0 && (page.NextAfter == 0 || files % 100_000 < page.Files.Count))
            {
                Progress($"{files:N0} files read from the MDS");
            }

            if (page.NextAfter == 0)
            {
                break;
            }

            after = page.NextAfter;
        }

        foreach (var (target, objects) in held)
        {
            report.Target(target).Referenced = objects.Referenced;
        }

        var counters = new Dictionary<uint, ulong>();
        for (ulong after = 0; ;)
        {
            var page = await client.ObjectBookkeepingAsync(caller, after, 10_000, cancellationToken).ConfigureAwait(false);
            foreach (var counter in page.Counters)
            {
                counters.TryAdd(counter.TargetId, counter.LastObjectId);
            }

            foreach (var queued in page.Deletions)
            {
                if (held.TryGetValue(queued.TargetId, out var objects) && objects.Refer(queued.ObjectId))
                {
                    report.Target(queued.TargetId).Queued++;
                }
            }

            if (page.NextAfter == 0)
            {
                break;
            }

            after = page.NextAfter;
        }

        report.Files = files;

        // 3. Candidates: held, not referenced. Asked again: one the queue deleted meanwhile is gone.
        var candidates = held.SelectMany(h => h.Value.Unreferenced().Select(id => (Target: h.Key, Object: id))).ToList();
        if (candidates.Count > 0)
        {
            Progress($"{candidates.Count:N0} objects belong to no file; asking their targets again");
        }

        var orphans = new System.Collections.Concurrent.ConcurrentBag<Orphan>();
        await Parallel.ForEachAsync(candidates, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = cancellationToken }, async (c, token) =>
        {
            var attr = await client.GetObjectAttrAsync(c.Target, c.Object, token).ConfigureAwait(false);
            if (attr.Exists)
            {
                orphans.Add(new Orphan(c.Target, c.Object, (long)attr.Size, c.Object > counters.GetValueOrDefault(c.Target)));
            }
        }).ConfigureAwait(false);
        report.Orphans.AddRange(orphans.OrderBy(o => o.Target).ThenBy(o => o.Object));

        if (repair && report.Orphans.Count > 0)
        {
            await RepairAsync(client, report, cancellationToken).ConfigureAwait(false);
        }

        // 4. The namespace: link counts, entries, reachability (one transaction at the MDS).
        Progress(repair ? "checking and repairing the namespace at the MDS" : "checking the namespace at the MDS");
        try
        {
            report.Namespace = await client.CheckNamespaceAsync(caller, repair, ListedProblems, cancellationToken).ConfigureAwait(false);
            Progress($"namespace: {report.Namespace.Inodes:N0} inodes, {report.Namespace.Directories:N0} directories, {report.Namespace.Problems.Count:N0} problems");
        }
        catch (RpcException e) when (e.Errno == Errno.ENOSYS)
        {
            report.NamespaceNotChecked = "the MDS is older than this parafs and cannot check its namespace";
        }

        return report;
    }

    /// <summary>All the object ids a target holds, in pages.</summary>
    private static async Task<HeldObjects> ListTargetAsync(ParaFsClient client, uint target, CancellationToken cancellationToken)
    {
        var ids = new HeldObjects();
        for (ulong after = 0; ;)
        {
            var page = await client.ListObjectsAsync(target, after, 50_000, cancellationToken).ConfigureAwait(false);
            ids.AddPage(page.ObjectIds);
            if (!page.More || page.ObjectIds.Count == 0)
            {
                return ids;
            }

            after = page.ObjectIds[^1];
        }
    }

    /// <summary>
    /// Deletes the orphans. The files are read once more first: an orphan that a layout names by
    /// now (it cannot be one that was there before, but an ahead id may have been handed out since)
    /// is left alone.
    /// </summary>
    private static async Task RepairAsync(ParaFsClient client, FsckReport report, CancellationToken cancellationToken)
    {
        var wanted = report.Orphans.Select(o => (o.Target, o.Object)).ToHashSet();
        for (ulong after = 0; ;)
        {
            var page = await client.ListFilesAsync(after, 1024, 0, cancellationToken).ConfigureAwait(false);
            foreach (var o in page.Files.SelectMany(f => f.Layout.AllObjects()))
            {
                wanted.Remove((o.TargetId, o.ObjectId));
            }

            if (page.NextAfter == 0)
            {
                break;
            }

            after = page.NextAfter;
        }

        foreach (var orphan in report.Orphans)
        {
            if (!wanted.Contains((orphan.Target, orphan.Object)))
            {
                Progress($"target {orphan.Target} object 0x{orphan.Object:x}: a file refers to it now; left alone");
                continue;
            }

            await client.DeleteObjectAsync(orphan.Target, orphan.Object, cancellationToken).ConfigureAwait(false);
            orphan.Deleted = true;
        }
    }

    private static void Progress(string line) => Console.Error.WriteLine($"fsck: {line}");

    private sealed class TargetRow(uint id)
    {
        public uint Id { get; } = id;

        public string Pool { get; set; } = "";

        public string Address { get; set; } = "";

        public long Objects { get; set; }

        public long Referenced { get; set; }

        public long Queued { get; set; }

        public string? NotChecked { get; set; }
    }

    private sealed record Orphan(uint Target, ulong Object, long Bytes, bool Ahead)
    {
        public bool Deleted { get; set; }
    }

    private sealed record Dangling(ulong Ino, uint Target, ulong Object, string Why);

    private sealed class FsckReport
    {
        private readonly SortedDictionary<uint, TargetRow> _targets = [];

        public long Files { get; set; }

        public List<Orphan> Orphans { get; } = [];

        public List<Dangling> Dangling { get; } = [];

        public NamespaceCheckReply Namespace { get; set; } = new();

        public string? NamespaceNotChecked { get; set; }

        private IEnumerable<NamespaceProblem> NamespaceLeft => Namespace.Problems.Where(p => !p.Repaired);

        public bool Clean =>
            Orphans.All(o => o.Deleted) && Dangling.Count == 0 && _targets.Values.All(t => t.NotChecked is null)
            && !NamespaceLeft.Any() && !Namespace.More && NamespaceNotChecked is null;

        public TargetRow Target(uint id, string? pool = null, string? address = null)
        {
            if (!_targets.TryGetValue(id, out var row))
            {
                _targets[id] = row = new TargetRow(id);
            }

            row.Pool = pool ?? row.Pool;
            row.Address = address ?? row.Address;
            return row;
        }

        public void Write(TextWriter output)
        {
            var table = new Table("target", "pool", "objects", "in files", "queued", "orphans", "orphan bytes", "ahead", "checked");
            foreach (var t in _targets.Values)
            {
                var mine = Orphans.Where(o => o.Target == t.Id).ToList();
                table.Add(
                    $"target{t.Id}", t.Pool, Count(t.Objects), Count(t.Referenced), Count(t.Queued), Count(mine.Count),
                    Count(mine.Sum(o => o.Bytes)), Count(mine.Count(o => o.Ahead)), t.NotChecked is null ? "yes" : "no");
            }

            table.Write(output);
            output.WriteLine($"{Files:N0} files read from the MDS");
            foreach (var t in _targets.Values.Where(t => t.NotChecked is not null))
            {
                output.WriteLine($"not checked: target {t.Id} ({t.Address}): {t.NotChecked}; start it and run parafs fsck again");
            }

            foreach (var o in Orphans.Take(ListedLines))
            {
                var what = o.Ahead ? "ahead" : "orphan";
                output.WriteLine($"{what}: target {o.Target} object 0x{o.Object:x} ({o.Bytes:N0} bytes){(o.Deleted ? ": deleted" : "")}");
            }

            More(output, Orphans.Count, "orphans");
            foreach (var d in Dangling.Take(ListedLines))
            {
                output.WriteLine($"dangling: inode {d.Ino} has object 0x{d.Object:x} on target {d.Target}, which is {d.Why}");
            }

            More(output, Dangling.Count, "dangling objects");
            output.WriteLine(NamespaceNotChecked is null
                ? $"namespace: {Namespace.Inodes:N0} inodes, {Namespace.Directories:N0} directories checked at the MDS"
                : $"namespace not checked: {NamespaceNotChecked}");
            foreach (var p in Namespace.Problems.Take(ListedLines))
            {
                output.WriteLine($"{p.Kind}: {p.Detail}{(p.Repaired ? ": repaired" : "")}");
            }

            More(output, Namespace.Problems.Count, "namespace problems");
            var left = Orphans.Where(o => !o.Deleted).ToList();
            if (Clean)
            {
                var repaired = new List<string>();
                if (Orphans.Count > 0)
                {
                    repaired.Add($"{Orphans.Count:N0} orphans deleted ({Orphans.Sum(o => o.Bytes):N0} bytes)");
                }

                if (Namespace.Problems.Count > 0)
                {
                    repaired.Add($"{Namespace.Problems.Count:N0} link counts or parents set to what the names say");
                }

                output.WriteLine(repaired.Count == 0
                    ? "clean: every object on the targets belongs to a file or waits in the deletion queue, and every link count matches the names"
                    : $"repaired: {string.Join("; ", repaired)}; every other object belongs to a file or waits in the deletion queue");
                return;
            }

            var problems = new List<string>();
            if (left.Count > 0)
            {
                var ahead = left.Count(o => o.Ahead);
                problems.Add($"{left.Count:N0} orphans ({left.Sum(o => o.Bytes):N0} bytes{(ahead > 0 ? $", {ahead:N0} of them ahead of the MDS's ids: the metadata store is older than the targets' data" : "")}); parafs fsck --repair deletes them");
            }

            if (Dangling.Count > 0)
            {
                problems.Add($"{Dangling.Select(d => d.Ino).Distinct().Count():N0} files with objects on retired or unknown targets; their data there is lost unless the target comes back");
            }

            var namespaceLeft = NamespaceLeft.ToList();
            if (namespaceLeft.Count > 0 || Namespace.More)
            {
                var fixable = namespaceLeft.Count(p => p.Kind is "link-count" or "parent");
                problems.Add($"{namespaceLeft.Count:N0}{(Namespace.More ? "+" : "")} namespace problems"
                    + (fixable > 0 ? $" ({fixable:N0} link counts or parents: parafs fsck --repair sets them)" : "")
                    + (fixable < namespaceLeft.Count ? "; names that lead nowhere, inodes without a name and unreachable directories are not repaired: restore the metadata store from a copy if there is one (README: parafs fsck)" : ""));
            }

            if (NamespaceNotChecked is not null)
            {
                problems.Add("the namespace not checked");
            }

            var notChecked = _targets.Values.Count(t => t.NotChecked is not null);
            if (notChecked > 0)
            {
                problems.Add(notChecked == 1 ? "1 target not checked" : $"{notChecked} targets not checked");
            }

            output.WriteLine($"NOT clean: {string.Join("; ", problems)}");
        }

        public object ToJson() => new
        {
            Clean,
            Files,
            Targets = _targets.Values.Select(t => new
            {
                t.Id,
                t.Pool,
                t.Address,
                t.Objects,
                InFiles = t.Referenced,
                t.Queued,
                Checked = t.NotChecked is null,
                t.NotChecked,
            }),
            Orphans = Orphans.Select(o => new { o.Target, o.Object, o.Bytes, o.Ahead, o.Deleted }),
            Dangling = Dangling.Select(d => new { d.Ino, d.Target, d.Object, d.Why }),
            Namespace = new
            {
                Checked = NamespaceNotChecked is null,
                Namespace.Inodes,
                Namespace.Directories,
                Namespace.More,
                Problems = Namespace.Problems.Select(p => new { p.Kind, p.Ino, p.Parent, p.Name, p.Detail, p.Repaired }),
            },
        };

        private static string Count(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

        private static void More(TextWriter output, int count, string what)
        {
            if (count > ListedLines)
            {
                output.WriteLine($"... and {count - ListedLines:N0} more {what} (--json lists them all)");
            }
        }
    }
}
