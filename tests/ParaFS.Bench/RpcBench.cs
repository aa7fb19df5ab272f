using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using ParaFS.Protocol;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Bench;

/// <summary>
/// RPC layer throughput on loopback, beside a plain socket copying the same bytes in the same
/// process: empty calls/s at 1, 16 and 64 in flight; 1 MiB payload calls at 16 in flight, both
/// directions; plain TCP streams with the same number of connections.
/// </summary>
internal static class RpcBench
{
    private const uint Sink = 9100;
    private const uint Source = 9101;
    private const int MiB = 1024 * 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = args is ["--seconds", var s] ? double.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : 5;
        var duration = TimeSpan.FromSeconds(seconds);
        var data = new byte[MiB];
        Random.Shared.NextBytes(data);

        var dispatcher = new RpcDispatcher();
        dispatcher.Register(Sink, _ => ValueTask.FromResult(RpcResult.Empty));
        dispatcher.Register(Source, _ => ValueTask.FromResult(new RpcResult(null, data)));
        await using var server = new RpcServer(new RpcServerOptions { Listen = RpcEndpoint.Parse("127.0.0.1:0"), ServerName = "bench" }, dispatcher);
        await server.StartAsync();

        Console.WriteLine($"# RPC layer on loopback, {Environment.ProcessorCount} cores, {seconds:0.#} s per case");
        Console.WriteLine();
        Console.WriteLine("| case | connections | in flight | result |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var inFlight in new[] { 1, 16, 64 })
        {
            await using var client = new RpcClient(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 4 });
            var calls = await RunCallsAsync(client, inFlight, duration, c => c.CallAsync(Methods.Ping, null));
            Console.WriteLine($"| empty calls | 4 | {inFlight} | {calls / seconds:N0} calls/s |");
        }

        var ratios = new List<string>();
        foreach (var connections in new[] { 1, 4 })
        {
            await using var client = new RpcClient(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = connections });
            var writes = await RunCallsAsync(client, 16, duration, c => c.CallAsync(Sink, null, data));
            var write = writes * (double)MiB / seconds / 1e6;
            Console.WriteLine($"| 1 MiB request payload (write) | {connections} | 16 | {write:N0} MB/s |");

            var buffers = new ThreadLocal<byte[]>(() => new byte[MiB]);
            var reads = await RunCallsAsync(client, 16, duration, c => c.CallAsync(Source, null, replyDestination: buffers.Value));
            var read = reads * (double)MiB / seconds / 1e6;
            Console.WriteLine($"| 1 MiB reply payload (read) | {connections} | 16 | {read:N0} MB/s |");

            var plain = await PlainSocketAsync(connections, duration) / 1e6;
            Console.WriteLine($"| plain TCP stream, 1 MiB writes | {connections} | - | {plain:N0} MB/s |");
            ratios.Add($"{connections} connection(s): write {write / plain:0.00}, read {read / plain:0.00}");
        }

        Console.WriteLine();
        Console.WriteLine($"RPC / plain socket: {string.Join("; ", ratios)}");
        return 0;
    }

    private static async Task<long> RunCallsAsync(RpcClient client, int inFlight, TimeSpan duration, Func<RpcClient, Task<RpcReply>> call)
    {
        (await call(client)).Dispose();
        var stopwatch = Stopwatch.StartNew();
        long done = 0;
        var workers = Enumerable.Range(0, inFlight).Select(async _ =>
        {
            while (stopwatch.Elapsed < duration)
            {
                (await call(client)).Dispose();
                Interlocked.Increment(ref done);
            }
        });
        await Task.WhenAll(workers);
        return done;
    }

    /// <summary>Bytes per second that plain TCP streams on loopback carry, 1 MiB writes, in this process.</summary>
    private static async Task<double> PlainSocketAsync(int connections, TimeSpan duration)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        long received = 0;
        var stopwatch = Stopwatch.StartNew();
        var pairs = new List<Task>();
        for (var i = 0; i < connections; i++)
        {
            var sender = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await sender.ConnectAsync(listener.LocalEndPoint!);
            var receiver = await listener.AcceptAsync();
            pairs.Add(Task.Run(async () =>
            {
                var buffer = new byte[1024 * 1024];
                using (sender)
                {
                    while (stopwatch.Elapsed < duration)
                    {
                        await sender.SendAsync(buffer);
                    }

                    sender.Shutdown(SocketShutdown.Send);
                }
            }));
            pairs.Add(Task.Run(async () =>
            {
                var buffer = new byte[1024 * 1024];
                using (receiver)
                {
                    int n;
                    while ((n = await receiver.ReceiveAsync(buffer)) > 0)
                    {
                        Interlocked.Add(ref received, n);
                    }
                }
            }));
        }

        await Task.WhenAll(pairs);
        return received / stopwatch.Elapsed.TotalSeconds;
    }
}
