using System.Diagnostics;

namespace ParaFS.Testing;

/// <summary>
/// One more `parafs mount` of a running cluster (another client, as on another node), in a child
/// process at a directory of its own; disposing it stops the daemon (SIGINT), unmounts what is
/// left and removes the directory.
/// </summary>
public sealed class ExtraMount : IAsyncDisposable
{
    private readonly Process _process;

    private ExtraMount(Process process, string mountPoint)
    {
        _process = process;
        MountPoint = mountPoint;
    }

    public string MountPoint { get; }

    public static async Task<ExtraMount> StartAsync(string mds)
    {
        var mountPoint = Path.Combine(Path.GetTempPath(), $"parafs-mnt2-{Guid.NewGuid():N}");
        Directory.CreateDirectory(mountPoint);
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { ParafsUp.ParafsDll, "mount", mds, mountPoint })
        {
            info.ArgumentList.Add(a);
        }

        var mount = new ExtraMount(Process.Start(info)!, mountPoint);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!ParafsUp.IsMounted(mountPoint) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        if (!ParafsUp.IsMounted(mountPoint))
        {
            await mount.DisposeAsync();
            throw new InvalidOperationException($"the extra mount at {mountPoint} never appeared");
        }

        return mount;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                await Shell.RunAsync($"kill -INT {_process.Id}");
                await _process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token);
            }
        }
        finally
        {
            if (ParafsUp.IsMounted(MountPoint))
            {
                await Shell.RunAsync($"umount -l '{MountPoint}'");
            }

            _process.Dispose();
            Directory.Delete(MountPoint, recursive: false);
        }
    }
}
