using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ParaFS.Common;

namespace ParaFS.Cli;

/// <summary>
/// How every ParaFS daemon is hosted. Settings come from, lowest priority first: a JSON file
/// (<c>--config FILE</c>), environment variables (<c>PARAFS_DATA</c>, <c>PARAFS_LISTEN</c>, ...)
/// and the command line (<c>--data DIR --listen HOST:PORT</c>). Logs are one line each on the console.
/// </summary>
internal static class Daemon
{
    public static HostApplicationBuilder CreateBuilder(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var (configFile, rest) = SplitConfigFile(args);
        if (configFile is not null)
        {
            builder.Configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }

        builder.Configuration.AddEnvironmentVariables("PARAFS_");
        builder.Configuration.AddCommandLine(rest);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        builder.Logging.SetMinimumLevel(builder.Configuration["verbose"] is "true" or "1" ? LogLevel.Debug : LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);

        // A daemon that cannot start says so in one line (RunAsync); the host must not add its
        // own "Hosting failed to start" with a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        return builder;
    }

    /// <summary>A required setting, or a message that says which flag or variable supplies it.</summary>
    public static string Require(IConfiguration configuration, string key, string verb)
    {
        var value = configuration[key];
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new UsageException($"parafs {verb}: --{key} is required (or PARAFS_{key.ToUpperInvariant().Replace('-', '_')}, or \"{key}\" in --config FILE)");
        }

        return value;
    }

    public static bool WantsHelp(string[] args) => args.Any(a => a is "--help" or "-h");

    /// <summary>Runs a built host; a usage or startup error becomes one clear line and exit code 2 or 1.</summary>
    public static async Task<int> RunAsync(Func<IHost> build)
    {
        try
        {
            using var host = build();
            await host.RunAsync().ConfigureAwait(false);

            // Non-zero when a daemon stopped itself for a reason (an MDS that lost its leader lock).
            return Environment.ExitCode;
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 2;
        }
        catch (StartupException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 1;
        }
    }

    private static (string? ConfigFile, string[] Remaining) SplitConfigFile(string[] args)
    {
        var rest = new List<string>();
        string? file = null;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--config" && i + 1 < args.Length)
            {
                file = args[++i];
            }
            else
            {
                rest.Add(args[i]);
            }
        }

        return (file, [.. rest]);
    }
}

/// <summary>A mistake in how a command was called; printed without a stack trace.</summary>
internal sealed class UsageException(string message) : Exception(message);
