using System.Text.Json;
using ParaFS.Client;
using ParaFS.Common;
using ParaFS.Common.Interop;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Cli.Tools;

/// <summary>A tool's connection to the MDS, acting as the user who runs it.</summary>
internal sealed class ToolSession : IAsyncDisposable
{
    public static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private ToolSession(ParaFsClient client, Caller caller)
    {
        Client = client;
        Caller = caller;
    }

    public ParaFsClient Client { get; }

    public Caller Caller { get; }

    public static async Task<ToolSession> OpenAsync(RpcEndpoint mds)
    {
        var caller = new Caller { Uid = Libc.GetUid(), Gid = Libc.GetGid(), Pid = (uint)Environment.ProcessId };
        caller.Groups.AddRange(Libc.SupplementaryGroups());
        var client = await ParaFsClient.ConnectAsync(mds, new ClientOptions { MdsRetryLimit = TimeSpan.FromSeconds(5), ClientName = $"parafs-tool:{Environment.ProcessId}" }).ConfigureAwait(false);
        return new ToolSession(client, caller);
    }

    /// <summary>The MDS for a tool: --mds when given, else the mount holding the path (or the current directory).</summary>
    public static RpcEndpoint Mds(ToolArgs args, string? path) =>
        args.Value("--mds") is { } mds ? RpcEndpoint.Parse(mds) : MountedPath.Resolve(path ?? ".").Mds;

    /// <summary>Runs a tool verb: errors become one line naming the path and the reason, exit code 1.</summary>
    public static async Task<int> RunAsync(string verb, string help, string[] args, Func<Task<int>> body)
    {
        if (args.Any(a => a is "--help" or "-h" && !(verb == "df" && a == "-h")) || (verb == "df" && args.Contains("--help")))
        {
            Console.WriteLine(help);
            return 0;
        }

        try
        {
            return await body().ConfigureAwait(false);
        }
        catch (UsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 2;
        }
        catch (ParaFsException e)
        {
            await Console.Error.WriteLineAsync($"parafs {verb}: {e.Message}").ConfigureAwait(false);
            return 1;
        }
        catch (FormatException e)
        {
            await Console.Error.WriteLineAsync($"parafs {verb}: {e.Message}").ConfigureAwait(false);
            return 2;
        }
    }

    public ValueTask DisposeAsync() => Client.DisposeAsync();
}
