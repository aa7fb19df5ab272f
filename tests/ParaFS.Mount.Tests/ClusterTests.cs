using System.Security.Cryptography;

namespace ParaFS.Mount.Tests;

/// <summary>Whole-cluster checks: two mounts, a killed daemon, and the new user's walk-through of `parafs up`.</summary>
public sealed class ClusterTests
{
    [MountFact]
    public async Task Two_mounts_of_one_file_system_see_each_others_closed_files()
    {
        await using var up = await ParafsUp.StartAsync();
        await using var mount = await ExtraMount.StartAsync(up.Mds);
        var second = mount.MountPoint;
        for (var round = 0; round < 5; round++)
        {
            var text = $"round {round} {Guid.NewGuid()}";
            await File.WriteAllTextAsync(Path.Combine(up.MountPoint, "shared"), text);
            Assert.Equal(text, await File.ReadAllTextAsync(Path.Combine(second, "shared")));
            await File.AppendAllTextAsync(Path.Combine(second, "shared"), "+more");
            Assert.Equal(text + "+more", await File.ReadAllTextAsync(Path.Combine(up.MountPoint, "shared")));
        }
    }

    /// <summary>
    /// A name one mount looked up and found absent is kept absent by its kernel for the lease (a
    /// negative entry), and appears there once another mount creates it: the MDS's callback ends
    /// the negative entry as it ends a positive one.
    /// </summary>
    [MountFact]
    public async Task A_name_one_mount_found_absent_appears_there_once_another_mount_creates_it()
    {
        await using var up = await ParafsUp.StartAsync();
        await using var mount = await ExtraMount.StartAsync(up.Mds);
        foreach (var name in new[] { "later", "later-dir" })
        {
            var mine = Path.Combine(up.MountPoint, name);
            Assert.False(Path.Exists(mine));
            Assert.False(Path.Exists(mine));
            if (name.EndsWith("-dir", StringComparison.Ordinal))
            {
                Directory.CreateDirectory(Path.Combine(mount.MountPoint, name));
            }
            else
            {
                await File.WriteAllTextAsync(Path.Combine(mount.MountPoint, name), name);
            }

            // Well within the 30 s lease: only the callback can make it appear this soon.
            await Eventually.TrueAsync(() => Path.Exists(mine), $"'{name}', created by the other mount, appeared here", TimeSpan.FromSeconds(5));
        }

        Assert.Equal("later", await File.ReadAllTextAsync(Path.Combine(up.MountPoint, "later")));
        Assert.True(Directory.Exists(Path.Combine(up.MountPoint, "later-dir")));
    }

    /// <summary>
    /// The kernel keeps a file's cached pages across opens while the file is unchanged (a data
    /// loader's second epoch reads from memory), and drops them at the next open once another
    /// mount wrote the file and closed it, also when the size stays the same.
    /// </summary>
    [MountFact]
    public async Task Cached_pages_outlive_an_open_of_an_unchanged_file_and_not_one_another_mount_changed()
    {
        await using var up = await ParafsUp.StartAsync();
        await using var mount = await ExtraMount.StartAsync(up.Mds);
        var mine = Path.Combine(up.MountPoint, "epoch");
        var theirs = Path.Combine(mount.MountPoint, "epoch");
        await Shell.OkAsync($"head -c 1048576 /dev/urandom > '{mine}'");

        // Read it whole; fincore then opens it again and counts the pages still cached.
        await Shell.OkAsync($"cat '{mine}' > /dev/null");
        Assert.Equal("1048576", (await Shell.OkAsync($"fincore --bytes --noheadings --output RES '{mine}'")).Trim());

        // The other mount overwrites every byte (same size) and closes; the next open here sees it.
        var fresh = RandomNumberGenerator.GetBytes(1 << 20);
        await File.WriteAllBytesAsync(theirs, fresh);
        Assert.Equal("0", (await Shell.OkAsync($"fincore --bytes --noheadings --output RES '{mine}'")).Trim());
        Assert.True((await File.ReadAllBytesAsync(mine)).AsSpan().SequenceEqual(fresh), "the second mount's write was not seen after it closed");
    }

