using System.Diagnostics;

namespace ParaFS.Mount.Tests;

/// <summary>
/// fcntl record locks and flock(2) through two real kernel mounts of one cluster: the MDS keeps
/// them, so a lock taken through one mount holds against the other (two mounts are two superblocks:
/// the kernel's own lock code never sees across them, as it never sees across machines).
/// </summary>
public sealed class LockTests
{
    /// <summary>Takes a lock on FILE and holds it until a line arrives on stdin: flock KIND, or fcntl KIND START LENGTH.</summary>
    private const string Holder = """
        import fcntl, os, sys
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
        kind = fcntl.LOCK_EX if sys.argv[3] == "ex" else fcntl.LOCK_SH
        if sys.argv[2] == "flock":
            fcntl.flock(fd, kind)
        else:
            fcntl.lockf(fd, kind, int(sys.argv[5]), int(sys.argv[4]))
        print("locked", flush=True)
        sys.stdin.readline()
        """;

    /// <summary>Tries a lock without waiting and prints "got" or "busy"; fcntl also prints what F_GETLK says.</summary>
    private const string Try = """
        import errno, fcntl, os, struct, sys
        fd = os.open(sys.argv[1], os.O_RDWR)
        kind = fcntl.LOCK_EX if sys.argv[3] == "ex" else fcntl.LOCK_SH
        if sys.argv[2] == "getlk":
            start, length = int(sys.argv[4]), int(sys.argv[5])
            arg = struct.pack("hhqqi", fcntl.F_WRLCK, 0, start, length, 0)
            t, w, s, l, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, arg)[:struct.calcsize("hhqqi")])
            print(f"type={t} start={s} len={l} pid={pid}")
            sys.exit(0)
        try:
            if sys.argv[2] == "flock":
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
            else:
                fcntl.lockf(fd, kind | fcntl.LOCK_NB, int(sys.argv[5]), int(sys.argv[4]))
            print("got")
        except OSError as e:
            print("busy" if e.errno in (errno.EAGAIN, errno.EACCES) else f"error {e.errno}")
        """;

    [MountFact]
    public async Task Locks_taken_through_one_mount_hold_against_another()
    {
        await using var up = await ParafsUp.StartAsync();
        await using var mount = await ExtraMount.StartAsync(up.Mds);
        var a = Path.Combine(up.MountPoint, "lockfile");
        var b = Path.Combine(mount.MountPoint, "lockfile");
        await File.WriteAllBytesAsync(a, new byte[4096]);

        // flock: an exclusive holder on A keeps B out, shared or exclusive; a blocked
        // flock(1) on B goes on once A lets go.
        await using (var holder = await HoldAsync(a, "flock", "ex"))
        {
            Assert.Equal("busy", await TryAsync(b, "flock", "ex"));
            Assert.Equal("busy", await TryAsync(b, "flock", "sh"));
            Assert.Equal("got", await TryAsync(a, "fcntl", "ex", 0, 100)); // record locks are another family
            var waiter = Shell.RunAsync($"flock '{b}' -c 'echo waited'", TimeSpan.FromSeconds(60));
            await Task.Delay(700);
            Assert.False(waiter.IsCompleted, "flock on the other mount did not wait for the holder");
            await holder.LetGoAsync();
            var (code, output) = await waiter;
            Assert.True(code == 0 && output.Contains("waited", StringComparison.Ordinal), $"the waiting flock: exit {code}: {output}");
        }

        // A flock goes with the RELEASE of its file, which the kernel sends after close returns.
        await Eventually.TrueAsync(async () => await TryAsync(b, "flock", "ex") == "got", "the flock is free once its holders exited");
        await using (await HoldAsync(a, "flock", "sh"))
        {
            Assert.Equal("got", await TryAsync(b, "flock", "sh"));
            Assert.Equal("busy", await TryAsync(b, "flock", "ex"));
        }

        // fcntl record locks: bytes 0-99 written-locked on A; B is kept out of them only.
        await using (await HoldAsync(a, "fcntl", "ex", 0, 100))
        {
            Assert.Equal("busy", await TryAsync(b, "fcntl", "sh", 10, 10));
            Assert.Equal("busy", await TryAsync(b, "fcntl", "ex", 99, 1));
            Assert.Equal("got", await TryAsync(b, "fcntl", "ex", 100, 50));
            Assert.Equal("type=1 start=0 len=100 pid=0", await TryAsync(b, "getlk", "ex", 50, 10));
            Assert.Equal("type=2 start=200 len=10 pid=0", await TryAsync(b, "getlk", "ex", 200, 10));
        }

        // The holder's exit closed the file: the range is free again on the other mount.
        Assert.Equal("got", await TryAsync(b, "fcntl", "ex", 0, 0));

        await using (await HoldAsync(a, "fcntl", "sh", 0, 0))
        {
            Assert.Equal("got", await TryAsync(b, "fcntl", "sh", 0, 0));
            Assert.Equal("busy", await TryAsync(b, "fcntl", "ex", 4000, 1));
        }
    }

