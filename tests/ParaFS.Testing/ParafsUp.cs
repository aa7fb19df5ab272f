using System.Diagnostics;
using System.Text.RegularExpressions;

namespace ParaFS.Testing;

/// <summary>
/// `parafs up` in a child process: an MDS, OSTs and the kernel mount, all real. Disposing stops it
/// with SIGINT (a clean unmount) and, whatever happened, never leaves a dead mount point behind.
/// </summary>
public sealed partial class ParafsUp : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];

    /// <summary>The temporary directory this instance made for data and mount point (deleted on dispose), if any.</summary>
    private readonly string? _ownedRoot;

    private ParafsUp(Process process, string data, string mount, string? ownedRoot)
    {
        _process = process;
        _ownedRoot = ownedRoot;
        Data = data;
        MountPoint = mount;
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Data { get; }

    public string MountPoint { get; }

    public string Mds { get; private set; } = "";

    public int Pid => _process.Id;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join('\n', _output);
            }
        }
    }

    public static string ParafsDll => Path.Combine(AppContext.BaseDirectory, "parafs.dll");

    public static async Task<ParafsUp> StartAsync(string? data = null, string? mount = null, params string[] extra)
    {
        var root = Path.Combine(Path.GetTempPath(), $"parafs-up-{Guid.NewGuid():N}");
        var owned = data is null && mount is null ? root : null;
        data ??= Path.Combine(root, "data");
        mount ??= Path.Combine(root, "mnt");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { ParafsDll, "up", "--data", data, "--mount", mount }.Concat(extra))
        {
            info.ArgumentList.Add(a);
        }

        var up = new ParafsUp(Process.Start(info)!, data, mount, owned);
        try
        {
            await up.WaitForAsync("is mounted at", TimeSpan.FromSeconds(90));
            up.Mds = MdsLine().Match(up.Output).Groups[1].Value;
        }
        catch
        {
            await up.DisposeAsync();
            throw;
        }

        return up;
    }

    public async Task WaitForAsync(string fragment, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Output.Contains(fragment, StringComparison.Ordinal))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"parafs up exited with {_process.ExitCode} before '{fragment}':\n{Output}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"parafs up did not say '{fragment}' in {timeout.TotalSeconds} s:\n{Output}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>SIGINT, as Ctrl-C: unmounts and stops everything; returns the exit code.</summary>
    public async Task<int> InterruptAsync()
    {
        if (!_process.HasExited)
        {
            await Shell.RunAsync($"kill -INT {_process.Id}");
            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await _process.WaitForExitAsync(cancel.Token);
        }

        return _process.ExitCode;
    }

    /// <summary>kill -9: the mount is left behind with no daemon.</summary>
    public void KillHard()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await InterruptAsync();
        }
        catch (OperationCanceledException)
        {
            KillHard();
        }
        finally
        {
            if (IsMounted(MountPoint))
            {
                await Shell.RunAsync($"umount -l '{MountPoint}'");
            }

            _process.Dispose();
            if (_ownedRoot is not null && !IsMounted(MountPoint))
            {
                Directory.Delete(_ownedRoot, recursive: true);
            }
        }
    }

    public static bool IsMounted(string mountPoint) =>
        File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ') is var f && f.Length > 4 && f[4] == mountPoint);

    [GeneratedRegex(@"MDS (\S+?)\.\s*$", RegexOptions.Multiline)]
    private static partial Regex MdsLine();

    private void Add(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.Add(line);
            }
        }
    }
}