    /// <summary>
    /// What the mount remembers of the attributes it showed the kernel (the basis of keeping cached
    /// pages at an open) goes when the kernel forgets the inode, and a readdirplus entry the
    /// kernel's buffer did not take is not remembered as shown. Driven on the adapter itself, over
    /// a client of a running cluster; the kernel's side of each call is the test's.
    /// </summary>
    [MountFact]
    public async Task The_mount_forgets_what_it_showed_the_kernel_when_the_kernel_forgets_the_inode()
    {
        await using var up = await ParafsUp.StartAsync();
        await File.WriteAllBytesAsync(Path.Combine(up.MountPoint, "shown"), RandomNumberGenerator.GetBytes(8192));
        await using var client = await ParaFS.Client.ParaFsClient.ConnectAsync(ParaFS.Protocol.Rpc.RpcEndpoint.Parse(up.Mds));
        var fs = new ParaFS.FuseAdapter.ParaFsFileSystem(client);
        var context = new ParaFS.Fuse.FuseContext(1, 0, 0, 0, CancellationToken.None);

        async Task<bool> OpenKeepsCacheAsync(ulong ino)
        {
            var open = await fs.OpenAsync(context, ino, 0);
            await fs.ReleaseAsync(context, ino, open.FileHandle, 0);
            return open.KeepCache;
        }

        var ino = (await fs.LookupAsync(context, 1, "shown")).NodeId;
        Assert.Equal(1, fs.ShownToKernelCount);
        Assert.True(await OpenKeepsCacheAsync(ino), "an unchanged file the kernel was shown did not keep its cache");

        fs.Forget(ino, 1);
        Assert.Equal(0, fs.ShownToKernelCount);
        Assert.False(await OpenKeepsCacheAsync(ino), "a forgotten inode kept a cache it no longer has");

        await fs.ReadDirAsync(context, 1, 0, 2, new TakingDirectoryBuffer(room: 0), plus: true);
        Assert.Equal(0, fs.ShownToKernelCount);
        Assert.False(await OpenKeepsCacheAsync(ino), "an entry the kernel's buffer refused counted as shown");

        await fs.ReadDirAsync(context, 1, 0, 2, new TakingDirectoryBuffer(room: 100), plus: true);
        Assert.Equal(1, fs.ShownToKernelCount);
        Assert.True(await OpenKeepsCacheAsync(ino), "an entry the kernel took did not count as shown");
    }

    /// <summary>A kernel directory buffer with room for a given number of entries.</summary>
    private sealed class TakingDirectoryBuffer(int room) : ParaFS.Fuse.FuseDirectoryBuffer
    {
        private int _room = room;

        public override bool Add(string name, ulong ino, uint type, long nextOffset) => _room-- > 0;

        public override bool AddPlus(string name, ParaFS.Fuse.FuseEntry entry, long nextOffset) => _room-- > 0;
    }