    /// <summary>
    /// The MDS is killed (-9) and started again on its data while a process on mount A holds a
    /// flock and a record lock: A's client brings them back, and B, asking during the recovery
    /// window, waits for it to end and then finds them held.
    /// </summary>
    [MountFact]
    public async Task Locks_outlive_a_kill_9_of_the_mds()
    {
        var root = Path.Combine(Path.GetTempPath(), $"parafs-lockrestart-{Guid.NewGuid():N}");
        var listen = $"127.0.0.1:{ParafsProcess.FreePort()}";
        string[] mdsArgs = ["mds", "--data", Path.Combine(root, "mds"), "--listen", listen, "--lease-ms", "4000"];
        var mds = ParafsProcess.Start(mdsArgs);
        try
        {
            await mds.WaitForListeningPortAsync();
            await using var ost = ParafsProcess.Start("ost", "--data", Path.Combine(root, "ost"), "--listen", "127.0.0.1:0", "--mds", listen, "--pool", "default");
            await ost.WaitForListeningPortAsync();
            await using var mountA = await ExtraMount.StartAsync(listen);
            await using var mountB = await ExtraMount.StartAsync(listen);
            var a = Path.Combine(mountA.MountPoint, "lockfile");
            var b = Path.Combine(mountB.MountPoint, "lockfile");
            await File.WriteAllBytesAsync(a, new byte[4096]);
            await using var flockHolder = await HoldAsync(a, "flock", "ex");
            await using var recordHolder = await HoldAsync(a, "fcntl", "ex", 0, 100);
            Assert.Equal("busy", await TryAsync(b, "flock", "sh"));

            await mds.KillAsync();
            await mds.DisposeAsync();
            mds = ParafsProcess.Start(mdsArgs);
            await mds.WaitForOutputAsync("recovering: for 4 s");

            var asked = Stopwatch.StartNew();
            Assert.Equal("busy", await TryAsync(b, "flock", "sh"));
            Assert.True(asked.Elapsed > TimeSpan.FromSeconds(1), $"B was answered after {asked.Elapsed}, inside the MDS's 4 s recovery window");
            Assert.Equal("busy", await TryAsync(b, "fcntl", "ex", 50, 10));
            Assert.Equal("type=1 start=0 len=100 pid=0", await TryAsync(b, "getlk", "ex", 50, 10));
            Assert.Equal("got", await TryAsync(b, "fcntl", "ex", 100, 10));

            await flockHolder.LetGoAsync();
            await Eventually.TrueAsync(async () => await TryAsync(b, "flock", "ex") == "got", "the flock is free once its holder exited");
        }
        finally
        {
            await mds.DisposeAsync();
            Directory.Delete(root, recursive: true);
        }
    }

    [MountFact]
    public async Task Localflock_keeps_locks_on_this_machine()
    {
        await using var up = await ParafsUp.StartAsync(extra: ["-o", "localflock"]);
        var file = Path.Combine(up.MountPoint, "local");
        await File.WriteAllBytesAsync(file, new byte[10]);
        await using (await HoldAsync(file, "flock", "ex"))
        {
            // The kernel's own flock still works within the mount.
            Assert.Equal("busy", await TryAsync(file, "flock", "ex"));
        }

        Assert.Equal("got", await TryAsync(file, "flock", "ex"));
    }

    private static async Task<string> TryAsync(string file, string how, string kind, long start = 0, long length = 0) =>
        (await Shell.OkAsync($"python3 -c '{Try}' '{file}' {how} {kind} {start} {length}")).Trim();

    private static async Task<LockHolder> HoldAsync(string file, string how, string kind, long start = 0, long length = 0)
    {
        var info = new ProcessStartInfo("python3") { UseShellExecute = false, RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-c", Holder, file, how, kind, start.ToString(System.Globalization.CultureInfo.InvariantCulture), length.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            info.ArgumentList.Add(a);
        }

        var process = Process.Start(info)!;
        var holder = new LockHolder(process);
        try
        {
            var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(line == "locked", $"the holder did not lock {file}: it said '{line}'");
            return holder;
        }
        catch
        {
            await holder.DisposeAsync();
            throw;
        }
    }

    /// <summary>A process holding a lock; it lets go (closes the file and exits) when told, or when disposed.</summary>
    private sealed class LockHolder(Process process) : IAsyncDisposable
    {
        public async Task LetGoAsync()
        {
            if (!process.HasExited)
            {
                await process.StandardInput.WriteLineAsync();
                await process.StandardInput.FlushAsync();
                await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            }
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                await LetGoAsync();
            }
            finally
            {
                if (!process.HasExited)
                {
                    process.Kill();
                }

                process.Dispose();
            }
        }
    }
}
