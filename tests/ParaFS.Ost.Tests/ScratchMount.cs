using System.Diagnostics;
using Xunit.Abstractions;

namespace ParaFS.Ost.Tests;

/// <summary>
/// A small file system mounted for one test (a tmpfs to fill, a ramfs that refuses O_DIRECT) and
/// unmounted when disposed. Mounting needs root: elsewhere the test says in its output that it was
/// skipped and why (CI runs the tests as root).
/// </summary>
internal sealed class ScratchMount : IAsyncDisposable
{
    private readonly ITestOutputHelper _output;

    private ScratchMount(string path, ITestOutputHelper output)
    {
        Path = path;
        _output = output;
    }

    public string Path { get; }

    /// <summary>Mounts at <paramref name="path"/> with <paramref name="mountArguments"/>; null (and a line in the output) when it cannot.</summary>
    public static async Task<ScratchMount?> TryMountAsync(ITestOutputHelper output, string what, string path, params string[] mountArguments)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            output.WriteLine($"skipped: mounting {what} needs root (CI runs tests as root)");
            return null;
        }

        Directory.CreateDirectory(path);
        if (await RunAsync("mount", [.. mountArguments, path]) is { } failure)
        {
            output.WriteLine($"skipped: cannot mount {what} here ({failure})");
            return null;
        }

        return new ScratchMount(path, output);
    }

    public async ValueTask DisposeAsync()
    {
        if (await RunAsync("umount", Path) is { } stuck)
        {
            await RunAsync("umount", "-l", Path);
            _output.WriteLine($"umount needed -l: {stuck}");
        }
    }

    /// <summary>Runs a command; null when it succeeded, else what it said.</summary>
    private static async Task<string?> RunAsync(string command, params string[] args)
    {
        var start = new ProcessStartInfo(command) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0 ? null : $"{command} exited {process.ExitCode}: {error.Trim()}";
    }
}
