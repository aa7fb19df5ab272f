using System.Collections.Concurrent;
using ParaFS.Common;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

/// <summary>Bulk connections on threads of their own (RpcClientOptions.BulkThreads), against a real server on loopback.</summary>
public sealed class BulkConnectionTests
{
    private static RpcClient BulkClient(TestServer server, bool bulkThreads = true, Func<RpcPush, RpcClientConnection, ValueTask>? onPush = null) =>
        new(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1, BulkConnectionsPerServer = 2, BulkThreads = bulkThreads, PushHandler = onPush });

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task Bulk_connections_run_on_their_own_threads_on_both_sides_and_carry_every_byte()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = BulkClient(server);

        // Many calls at once, so frames queue on each connection and payloads arrive in pieces.
        var results = await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
        {
            var payload = RandomBytes(64 * 1024 + (i * 50_021 % (2 * 1024 * 1024)), i);
            var room = new byte[payload.Length];
            using var reply = await client.CallAsync(TestServer.Echo, new RpcError { Errno = i }, payload, room);
            return (i, reply.ParseMessage(RpcError.Parser).Errno, Same: reply.Payload.Span.SequenceEqual(payload), InRoom: reply.Payload.Length == room.Length && room.AsSpan().SequenceEqual(payload));
        }));

        Assert.All(results, r =>
        {
            Assert.Equal(r.i, r.Errno);
            Assert.True(r.Same, $"bulk call {r.i} got other bytes back");
            Assert.True(r.InRoom, $"bulk call {r.i}'s reply did not land in the room it gave");
        });
        Assert.True((await client.GetConnectionAsync(bulk: true)).IsDedicated);
        Assert.False((await client.GetConnectionAsync(bulk: false)).IsDedicated);
        Assert.Equal(2, server.Server.Connections.Count(c => c.IsDedicated && c.PeerHello!.Bulk));
        Assert.Single(server.Server.Connections, c => !c.IsDedicated && !c.PeerHello!.Bulk);
    }

    [Fact]
    public async Task With_bulk_threads_off_on_either_side_bulk_calls_go_the_asynchronous_way()
    {
        await using (var server = await TestServer.StartAsync())
        await using (var client = BulkClient(server, bulkThreads: false))
        {
            var payload = RandomBytes(3 * 1024 * 1024, 1);
            using var reply = await client.CallAsync(TestServer.Echo, null, payload);
            Assert.True(reply.Payload.Span.SequenceEqual(payload));
            Assert.False((await client.GetConnectionAsync(bulk: true)).IsDedicated);
            Assert.All(server.Server.Connections, c => Assert.False(c.IsDedicated || c.PeerHello!.Bulk));
        }

        await using (var server = await TestServer.StartAsync(configure: o => o with { BulkThreads = false }))
        await using (var client = BulkClient(server))
        {
            var payload = RandomBytes(3 * 1024 * 1024, 2);
            using var reply = await client.CallAsync(TestServer.Echo, null, payload);
            Assert.True(reply.Payload.Span.SequenceEqual(payload));
            Assert.True((await client.GetConnectionAsync(bulk: true)).IsDedicated);
            Assert.Contains(server.Server.Connections, c => c.PeerHello!.Bulk);
            Assert.All(server.Server.Connections, c => Assert.False(c.IsDedicated));
        }
    }

    [Fact]
    public async Task Past_its_bulk_thread_limit_a_server_serves_bulk_connections_the_asynchronous_way()
    {
        await using var server = await TestServer.StartAsync(configure: o => o with { MaxBulkThreads = 1 });
        var payload = RandomBytes(1024 * 1024, 6);
        await using (var client = BulkClient(server))
        {
            await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
            {
                using var reply = await client.CallAsync(TestServer.Echo, null, payload);
                Assert.True(reply.Payload.Span.SequenceEqual(payload));
            }));

            var bulk = server.Server.Connections.Where(c => c.PeerHello!.Bulk).ToList();
            Assert.Equal(2, bulk.Count);
            Assert.Single(bulk, c => c.IsDedicated);
            Assert.Equal(1, server.Server.BulkThreads);
        }

        await WaitUntilAsync(() => server.Server.Connections.Count == 0);
        Assert.Equal(0, server.Server.BulkThreads);

        // The place came back: the next client's first bulk connection gets a thread again.
        await using var next = BulkClient(server);
        using (var reply = await next.CallAsync(TestServer.Echo, null, payload))
        {
            Assert.True(reply.Payload.Span.SequenceEqual(payload));
        }

        Assert.Equal(1, server.Server.BulkThreads);
    }

    [Fact]
    public async Task Clients_sharing_a_bulk_thread_budget_run_past_it_the_asynchronous_way()
    {
        await using var first = await TestServer.StartAsync();
        await using var second = await TestServer.StartAsync();
        var budget = new BulkThreadBudget(3);
        var payload = RandomBytes(1024 * 1024, 7);
        RpcClient Client(TestServer server) =>
            new(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1, BulkConnectionsPerServer = 2, BulkThreadBudget = budget });

        await using (var a = Client(first))
        await using (var b = Client(second))
        {
            foreach (var client in new[] { a, b })
            {
                await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
                {
                    using var reply = await client.CallAsync(TestServer.Echo, null, payload);
                    Assert.True(reply.Payload.Span.SequenceEqual(payload));
                }));
            }

            Assert.Equal(3, budget.InUse);
            var servers = first.Server.Connections.Concat(second.Server.Connections).Where(c => c.PeerHello!.Bulk || c.IsDedicated).ToList();
            Assert.Equal(3, servers.Count(c => c.IsDedicated));
            Assert.Equal(3, servers.Count);
        }

        await WaitUntilAsync(() => budget.InUse == 0);
    }

    [Fact]
    public async Task Pushes_sent_from_other_threads_reach_the_client_over_a_bulk_connection()
    {
        var received = new ConcurrentQueue<(int Index, int Length)>();
        await using var server = await TestServer.StartAsync();
        await using var client = BulkClient(server, onPush: (push, _) =>
        {
            received.Enqueue((push.ParseMessage(RpcError.Parser).Errno, push.Payload.Length));
            return ValueTask.CompletedTask;
        });

        var payload = RandomBytes(128 * 1024, 3);
        using (await client.CallAsync(TestServer.PushFromPool, new RpcError { Errno = 3, Message = "from the pool" }, payload))
        {
        }

        using (await client.CallAsync(TestServer.PushBack, new RpcError { Errno = 2, Message = "inline" }, payload))
        {
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (received.Count < 5 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        Assert.Equal(5, received.Count);
        Assert.All(received, r => Assert.Equal(payload.Length, r.Length));
        Assert.Equal([0, 0, 1, 1, 2], received.Select(r => r.Index).Order().ToArray());
    }

    [Fact]
    public async Task A_server_that_stops_under_a_bulk_call_fails_it_with_ECONNRESET_and_every_thread_ends()
    {
        var server = await TestServer.StartAsync();
        await using var client = BulkClient(server);
        var connection = await client.GetConnectionAsync(bulk: true);
        var call = connection.CallAsync(TestServer.Slow, new RpcError { Errno = 30_000 }, RandomBytes(256 * 1024, 4));
        await WaitUntilAsync(() => server.SlowCallsStarted == 1);

        var stopping = server.DisposeAsync().AsTask();
        var failure = await Assert.ThrowsAsync<RpcException>(() => call.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(Errno.ECONNRESET, failure.Errno);
        await stopping.WaitAsync(TimeSpan.FromSeconds(10));
        await connection.Completion.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(connection.IsClosed);
    }

    [Fact]
    public async Task Disposing_the_client_fails_its_pending_bulk_calls_and_ends_their_connections()
    {
        await using var server = await TestServer.StartAsync();
        var client = BulkClient(server);
        var connection = await client.GetConnectionAsync(bulk: true);
        var call = connection.CallAsync(TestServer.Slow, new RpcError { Errno = 30_000 }, RandomBytes(128 * 1024, 5));
        await WaitUntilAsync(() => server.SlowCallsStarted == 1);

        await client.DisposeAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        var failure = await Assert.ThrowsAsync<RpcException>(() => call.WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.Equal(Errno.ECONNRESET, failure.Errno);
        Assert.Contains("closed by this side", failure.Message, StringComparison.Ordinal);
        await WaitUntilAsync(() => server.Server.Connections.Count == 0);
    }

    [Fact]
    public async Task A_connection_that_never_sends_its_handshake_is_closed_after_the_timeout()
    {
        await using var server = await TestServer.StartAsync(configure: o => o with { HandshakeTimeout = TimeSpan.FromMilliseconds(300) });
        await using var peer = await RawPeer.ConnectAsync(server.Endpoint);
        Assert.True(await peer.ClosedByServerAsync(), "the server kept a connection that sent nothing");
        await server.Log.WaitForWarningAsync("no first frame within 0.3 s");

        await using var client = server.Client(connections: 1);
        using var reply = await client.CallAsync(TestServer.Echo, null, new byte[] { 7 });
        Assert.Equal(new byte[] { 7 }, reply.Payload.ToArray());
    }

    [Fact]
    public async Task Bytes_that_are_not_frames_in_place_of_the_handshake_close_the_connection()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.Endpoint);
        await peer.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
        Assert.True(await peer.ClosedByServerAsync());
        await server.Log.WaitForWarningAsync("bad frame magic");
    }

    [Fact]
    public async Task A_reply_frame_in_place_of_the_handshake_closes_the_connection()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.Endpoint);
        await peer.SendAsync(RawPeer.Frame(new CallHeader { Kind = FrameKind.Response, CallId = 1 }, null));
        Assert.True(await peer.ClosedByServerAsync());
        await server.Log.WaitForWarningAsync("only servers send");
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not come true within 10 s");
            await Task.Delay(10);
        }
    }
}
