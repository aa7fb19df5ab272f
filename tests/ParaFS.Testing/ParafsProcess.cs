using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace ParaFS.Testing;

/// <summary>
/// A real <c>parafs</c> daemon as a child process (<c>dotnet parafs.dll VERB ...</c>), with its
/// output captured, so a test can kill -9 it for real. Disposing it kills it if it still runs.
/// </summary>
public sealed partial class ParafsProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    private ParafsProcess(Process process)
    {
        _process = process;
    }

    public string Output => string.Join('\n', _output);

    public bool HasExited => _process.HasExited;

    public int Id => _process.Id;

    /// <summary>Starts <c>parafs</c> with these arguments, the verb first (<c>"mds", "--data", ...</c>).</summary>
    public static ParafsProcess Start(params string[] args)
    {
        var start = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ParafsDll());
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // Settings come from the command line only, whatever the test runner's environment holds.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("PARAFS_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(key);
        }

        var process = new Process { StartInfo = start };
        var child = new ParafsProcess(process);
        process.OutputDataReceived += (_, e) => child.Add(e.Data);
        process.ErrorDataReceived += (_, e) => child.Add(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Waits for the line that says where it listens, and returns the port.</summary>
    public async Task<int> WaitForListeningPortAsync()
    {
        var line = await WaitForOutputAsync("RPC server listening on");
        return int.Parse(ListeningPort().Match(line).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task<string> WaitForOutputAsync(string fragment)
    {
        await Eventually.TrueAsync(
            () => _output.Any(l => l.Contains(fragment, StringComparison.Ordinal)) || _process.HasExited,
            $"'{fragment}' from parafs");
        return _output.FirstOrDefault(l => l.Contains(fragment, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"parafs exited (status {_process.ExitCode}) without saying '{fragment}'; it said:\n{Output}");
    }

    public async Task<int> WaitForExitAsync()
    {
        using var timeout = new CancellationTokenSource(Eventually.Patience);
        await _process.WaitForExitAsync(timeout.Token);
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: no shutdown code runs, as in a crash or a power cut of the process.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await KillAsync();
        }
        finally
        {
            _process.Dispose();
        }
    }

    /// <summary>A loopback port nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string ParafsDll()
    {
        var beside = Path.Combine(AppContext.BaseDirectory, "parafs.dll");
        if (File.Exists(beside))
        {
            return beside;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var built = Path.Combine(dir.FullName, "src", "ParaFS.Cli", "bin", "Release", "net10.0", "parafs.dll");
            if (File.Exists(built))
            {
                return built;
            }
        }

        throw new FileNotFoundException("parafs.dll is neither beside the test assembly nor under src/ParaFS.Cli/bin/Release/net10.0; build src/ParaFS.Cli first");
    }

    private static string DotnetHost() =>
        Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";

    [GeneratedRegex(@"listening on [^\s]*:(\d+)")]
    private static partial Regex ListeningPort();

    private void Add(string? line)
    {
        if (line is not null)
        {
            _output.Enqueue(line);
        }
    }
}