    /// <summary>An application sees only ENOSPC; the mount's log says why and what to do.</summary>
    [MountFact]
    public async Task A_file_that_cannot_be_placed_gives_ENOSPC_and_the_mount_log_says_why()
    {
        await using var up = await ParafsUp.StartAsync();
        var dir = Path.Combine(up.MountPoint, "nowhere");
        Directory.CreateDirectory(dir);
        await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' setstripe -p nosuchpool '{dir}'");

        var (code, output) = await Shell.RunAsync($"touch '{dir}/x'");
        Assert.NotEqual(0, code);
        Assert.Contains("No space left on device", output, StringComparison.Ordinal);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!up.Output.Contains("an application got ENOSPC", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Contains("no target is registered in pool 'nosuchpool'", up.Output, StringComparison.Ordinal);
    }

    /// <summary>
    /// parafs fsck on a running cluster: clean after a delete; then an object planted under a
    /// deleted file's id (an orphan) and one under an id the MDS never handed out (ahead) are
    /// reported, exit 1; --repair deletes both and nothing else; every file keeps its bytes. Last, a
    /// file whose object sits on a target retired under it is reported as dangling.
    /// </summary>
    [MountFact]
    public async Task Fsck_reports_planted_orphans_repairs_them_and_every_file_keeps_its_bytes()
    {
        await using var up = await ParafsUp.StartAsync();
        var parafs = $"dotnet '{ParafsUp.ParafsDll}'";
        var mnt = up.MountPoint;
        for (var i = 0; i < 4; i++)
        {
            await Shell.OkAsync($"dd if=/dev/urandom of='{mnt}/f{i}' bs=1M count=3 status=none");
        }

        var sums = await Shell.OkAsync($"cd '{mnt}' && sha256sum f0 f1 f2");
        var gone = await Shell.OkAsync($"{parafs} getstripe --json '{mnt}/f3'");
        var first = System.Text.RegularExpressions.Regex.Match(gone, "\"target\": (\\d+),\\s*\"object\": (\\d+)");
        Assert.True(first.Success, $"no object in getstripe's output:\n{gone}");
        var target = int.Parse(first.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var orphan = ulong.Parse(first.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        File.Delete(Path.Combine(mnt, "f3"));
        var ost = OstDirectory(up, target);
        await Eventually.TrueAsync(() => !File.Exists(ObjectFile(ost, orphan)), "the deleted file's object leaves its target");

        var clean = await Shell.RunAsync($"{parafs} fsck '{mnt}'");
        Assert.True(clean.Code == 0, $"fsck of a clean file system exited {clean.Code}:\n{clean.Output}");
        Assert.Contains("clean: every object", clean.Output, StringComparison.Ordinal);
        var json = await Shell.RunAsync($"{parafs} fsck --json '{mnt}' 2>/dev/null");
        using (var report = System.Text.Json.JsonDocument.Parse(json.Output))
        {
            var rows = report.RootElement.GetProperty("targets").EnumerateArray().ToList();
            Assert.True(rows.Sum(t => t.GetProperty("objects").GetInt64()) >= 3, json.Output);
            Assert.All(rows, t => Assert.Equal(t.GetProperty("objects").GetInt64(), t.GetProperty("in_files").GetInt64()));
            var names = report.RootElement.GetProperty("namespace");
            Assert.True(names.GetProperty("checked").GetBoolean(), json.Output);
            Assert.True(names.GetProperty("inodes").GetInt64() >= 4, json.Output);
            Assert.Empty(names.GetProperty("problems").EnumerateArray());
        }

        // A stale writer's object under the deleted file's id, and one no layout was ever given.
        const ulong ahead = 0x10000;
        var donor = Directory.EnumerateFiles(Path.Combine(ost, "objects"), "*", SearchOption.AllDirectories).First();
        foreach (var id in new[] { orphan, ahead })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(ObjectFile(ost, id))!);
            File.Copy(donor, ObjectFile(ost, id));
        }

        var found = await Shell.RunAsync($"{parafs} fsck '{mnt}'");
        Assert.True(found.Code == 1, $"fsck with orphans exited {found.Code}:\n{found.Output}");
        Assert.Contains($"orphan: target {target} object 0x{orphan:x} ", found.Output, StringComparison.Ordinal);
        Assert.Contains($"ahead: target {target} object 0x{ahead:x} ", found.Output, StringComparison.Ordinal);
        Assert.Contains("NOT clean: 2 orphans", found.Output, StringComparison.Ordinal);

        var user = await Shell.RunAsync($"setpriv --reuid 1000 --regid 1000 --clear-groups {parafs} fsck --mds {up.Mds}");
        Assert.Equal(1, user.Code);
        Assert.Contains("only root", user.Output, StringComparison.Ordinal);

        var repaired = await Shell.RunAsync($"{parafs} fsck --repair '{mnt}'");
        Assert.True(repaired.Code == 0, $"fsck --repair exited {repaired.Code}:\n{repaired.Output}");
        Assert.Contains("repaired: 2 orphans deleted", repaired.Output, StringComparison.Ordinal);
        Assert.False(File.Exists(ObjectFile(ost, orphan)));
        Assert.False(File.Exists(ObjectFile(ost, ahead)));
        Assert.Equal(0, (await Shell.RunAsync($"{parafs} fsck '{mnt}'")).Code);

        await File.WriteAllTextAsync("/proc/sys/vm/drop_caches", "3");
        Assert.Equal(sums, await Shell.OkAsync($"cd '{mnt}' && sha256sum f0 f1 f2"));

        // A target retired with a file's object still on it (not drained first): that file dangles.
        var kept = System.Text.RegularExpressions.Regex.Match(await Shell.OkAsync($"{parafs} getstripe --json '{mnt}/f0'"), "\"target\": (\\d+),\\s*\"object\": (\\d+)");
        var keptTarget = uint.Parse(kept.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var keptObject = ulong.Parse(kept.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        var ino = (await Shell.OkAsync($"stat -c %i '{mnt}/f0'")).Trim();
        await using var admin = await ParaFS.Client.ParaFsClient.ConnectAsync(ParaFS.Protocol.Rpc.RpcEndpoint.Parse(up.Mds));
        await admin.SetTargetStateAsync(new ParaFS.Protocol.Mds.Caller(), keptTarget, ParaFS.Protocol.Mds.TargetState.Retired);
        try
        {
            var dangling = await Shell.RunAsync($"{parafs} fsck '{mnt}'");
            Assert.True(dangling.Code == 1, $"fsck with a dangling file exited {dangling.Code}:\n{dangling.Output}");
            Assert.Contains($"dangling: inode {ino} has object 0x{keptObject:x} on target {keptTarget}, which is retired", dangling.Output, StringComparison.Ordinal);
            Assert.Contains("files with objects on retired or unknown targets", dangling.Output, StringComparison.Ordinal);
        }
        finally
        {
            await admin.SetTargetStateAsync(new ParaFS.Protocol.Mds.Caller(), keptTarget, ParaFS.Protocol.Mds.TargetState.Up);
        }

        Assert.Equal(0, (await Shell.RunAsync($"{parafs} fsck '{mnt}'")).Code);
    }

    /// <summary>
    /// A link count gone wrong in the MDS's store (changed there behind the MDS's back, with the
    /// file system mounted): fsck names the file and exits 1; --repair sets it to the file's names.
    /// </summary>
    [MountFact]
    public async Task Fsck_finds_a_wrong_link_count_in_the_metadata_store_and_repairs_it()
    {
        await using var up = await ParafsUp.StartAsync();
        var parafs = $"dotnet '{ParafsUp.ParafsDll}'";
        var mnt = up.MountPoint;
        await Shell.OkAsync($"mkdir '{mnt}/d' && echo data > '{mnt}/d/f' && ln '{mnt}/d/f' '{mnt}/g'");
        var ino = long.Parse((await Shell.OkAsync($"stat -c %i '{mnt}/g'")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(up.Data, "mds", "mds.db")}"))
        {
            await db.OpenAsync();
            await using var update = db.CreateCommand();
            update.CommandText = $"PRAGMA busy_timeout = 10000; UPDATE inodes SET nlink = 7 WHERE ino = {ino}";
            Assert.Equal(1, await update.ExecuteNonQueryAsync());
        }

        var found = await Shell.RunAsync($"{parafs} fsck '{mnt}'");
        Assert.True(found.Code == 1, $"fsck with a wrong link count exited {found.Code}:\n{found.Output}");
        Assert.Contains($"link-count: inode {ino} (file) has link count 7 but 2 names", found.Output, StringComparison.Ordinal);
        Assert.Contains("1 namespace problems (1 link counts or parents: parafs fsck --repair sets them)", found.Output, StringComparison.Ordinal);

        var repaired = await Shell.RunAsync($"{parafs} fsck --repair '{mnt}'");
        Assert.True(repaired.Code == 0, $"fsck --repair exited {repaired.Code}:\n{repaired.Output}");
        Assert.Contains($"link-count: inode {ino} (file) has link count 7 but 2 names: repaired", repaired.Output, StringComparison.Ordinal);
        Assert.Equal(0, (await Shell.RunAsync($"{parafs} fsck '{mnt}'")).Code);
        await Eventually.TrueAsync(async () => (await Shell.OkAsync($"stat -c %h '{mnt}/g'")).Trim() == "2", "the mount shows the repaired link count");
        Assert.Equal("data", (await File.ReadAllTextAsync(Path.Combine(mnt, "d", "f"))).Trim());
    }

    /// <summary>The data directory of the OST serving <paramref name="target"/> (its superblock names it).</summary>
    private static string OstDirectory(ParafsUp up, int target)
    {
        foreach (var directory in Directory.GetDirectories(up.Data, "ost-*"))
        {
            using var superblock = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "superblock.json")));
            if (superblock.RootElement.GetProperty("target_id").GetInt32() == target)
            {
                return directory;
            }
        }

        throw new InvalidOperationException($"no OST data directory under {up.Data} belongs to target {target}");
    }

    /// <summary>Where the dir store keeps an object: objects/LL/MM/ID, LL and MM the id's two low bytes in hex.</summary>
    private static string ObjectFile(string ost, ulong id) =>
        Path.Combine(ost, "objects", $"{id & 0xff:x2}", $"{(id >> 8) & 0xff:x2}", $"{id:x16}");

    [MountFact]
    public async Task A_killed_daemon_gives_ENOTCONN_not_a_hang_and_parafs_umount_recovers_the_mount_point()
    {
        await using var up = await ParafsUp.StartAsync();
        await File.WriteAllTextAsync(Path.Combine(up.MountPoint, "x"), "x");
        up.KillHard();

        var (code, output) = await Shell.RunAsync($"stat '{up.MountPoint}/x'", TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, code);
        Assert.Contains("Transport endpoint is not connected", output, StringComparison.Ordinal);

        await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' umount '{up.MountPoint}'");
        Assert.False(ParafsUp.IsMounted(up.MountPoint));
        await Shell.OkAsync($"ls '{up.MountPoint}'");
    }

    /// <summary>
    /// The check from the `parafs` command's issue, as a new user would do it: up; dd 256 MiB;
    /// getstripe shows 4 objects on 4 targets; setstripe on the mount point sets new files' default;
    /// each OST holds about a quarter; df adds up;
    /// Ctrl-C; up again on the same data; the file's sha256 is unchanged.
    /// </summary>
    [MountFact]
    public async Task Up_dd_getstripe_df_ctrl_c_and_up_again_keeps_every_byte()
    {
        var root = Path.Combine(Path.GetTempPath(), $"parafs-walk-{Guid.NewGuid():N}");
        var data = Path.Combine(root, ".parafs");
        var mnt = Path.Combine(root, "mnt");
        string sha;
        await using (var up = await ParafsUp.StartAsync(data, mnt))
        {
            await Shell.OkAsync($"dd if=/dev/urandom of='{mnt}/a' bs=1M count=256 status=none");
            sha = await Shell.OkAsync($"sha256sum < '{mnt}/a'");

            var layout = await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' getstripe --json '{mnt}/a'");
            var targets = System.Text.RegularExpressions.Regex.Matches(layout, "\"target\": (\\d+)").Select(m => m.Groups[1].Value).ToList();
            Assert.Equal(4, targets.Count);
            Assert.Equal(4, targets.Distinct().Count());

            // lfs setstripe's commonest use: a default on the mount point itself (its parent is
            // another file system). New files get it; the file already written keeps its own.
            await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' setstripe -c 2 '{mnt}'");
            await Shell.OkAsync($"echo two > '{mnt}/two'");
            var two = await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' getstripe --json '{mnt}/two'");
            Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(two, "\"target\": (\\d+)").Count);
            await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' setstripe -c 4 '{mnt}'");
            File.Delete(Path.Combine(mnt, "two"));

            await Shell.OkAsync("sync");
            foreach (var ost in Directory.GetDirectories(data, "ost-*"))
            {
                // The deletion queue may be removing the objects of 'two' as they are listed.
                var bytes = Directory.EnumerateFiles(Path.Combine(ost, "objects"), "*", SearchOption.AllDirectories).Select(f => new FileInfo(f)).Sum(f => f.Exists ? f.Length : 0);
                Assert.InRange(bytes, 60L << 20, 68L << 20);
            }

            var df = await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' df --json '{mnt}'");
            Assert.Contains("\"total\"", df, StringComparison.Ordinal);
            var sizes = System.Text.RegularExpressions.Regex.Matches(df, "\"size_bytes\": (\\d+)").Select(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(5, sizes.Count);
            Assert.Equal(sizes[4], sizes.Take(4).Sum());

            Assert.Equal(0, await up.InterruptAsync());
            Assert.False(ParafsUp.IsMounted(mnt), "Ctrl-C left the file system mounted");
        }

        await using (var again = await ParafsUp.StartAsync(data, mnt))
        {
            Assert.Equal(sha, await Shell.OkAsync($"sha256sum < '{mnt}/a'"));
        }

        Directory.Delete(root, recursive: true);
    }

    [MountFact(NeedsPostgres = true)]
    public async Task Up_with_store_postgres_runs_its_own_server_and_keeps_files_across_runs()
    {
        var root = Path.Combine(Path.GetTempPath(), $"parafs-up-pg-{Guid.NewGuid():N}");
        var data = Path.Combine(root, ".parafs");
        var mnt = Path.Combine(root, "mnt");
        try
        {
            string sha;
            await using (var up = await ParafsUp.StartAsync(data, mnt, "--store", "postgres", "--targets", "2"))
            {
                Assert.Contains("started PostgreSQL on 127.0.0.1:", up.Output, StringComparison.Ordinal);
                await Shell.OkAsync($"mkdir '{mnt}/d' && dd if=/dev/urandom of='{mnt}/d/a' bs=1M count=8 status=none");
                sha = await Shell.OkAsync($"sha256sum < '{mnt}/d/a'");
                Assert.Equal(0, await up.InterruptAsync());
            }

            Assert.False(File.Exists(Path.Combine(data, "postgres", "data", "postmaster.pid")), "up left its PostgreSQL server running");
            await using (var again = await ParafsUp.StartAsync(data, mnt, "--store", "postgres"))
            {
                Assert.Equal(sha, await Shell.OkAsync($"sha256sum < '{mnt}/d/a'"));
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
