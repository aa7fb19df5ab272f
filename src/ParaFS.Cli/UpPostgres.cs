using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;
using ParaFS.Common;

namespace ParaFS.Cli;

/// <summary>
/// The PostgreSQL server of <c>parafs up --store postgres</c>: Debian's postgresql binaries, a
/// cluster of its own under the up data directory (so a second run finds the same file system),
/// listening on loopback only with trust authentication, run as the postgres user when we are
/// root (initdb and postgres refuse root). Stopped when up stops.
/// </summary>
internal sealed class UpPostgres : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _cluster;

    private UpPostgres(string bin, string cluster, int port)
    {
        _bin = bin;
        _cluster = cluster;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The store string the MDS gets.</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=parafs";

    public string Directory => _cluster;

    public static async Task<UpPostgres> StartAsync(string directory, CancellationToken cancellationToken)
    {
        var bin = FindBinaries();
        var root = IsRoot();
        System.IO.Directory.CreateDirectory(directory);
        if (root)
        {
            await RunAsync("chown", ["postgres:", directory], "giving the cluster directory to the postgres user", cancellationToken).ConfigureAwait(false);
            await RunAsync("chmod", ["700", directory], "closing the cluster directory to other users", cancellationToken).ConfigureAwait(false);
            if (await TryRunAsync("runuser", ["-u", "postgres", "--", "test", "-w", directory], cancellationToken).ConfigureAwait(false) != 0)
            {
                throw new StartupException(
                    $"the postgres user cannot reach {directory} (a parent directory is closed to other users, e.g. /root); give --data a directory under /srv, /var/lib or /tmp");
            }
        }

        var data = Path.Combine(directory, "data");
        if (!File.Exists(Path.Combine(data, "PG_VERSION")))
        {
            await RunAsync(Path.Combine(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"], "initdb", cancellationToken, asOwner: root).ConfigureAwait(false);
        }

        // A server left running by an up that was killed: stop it, then start ours on a fresh port.
        if (File.Exists(Path.Combine(data, "postmaster.pid")))
        {
            await TryRunAsync(Path.Combine(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"], cancellationToken, asOwner: root).ConfigureAwait(false);
        }

        var port = FreePort();
        await RunAsync(
            Path.Combine(bin, "pg_ctl"),
            ["-D", data, "-l", Path.Combine(directory, "server.log"), "-w", "-t", "60",
             "-o", $"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory}", "start"],
            $"starting PostgreSQL (log {Path.Combine(directory, "server.log")})",
            cancellationToken,
            asOwner: root).ConfigureAwait(false);
        var server = new UpPostgres(bin, directory, port);
        try
        {
            await using var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres;Pooling=false");
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = 'parafs'", connection);
            if (await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is null)
            {
                await using var create = new NpgsqlCommand("CREATE DATABASE parafs", connection);
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return server;
    }

    public async ValueTask DisposeAsync() =>
        await TryRunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", Path.Combine(_cluster, "data"), "-m", "fast", "-w", "stop"], CancellationToken.None, asOwner: IsRoot()).ConfigureAwait(false);

    /// <summary>The newest installed major version's bin directory (Debian: /usr/lib/postgresql/N/bin).</summary>
    private static string FindBinaries()
    {
        var found = System.IO.Directory.Exists("/usr/lib/postgresql")
            ? System.IO.Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : 0))
                .Where(d => File.Exists(Path.Combine(d.Dir, "initdb")))
                .OrderByDescending(d => d.Version)
                .Select(d => d.Dir)
                .FirstOrDefault()
            : null;
        return found ?? throw new StartupException("--store postgres needs PostgreSQL's server programs: apt-get install postgresql (scripts/parafs installs it)");
    }

    private static bool IsRoot() => Environment.UserName == "root";

    private static async Task RunAsync(string program, string[] args, string what, CancellationToken cancellationToken, bool asOwner = false)
    {
        var (status, output) = await ExecAsync(program, args, asOwner, cancellationToken).ConfigureAwait(false);
        if (status != 0)
        {
            throw new StartupException($"{what} failed (exit {status}): {output.Trim()}");
        }
    }

    private static async Task<int> TryRunAsync(string program, string[] args, CancellationToken cancellationToken, bool asOwner = false) =>
        (await ExecAsync(program, args, asOwner, cancellationToken).ConfigureAwait(false)).Status;

    private static async Task<(int Status, string Output)> ExecAsync(string program, string[] args, bool asOwner, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(asOwner ? "runuser" : program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (asOwner)
        {
            foreach (var a in new[] { "-u", "postgres", "--", program })
            {
                info.ArgumentList.Add(a);
            }
        }

        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info) ?? throw new StartupException($"cannot run {program}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return (process.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
