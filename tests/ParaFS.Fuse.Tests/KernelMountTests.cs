using System.Diagnostics;
using System.Runtime.Versioning;
using ParaFS.Fuse.Mounting;

namespace ParaFS.Fuse.Tests;

/// <summary>
/// The library under the real kernel: mount a <see cref="MemoryFileSystem"/> in a temp directory
/// and use it with System.IO and ordinary tools.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class KernelMountTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [FuseFact]
    public async Task Files_and_directories_made_through_the_mount_behave_like_files()
    {
        await using var mount = Mounted.Start(new MemoryFileSystem());
        var file = Path.Combine(mount.Path, "hello.txt");

        await File.WriteAllTextAsync(file, "hello, fuse");
        Assert.Equal("hello, fuse", await File.ReadAllTextAsync(file));
        Assert.Equal(11, new FileInfo(file).Length);

        Directory.CreateDirectory(Path.Combine(mount.Path, "dir"));
        File.Move(file, Path.Combine(mount.Path, "dir", "moved.txt"));
        Assert.False(File.Exists(file));
        Assert.Equal([Path.Combine(mount.Path, "dir", "moved.txt")], Directory.GetFiles(Path.Combine(mount.Path, "dir")));
        Assert.Equal([Path.Combine(mount.Path, "dir")], Directory.GetDirectories(mount.Path));

        var moved = Path.Combine(mount.Path, "dir", "moved.txt");
        File.SetUnixFileMode(moved, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(moved));
        Assert.Equal("600 11 regular file", await RunAsync("stat", "-c", "%a %s %F", moved));

        var link = Path.Combine(mount.Path, "link");
        File.CreateSymbolicLink(link, "dir/moved.txt");
        Assert.Equal("dir/moved.txt", new FileInfo(link).LinkTarget);
        Assert.Equal("hello, fuse", await File.ReadAllTextAsync(link));

        await File.AppendAllTextAsync(moved, "!");
        Assert.Equal("hello, fuse!", await File.ReadAllTextAsync(moved));
        await File.WriteAllTextAsync(moved, "short"); // O_TRUNC in OPEN (ATOMIC_O_TRUNC)
        Assert.Equal("short", await File.ReadAllTextAsync(moved));

        File.Delete(link);
        File.Delete(moved);
        Directory.Delete(Path.Combine(mount.Path, "dir"));
        Assert.Empty(Directory.GetFileSystemEntries(mount.Path));
        Assert.Equal("fuse.parafstest", KernelMount.FindMount(mount.Path));
    }

    [FuseFact]
    public async Task The_read_ahead_asked_for_is_in_force_after_INIT()
    {
        static int ReadAheadKb(string mountPoint) =>
            int.Parse(File.ReadAllText($"/sys/class/bdi/{KernelMount.FindDevice(mountPoint)}/read_ahead_kb").Trim(), System.Globalization.CultureInfo.InvariantCulture);

        await using (var plain = Mounted.Start(new MemoryFileSystem()))
        {
            Assert.Empty(Directory.GetFileSystemEntries(plain.Path)); // INIT has been answered
            Assert.True(ReadAheadKb(plain.Path) <= 128, $"a FUSE mount starts at 128 KiB or less, this one has {ReadAheadKb(plain.Path)}");
        }

        // Set before INIT, the kernel would cap it again to what INIT negotiated.
        await using var raised = Mounted.Start(new MemoryFileSystem(), readAheadKb: 2048);
        Assert.Empty(Directory.GetFileSystemEntries(raised.Path));

        // The reader that answered INIT sets it just after the answer, so allow it a moment.
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (ReadAheadKb(raised.Path) != 2048 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Equal(2048, ReadAheadKb(raised.Path));
    }

    [FuseFact]
    public async Task Eight_MiB_round_trips_and_travels_in_requests_larger_than_128_KiB()
    {
        var fs = new MemoryFileSystem();
        await using var mount = Mounted.Start(fs);
        var file = Path.Combine(mount.Path, "big.bin");
        var data = new byte[8 * 1024 * 1024];
        new Random(1234).NextBytes(data);

        await using (var stream = new FileStream(file, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0))
        {
            for (var offset = 0; offset < data.Length; offset += 1024 * 1024)
            {
                await stream.WriteAsync(data.AsMemory(offset, 1024 * 1024));
            }
        }

        Assert.Equal(data.Length, new FileInfo(file).Length);
        Assert.True(fs.LargestWrite > 128 * 1024, $"largest WRITE was {fs.LargestWrite} bytes: MAX_PAGES/BIG_WRITES not in effect");
        var back = await File.ReadAllBytesAsync(file);
        Assert.True(data.AsSpan().SequenceEqual(back), "the data read back differs");
    }

    [FuseFact]
    public async Task Parallel_writers_and_readers_each_see_their_own_data_through_cloned_descriptors()
    {
        await using var mount = Mounted.Start(new MemoryFileSystem());

        // Four readers: the descriptor from mount(2) and three FUSE_DEV_IOC_CLONE clones.
        var fuseFds = Directory.GetFiles("/proc/self/fd").Count(fd => new FileInfo(fd).LinkTarget == "/dev/fuse");
        Assert.True(fuseFds >= 4, $"{fuseFds} /dev/fuse descriptors open");

        var workers = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            var data = new byte[(256 * 1024) + i];
            new Random(i).NextBytes(data);
            var file = Path.Combine(mount.Path, $"worker-{i}");
            for (var round = 0; round < 5; round++)
            {
                await File.WriteAllBytesAsync(file, data);
                var back = await File.ReadAllBytesAsync(file);
                Assert.True(data.AsSpan().SequenceEqual(back), $"worker {i} round {round} read other data");
            }
        }));
        await Task.WhenAll(workers).WaitAsync(Timeout);
        Assert.Equal(8, Directory.GetFiles(mount.Path).Length);
    }

    [FuseFact]
    public async Task Unmount_recovers_a_mount_point_whose_daemon_never_answered()
    {
        var path = Directory.CreateTempSubdirectory("parafs-fuse-").FullName;
        try
        {
            await using (var session = FuseSession.Mount(new FuseMountOptions { MountPoint = path }))
            {
                Assert.True(KernelMount.IsMounted(path));
                Assert.True(FuseSession.Unmount(path, lazy: true));
                Assert.False(KernelMount.IsMounted(path));
                Assert.False(FuseSession.Unmount(path));
            }

            // Disposing a session that never ran unmounts it too.
            var unused = FuseSession.Mount(new FuseMountOptions { MountPoint = path });
            await unused.DisposeAsync();
            Assert.False(KernelMount.IsMounted(path));
        }
        finally
        {
            if (KernelMount.IsMounted(path))
            {
                FuseSession.Unmount(path, lazy: true);
            }

            Directory.Delete(path);
        }
    }

    [FuseFact]
    public async Task The_session_ends_when_the_file_system_is_unmounted_with_umount()
    {
        var fs = new MemoryFileSystem();
        var mount = Mounted.Start(fs);
        try
        {
            await File.WriteAllTextAsync(Path.Combine(mount.Path, "x"), "x");
            await RunAsync("umount", mount.Path);

            await mount.Run.WaitAsync(Timeout);
            Assert.True(fs.Destroyed);
            Assert.False(KernelMount.IsMounted(mount.Path));
        }
        finally
        {
            await mount.DisposeAsync();
        }
    }

    [FuseFact]
    public async Task Cancelling_RunAsync_unmounts()
    {
        var mount = Mounted.Start(new MemoryFileSystem());
        try
        {
            Assert.True(KernelMount.IsMounted(mount.Path));
            await mount.Stop.CancelAsync();
            await mount.Run.WaitAsync(Timeout);
            Assert.False(KernelMount.IsMounted(mount.Path));
        }
        finally
        {
            await mount.DisposeAsync();
        }
    }

    [FuseFact]
    public async Task Mounting_on_a_mount_point_already_mounted_names_the_path_and_the_remedy()
    {
        await using var mount = Mounted.Start(new MemoryFileSystem());
        var e = Assert.Throws<FuseMountException>(() => FuseSession.Mount(new FuseMountOptions { MountPoint = mount.Path }));
        Assert.Contains(mount.Path, e.Message, StringComparison.Ordinal);
        Assert.Contains("already mounted", e.Message, StringComparison.Ordinal);
        Assert.Contains("umount -l", e.Message, StringComparison.Ordinal);
    }

    [FuseFact]
    public async Task Invalidating_an_entry_makes_the_kernel_forget_a_cached_name()
    {
        var fs = new MemoryFileSystem { EntryTimeout = TimeSpan.FromHours(1), AttrTimeout = TimeSpan.FromHours(1) };
        fs.AddFile(1, "cached", "x"u8.ToArray());
        await using var mount = Mounted.Start(fs);
        var path = Path.Combine(mount.Path, "cached");
        Assert.True(File.Exists(path));

        fs.RemoveEntryBehindKernel(1, "cached");
        Assert.True(File.Exists(path), "the kernel should still hold the entry from its cache");

        mount.Session.InvalidateEntry(1, "cached");
        await Poll(() => !File.Exists(path), "the entry is still visible after FUSE_NOTIFY_INVAL_ENTRY");
    }

    [FuseFact]
    public async Task Invalidating_an_inode_makes_the_kernel_fetch_new_attributes_and_data()
    {
        var fs = new MemoryFileSystem { EntryTimeout = TimeSpan.FromHours(1), AttrTimeout = TimeSpan.FromHours(1) };
        var id = fs.AddFile(1, "data", "old"u8.ToArray());
        await using var mount = Mounted.Start(fs);
        var path = Path.Combine(mount.Path, "data");
        Assert.Equal(3, new FileInfo(path).Length);

        // Only stat before: a read would invalidate atime, and a later stat would fetch everything.
        fs.SetContentBehindKernel(id, "brand new"u8.ToArray());
        Assert.Equal(3, new FileInfo(path).Length);

        mount.Session.InvalidateInode(id);
        await Poll(() => new FileInfo(path).Length == 9, "the size is still cached after FUSE_NOTIFY_INVAL_INODE");
        Assert.Equal("brand new", await File.ReadAllTextAsync(path));
    }

    [FuseFact]
    public async Task A_signal_to_a_blocked_reader_interrupts_the_request_and_cancels_the_handler()
    {
        var fs = new HangingReadFileSystem { DirectIo = true };
        fs.AddFile(1, "hang", new byte[4096]);
        await using var mount = Mounted.Start(fs);
        using var cat = Process.Start(new ProcessStartInfo("cat", Path.Combine(mount.Path, "hang")) { RedirectStandardOutput = true })!;
        await fs.Entered.Task.WaitAsync(Timeout);

        cat.Kill();

        await cat.WaitForExitAsync().WaitAsync(Timeout);
        await fs.Cancelled.Task.WaitAsync(Timeout);
    }

    [FuseFact]
    public async Task A_file_system_bug_is_answered_EIO_and_the_mount_keeps_working()
    {
        await using var mount = Mounted.Start(new FailingLookupFileSystem());
        Assert.Throws<IOException>(() => File.ReadAllBytes(Path.Combine(mount.Path, "boom")));
        await File.WriteAllTextAsync(Path.Combine(mount.Path, "fine"), "still here");
        Assert.Equal("still here", await File.ReadAllTextAsync(Path.Combine(mount.Path, "fine")));
    }

    [FusermountFact]
    public async Task Mounting_through_fusermount3_serves_the_same_file_system()
    {
        await using var mount = Mounted.Start(new MemoryFileSystem(), useFusermount: true);
        var file = Path.Combine(mount.Path, "via-fusermount");
        await File.WriteAllTextAsync(file, "passed over SCM_RIGHTS");
        Assert.Equal("passed over SCM_RIGHTS", await File.ReadAllTextAsync(file));
        Assert.Equal("fuse.parafstest", KernelMount.FindMount(mount.Path));
    }

    [Fact]
    public void Mounting_on_a_missing_directory_names_the_path()
    {
        var path = Path.Combine(Path.GetTempPath(), "parafs-fuse-missing-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<FuseMountException>(() => FuseSession.Mount(new FuseMountOptions { MountPoint = path }));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mounting_on_a_regular_file_names_the_path()
    {
        var path = Path.GetTempFileName();
        try
        {
            var e = Assert.Throws<FuseMountException>(() => FuseSession.Mount(new FuseMountOptions { MountPoint = path }));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains("not a directory", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static async Task Poll(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure);
            await Task.Delay(20);
        }
    }

    private static async Task<string> RunAsync(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(Timeout);
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', arguments)} failed: {error}");
        return output.Trim();
    }

    /// <summary>
    /// A mounted session in a fresh temp directory. Disposing stops it and, whatever happened,
    /// never leaves a mount behind: if the mount point is still mounted it is detached lazily.
    /// </summary>
    private sealed class Mounted : IAsyncDisposable
    {
        private Mounted(string path, FuseSession session, Task run, CancellationTokenSource stop)
        {
            Path = path;
            Session = session;
            Run = run;
            Stop = stop;
        }

        public string Path { get; }

        public FuseSession Session { get; }

        public Task Run { get; }

        public CancellationTokenSource Stop { get; }

        public static Mounted Start(IFuseFileSystem fileSystem, bool useFusermount = false, int readAheadKb = 0)
        {
            var path = Directory.CreateTempSubdirectory("parafs-fuse-").FullName;
            var session = FuseSession.Mount(new FuseMountOptions
            {
                MountPoint = path,
                FsName = "parafs-test",
                Subtype = "parafstest",
                UseFusermount = useFusermount,
                ReadAheadKb = readAheadKb,
            });
            var stop = new CancellationTokenSource();
            return new Mounted(path, session, session.RunAsync(fileSystem, stop.Token), stop);
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await Stop.CancelAsync();
                await Run.WaitAsync(Timeout);
                await Session.DisposeAsync().AsTask().WaitAsync(Timeout);
            }
            finally
            {
                if (KernelMount.IsMounted(Path))
                {
                    FuseSession.Unmount(Path, lazy: true);
                }

                Stop.Dispose();
                Directory.Delete(Path);
            }
        }
    }

    private sealed class HangingReadFileSystem : MemoryFileSystem
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async ValueTask<int> ReadAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, Memory<byte> destination)
        {
            Entered.TrySetResult();
            try
            {
                await Task.Delay(System.Threading.Timeout.InfiniteTimeSpan, context.Cancellation);
            }
            catch (OperationCanceledException)
            {
                Cancelled.TrySetResult();
                throw;
            }

            return 0;
        }
    }

    private sealed class FailingLookupFileSystem : MemoryFileSystem
    {
        public override ValueTask<FuseEntry> LookupAsync(FuseContext context, ulong parent, string name) =>
            name == "boom" ? throw new InvalidOperationException("a bug in the file system") : base.LookupAsync(context, parent, name);
    }
}
