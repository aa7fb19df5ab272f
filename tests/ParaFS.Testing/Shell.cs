using System.Diagnostics;

namespace ParaFS.Testing;

/// <summary>Runs ordinary tools (dd, cp, tar, sha256sum, setpriv) against the mount, as a user would.</summary>
public static class Shell
{
    public static async Task<(int Code, string Output)> RunAsync(string command, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(command);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{command}` did not finish in time: it hung");
        }

        return (process.ExitCode, (await stdout) + (await stderr));
    }

    /// <summary>Runs a command that must succeed and returns its output.</summary>
    public static async Task<string> OkAsync(string command, TimeSpan? timeout = null)
    {
        var (code, output) = await RunAsync(command, timeout);
        return code == 0 ? output : throw new InvalidOperationException($"`{command}` exited {code}:\n{output}");
    }
}
