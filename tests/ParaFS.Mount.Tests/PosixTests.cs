using System.Security.Cryptography;

namespace ParaFS.Mount.Tests;

/// <summary>Ordinary file APIs and tools through the real kernel mount of a real cluster.</summary>
public sealed class PosixTests(MountFixture fixture) : IClassFixture<MountFixture>
{
    private string Mnt => fixture.Mnt;

    private string Fresh(string name)
    {
        var dir = Path.Combine(Mnt, $"{name}-{Guid.NewGuid():N}"[..(name.Length + 9)]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    [MountFact]
    public void Create_write_read_rename_link_unlink_through_System_IO()
    {
        var dir = Fresh("basic");
        var a = Path.Combine(dir, "a");
        var data = RandomNumberGenerator.GetBytes(3 * 1024 * 1024 + 17);
        File.WriteAllBytes(a, data);
        Assert.Equal(data, File.ReadAllBytes(a));
        Assert.Equal(data.Length, new FileInfo(a).Length);

        File.Move(a, Path.Combine(dir, "b"));
        Assert.False(File.Exists(a));
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(dir, "b")));

        File.CreateSymbolicLink(Path.Combine(dir, "sym"), "b");
        Assert.Equal("b", new FileInfo(Path.Combine(dir, "sym")).LinkTarget);
        Assert.Equal(data, File.ReadAllBytes(Path.Combine(dir, "sym")));

        File.WriteAllText(Path.Combine(dir, "c"), "over");
        File.Move(Path.Combine(dir, "c"), Path.Combine(dir, "b"), overwrite: true);
        Assert.Equal("over", File.ReadAllText(Path.Combine(dir, "b")));

        Directory.CreateDirectory(Path.Combine(dir, "sub", "deeper"));
        Assert.Equal(["b", "sub", "sym"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        File.Delete(Path.Combine(dir, "b"));
        Assert.Throws<IOException>(() => Directory.Delete(Path.Combine(dir, "sub")));
        Directory.Delete(Path.Combine(dir, "sub"), recursive: true);
    }

    [MountFact]
    public async Task Hard_links_chmod_chown_utimes_truncate_and_xattrs_work_as_on_a_local_disk()
    {
        var dir = Fresh("attrs");
        var f = Path.Combine(dir, "f");
        await File.WriteAllTextAsync(f, "hello world");
        await Shell.OkAsync($"ln '{f}' '{dir}/g' && test $(stat -c %h '{f}') = 2");
        await Shell.OkAsync($"chmod 0640 '{f}' && test $(stat -c %a '{f}') = 640");
        await Shell.OkAsync($"chown 1234:5678 '{f}' && test $(stat -c %u:%g '{f}') = 1234:5678");
        await Shell.OkAsync($"touch -d '2001-02-03 04:05:06 UTC' '{f}' && test $(stat -c %Y '{f}') = 981173106");
        await Shell.OkAsync($"truncate -s 5 '{f}' && test \"$(cat '{dir}/g')\" = hello");
        await Shell.OkAsync($"truncate -s 3M '{f}' && test $(stat -c %s '{f}') = 3145728");
        await Shell.OkAsync($"setfattr -n user.color -v blue '{f}' && getfattr --only-values -n user.color '{f}' | grep -qx blue");
        var (code, output) = await Shell.RunAsync($"getfattr -n user.missing '{f}'");
        Assert.NotEqual(0, code);
        Assert.Contains("No such attribute", output, StringComparison.Ordinal);
    }

    [MountFact]
    public async Task Fallocate_punches_holes_and_dd_with_seek_makes_sparse_files()
    {
        var dir = Fresh("sparse");
        await Shell.OkAsync($"dd if=/dev/urandom of='{dir}/s' bs=1M count=1 seek=100 status=none");
        await Shell.OkAsync($"test $(stat -c %s '{dir}/s') = {101 * 1024 * 1024}");
        await Shell.OkAsync($"cmp -n 104857600 '{dir}/s' /dev/zero");
        await Shell.OkAsync($"head -c 4194304 /dev/urandom > '{dir}/p' && fallocate -p -o 1048576 -l 2097152 '{dir}/p'");
        await Shell.OkAsync($"cmp -i 1048576:0 -n 2097152 '{dir}/p' /dev/zero && test $(stat -c %s '{dir}/p') = 4194304");
    }

    /// <summary>lseek(2) SEEK_DATA / SEEK_HOLE through the kernel (FUSE_LSEEK) find the holes dd and fallocate left.</summary>
    [MountFact]
    public async Task Lseek_data_and_hole_find_what_dd_and_fallocate_left()
    {
        var dir = Fresh("seek");
        await Shell.OkAsync($"dd if=/dev/urandom of='{dir}/s' bs=1M count=1 seek=100 status=none");
        await Shell.OkAsync($"head -c 4194304 /dev/urandom > '{dir}/p' && fallocate -p -o 1048576 -l 2097152 '{dir}/p'");
        const string Seek = "import os, sys\n" +
            "fd = os.open(sys.argv[1], os.O_RDONLY)\n" +
            "for a in sys.argv[2:]:\n" +
            "    how, at = a.split(\"@\")\n" +
            "    try: print(os.lseek(fd, int(at), os.SEEK_DATA if how == \"data\" else os.SEEK_HOLE))\n" +
            "    except OSError as e: print(\"errno\", e.errno)\n";
        var script = Path.Combine(Path.GetTempPath(), $"parafs-seek-{Guid.NewGuid():N}.py");
        await File.WriteAllTextAsync(script, Seek);
        try
        {
            const int MiB = 1024 * 1024;
            var sparse = await Shell.OkAsync($"python3 '{script}' '{dir}/s' data@0 hole@0 data@{(100 * MiB) + 5} hole@{100 * MiB} data@{101 * MiB}");
            Assert.Equal($"{100 * MiB}\n0\n{(100 * MiB) + 5}\n{101 * MiB}\nerrno 6\n", sparse);
            var punched = await Shell.OkAsync($"python3 '{script}' '{dir}/p' data@0 hole@0 data@{MiB} hole@{3 * MiB}");
            Assert.Equal($"0\n{MiB}\n{3 * MiB}\n{4 * MiB}\n", punched);
        }
        finally
        {
            File.Delete(script);
        }
    }

    [MountFact]
    public async Task Cp_a_and_tar_x_of_a_real_tree_match_the_source_with_diff_r()
    {
        var dir = Fresh("tree");
        var source = Path.Combine(Path.GetTempPath(), $"parafs-src-{Guid.NewGuid():N}");
        try
        {
            await Shell.OkAsync(
                $"mkdir -p '{source}/a/b/c' '{source}/d' && head -c 3000000 /dev/urandom > '{source}/a/big' && echo small > '{source}/a/b/small' " +
                $"&& ln -s ../a/big '{source}/d/link' && ln '{source}/a/b/small' '{source}/d/hard' && : > '{source}/a/b/c/empty' && mkfifo '{source}/fifo' " +
                $"&& chmod 0750 '{source}/a/b' && touch -d 2020-01-01 '{source}/a/big'");
            // diff -r cannot compare fifos (it reports them as different): they are checked with test -p.
            await Shell.OkAsync($"cp -a '{source}' '{dir}/copy' && diff -r --no-dereference --exclude=fifo '{source}' '{dir}/copy'");
            await Shell.OkAsync($"tar -C '{source}' -cf - . | tar -C '{dir}' -xf - && mkdir -p '{dir}/x' && diff -r --no-dereference '{source}/a' '{dir}/a'");
            await Shell.OkAsync($"test $(stat -c %a '{dir}/copy/a/b') = 750 && test $(stat -c %Y '{dir}/copy/a/big') = $(stat -c %Y '{source}/a/big')");
            await Shell.OkAsync($"test $(stat -c %h '{dir}/copy/d/hard') = 2 && test -p '{dir}/copy/fifo'");
        }
        finally
        {
            Directory.Delete(source, recursive: true);
        }
    }

    [MountFact]
    public async Task A_file_striped_over_four_targets_reads_back_with_the_same_sha256()
    {
        var dir = Fresh("sha");
        var local = Path.Combine(Path.GetTempPath(), $"parafs-sha-{Guid.NewGuid():N}");
        try
        {
            await Shell.OkAsync($"head -c 67108864 /dev/urandom > '{local}' && cp '{local}' '{dir}/big'");
            var layout = await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' getstripe --json '{dir}/big'");
            Assert.Contains("\"stripe_count\": 4", layout, StringComparison.Ordinal);
            await Shell.OkAsync($"sync; echo 3 > /proc/sys/vm/drop_caches; test \"$(sha256sum < '{local}')\" = \"$(sha256sum < '{dir}/big')\"");
        }
        finally
        {
            File.Delete(local);
        }
    }

    [MountFact]
    public async Task Another_uid_gets_EACCES_on_a_private_file()
    {
        var dir = Fresh("perm");
        await Shell.OkAsync($"chmod 0755 '{dir}' && echo secret > '{dir}/private' && chmod 0600 '{dir}/private' && echo open > '{dir}/public' && chmod 0644 '{dir}/public'");
        var (code, output) = await Shell.RunAsync($"setpriv --reuid=4321 --regid=4321 --clear-groups cat '{dir}/private'");
        Assert.NotEqual(0, code);
        Assert.Contains("Permission denied", output, StringComparison.Ordinal);
        Assert.Equal("open\n", await Shell.OkAsync($"setpriv --reuid=4321 --regid=4321 --clear-groups cat '{dir}/public'"));
        (code, output) = await Shell.RunAsync($"setpriv --reuid=4321 --regid=4321 --clear-groups touch '{dir}/not-mine'");
        Assert.NotEqual(0, code);
        Assert.Contains("Permission denied", output, StringComparison.Ordinal);
    }

    [MountFact]
    public async Task Layouts_show_as_the_parafs_layout_virtual_xattr()
    {
        var dir = Fresh("vx");
        await Shell.OkAsync($"setfattr -n parafs.layout -v 'stripe_count=2 stripe_size=65536' '{dir}'");
        await Shell.OkAsync($"head -c 300000 /dev/urandom > '{dir}/f'");
        var layout = await Shell.OkAsync($"getfattr --only-values -n parafs.layout '{dir}/f'");
        Assert.Contains("stripe_count=2", layout, StringComparison.Ordinal);
        Assert.Contains("stripe_size=65536", layout, StringComparison.Ordinal);
    }
}
