using System.Diagnostics;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace ParaFS.PropTests;

/// <summary>`parafs up` (MDS, 4 OSTs, mount A) and a second `parafs mount` (mount B, its own client) of the same file system.</summary>
public sealed class TwoMountFixture : IAsyncLifetime
{
    private Process? _second;

    public ParafsUp? Up { get; private set; }

    public string SecondMount { get; } = Path.Combine(Path.GetTempPath(), $"parafs-prop-mnt2-{Guid.NewGuid():N}");

    public bool CanMount => File.Exists("/dev/fuse") && Environment.UserName == "root";

    public async Task InitializeAsync()
    {
        if (!CanMount)
        {
            return;
        }

        Up = await ParafsUp.StartAsync();
        Directory.CreateDirectory(SecondMount);
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { ParafsUp.ParafsDll, "mount", Up.Mds, SecondMount })
        {
            info.ArgumentList.Add(a);
        }

        _second = Process.Start(info)!;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!ParafsUp.IsMounted(SecondMount))
        {
            if (DateTime.UtcNow > deadline || _second.HasExited)
            {
                throw new InvalidOperationException($"the second mount of {Up.Mds} at {SecondMount} did not come up");
            }

            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        if (_second is not null)
        {
            await Shell.RunAsync($"kill -TERM {_second.Id}");
            await _second.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
            if (ParafsUp.IsMounted(SecondMount))
            {
                await Shell.RunAsync($"umount -l '{SecondMount}'");
            }

            Directory.Delete(SecondMount, recursive: false);
        }

        if (Up is not null)
        {
            await Up.DisposeAsync();
        }
    }
}

/// <summary>The same model-based sequences through the real kernel mount, and through two mounts.</summary>
public sealed class MountConsistencyTests(TwoMountFixture fixture, ITestOutputHelper output) : IClassFixture<TwoMountFixture>
{
    private static int _cases;

    [MountFact]
    public void Random_operation_sequences_through_the_kernel_mount_match_the_model()
    {
        PropertyCheck.Run(Prop.ForAll(Generators.Sequences(faults: false, maxLength: ModelRunner.MaxOps(40)), ops => Run(ops, twoMounts: false)), maxTests: ModelRunner.Scale(300));
        Report("kernel mount");
    }

    [MountFact]
    public void What_one_mount_wrote_and_closed_another_mount_reads_back_exactly()
    {
        PropertyCheck.Run(Prop.ForAll(Generators.Sequences(faults: false, maxLength: ModelRunner.MaxOps(30)), ops => Run(ops, twoMounts: true)), maxTests: ModelRunner.Scale(180));
        Report("two mounts");
    }

    private void Report(string label)
    {
        var (sequences, operations) = ModelRunner.Totals(label);
        output.WriteLine($"{label}: {sequences} sequences, {operations} operations");
    }

    private bool Run(Op[] ops, bool twoMounts)
    {
        var name = $"case-{Interlocked.Increment(ref _cases)}-{Guid.NewGuid():N}";
        Task.Run(async () =>
        {
            await using var sut = new MountSut(Path.Combine(fixture.Up!.MountPoint, name), twoMounts ? Path.Combine(fixture.SecondMount, name) : null);
            await ModelRunner.RunAsync(sut, ops, twoMounts ? "two mounts" : "kernel mount");
        }).GetAwaiter().GetResult();

        // The case ran on the mount: its directory is there, as seen from the other mount too.
        Assert.True(Directory.Exists(Path.Combine(twoMounts ? fixture.SecondMount : fixture.Up!.MountPoint, name)));
        return true;
    }
}
