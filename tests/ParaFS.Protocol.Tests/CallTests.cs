using System.Security.Cryptography;
using ParaFS.Common;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

public sealed class CallTests
{
    [Fact]
    public async Task Ten_thousand_concurrent_calls_over_four_connections_each_get_their_own_reply()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 4);
        var random = new Random(20261122);
        var calls = Enumerable.Range(0, 10_000).Select(i =>
        {
            // Mostly small payloads, some past the direct-send threshold, a few empty.
            var size = (i % 97) switch
            {
                0 => 0,
                1 => random.Next(64 * 1024, 512 * 1024),
                _ => random.Next(0, 4096),
            };
            var payload = new byte[size];
            random.NextBytes(payload);
            return (Index: i, Payload: payload);
        }).ToArray();

        var results = await Task.WhenAll(calls.Select(async c =>
        {
            using var reply = await client.CallAsync(TestServer.Echo, new RpcError { Errno = c.Index, Message = $"call {c.Index}" }, c.Payload);
            var message = reply.ParseMessage(RpcError.Parser);
            return (c.Index, message.Errno, message.Message, Same: reply.Payload.Span.SequenceEqual(c.Payload));
        }));

        Assert.All(results, r =>
        {
            Assert.Equal(r.Index, r.Errno);
            Assert.Equal($"call {r.Index}", r.Message);
            Assert.True(r.Same, $"call {r.Index} got another call's payload");
        });
        Assert.Equal(4, client.OpenConnections);
        Assert.Equal(4, server.Server.Connections.Count);
    }

    [Fact]
    public async Task Bulk_calls_get_connections_of_their_own_and_small_calls_stay_off_them()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = new RpcClient(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1, BulkConnectionsPerServer = 2 });
        for (var i = 0; i < 20; i++)
        {
            using var small = await client.CallAsync(TestServer.Echo, null, new byte[4096]);
        }

        Assert.Equal(1, client.OpenConnections);
        var general = await client.GetConnectionAsync(bulk: false);

        var big = new byte[128 * 1024];
        Random.Shared.NextBytes(big);
        await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            using var reply = await client.CallAsync(TestServer.Echo, null, big);
            Assert.True(reply.Payload.Span.SequenceEqual(big));
        }));
        using (var room = await client.CallAsync(TestServer.Echo, null, default, new byte[64 * 1024]))
        {
            // A call that gives 64 KiB of room for its reply counts as bulk too.
        }

        Assert.Equal(3, client.OpenConnections);
        Assert.Same(general, await client.GetConnectionAsync(bulk: false));
        for (var i = 0; i < 4; i++)
        {
            Assert.NotSame(general, await client.GetConnectionAsync(bulk: true));
        }
    }

    [Fact]
    public async Task A_slow_call_does_not_hold_up_the_others_on_its_connection()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        var slow = client.CallAsync(TestServer.Slow, new RpcError { Errno = 3000 });
        for (var i = 0; i < 100; i++)
        {
            await client.CallAsync(Methods.Ping, null);
        }

        Assert.False(slow.IsCompleted, "100 pings should finish while the 3 s call is still running");
        (await slow).Dispose();
    }

    [Fact]
    public async Task A_large_reply_lands_in_the_callers_buffer()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        var payload = RandomNumberGenerator.GetBytes(4 * 1024 * 1024);
        var destination = new byte[payload.Length + 10];
        using var reply = await client.CallAsync(TestServer.Echo, null, payload, destination);
        Assert.True(reply.PayloadInDestination);
        Assert.Equal(payload.Length, reply.Payload.Length);
        Assert.True(destination.AsSpan(0, payload.Length).SequenceEqual(payload));

        // Too small a destination: the reply comes in a pooled buffer instead.
        using var pooled = await client.CallAsync(TestServer.Echo, null, payload, new byte[16]);
        Assert.False(pooled.PayloadInDestination);
        Assert.True(pooled.Payload.Span.SequenceEqual(payload));
    }

    [Fact]
    public async Task Calls_work_over_a_unix_domain_socket()
    {
        var path = Path.Combine(Path.GetTempPath(), $"parafs-rpc-{Guid.NewGuid():N}.sock");
        await using var server = await TestServer.StartAsync($"unix:{path}");
        await using var client = server.Client(connections: 2);
        var payload = RandomNumberGenerator.GetBytes(300_000);
        using var reply = await client.CallAsync(TestServer.Echo, new RpcError { Message = "unix" }, payload);
        Assert.Equal("unix", reply.ParseMessage(RpcError.Parser).Message);
        Assert.True(reply.Payload.Span.SequenceEqual(payload));
    }

    [Fact]
    public async Task A_call_times_out_with_ETIMEDOUT_and_the_connection_keeps_working()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        var started = DateTime.UtcNow;
        var e = await Assert.ThrowsAsync<RpcException>(() =>
            client.CallAsync(TestServer.Slow, new RpcError { Errno = 10_000 }, timeout: TimeSpan.FromMilliseconds(300)));
        Assert.Equal(Errno.ETIMEDOUT, e.Errno);
        Assert.Contains("timed out", e.Message, StringComparison.Ordinal);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));

        await client.CallAsync(Methods.Ping, null);
        Assert.Equal(1, client.OpenConnections);
    }

    [Fact]
    public async Task An_idle_connection_stops_checking_deadlines_and_a_later_call_still_times_out()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        await client.CallAsync(Methods.Ping, null);
        var connection = await client.GetConnectionAsync(bulk: false);

        // With nothing pending, the 100 ms checks stop (an idle mount wakes no thread for them).
        await Eventually.TrueAsync(() => !connection.DeadlineChecksRunning, "the deadline checks of an idle connection stop");

        var e = await Assert.ThrowsAsync<RpcException>(() =>
            client.CallAsync(TestServer.Slow, new RpcError { Errno = 10_000 }, timeout: TimeSpan.FromMilliseconds(300)));
        Assert.Equal(Errno.ETIMEDOUT, e.Errno);
        await client.CallAsync(Methods.Ping, null);
        await Eventually.TrueAsync(() => !connection.DeadlineChecksRunning, "the checks stop again");
    }

    [Fact]
    public async Task A_cancelled_call_ends_at_once_and_the_connection_keeps_working()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var started = DateTime.UtcNow;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            client.CallAsync(TestServer.Slow, new RpcError { Errno = 10_000 }, cancellationToken: cancel.Token));
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));

        // The late reply (if any) is read past; later calls still match their replies.
        using var reply = await client.CallAsync(TestServer.Echo, new RpcError { Message = "next" });
        Assert.Equal("next", reply.ParseMessage(RpcError.Parser).Message);
    }

    [Fact]
    public async Task A_reply_that_arrives_after_its_timeout_is_skipped()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        await Assert.ThrowsAsync<RpcException>(() =>
            client.CallAsync(TestServer.Slow, new RpcError { Errno = 400 }, timeout: TimeSpan.FromMilliseconds(100)));
        await Task.Delay(600);
        using var reply = await client.CallAsync(TestServer.Echo, new RpcError { Message = "mine" }, new byte[70_000]);
        Assert.Equal("mine", reply.ParseMessage(RpcError.Parser).Message);
    }

    [Fact]
    public async Task A_server_restart_fails_pending_calls_clearly_and_the_client_reconnects()
    {
        var first = await TestServer.StartAsync();
        var endpoint = first.Endpoint;
        await using var client = first.Client(connections: 2);
        await Task.WhenAll(client.CallAsync(Methods.Ping, null), client.CallAsync(Methods.Ping, null));
        Assert.Equal(2, client.OpenConnections);

        var pending = client.CallAsync(TestServer.Slow, new RpcError { Errno = 30_000 });
        await Task.Delay(100);
        await first.DisposeAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => pending);
        Assert.Equal(Errno.ECONNRESET, e.Errno);
        Assert.Contains("lost", e.Message, StringComparison.Ordinal);

        // While it is down: a clear refusal, not a hang.
        var down = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.Ping, null));
        Assert.True(down.IsConnectionFailure, down.Message);

        await using var second = await TestServer.StartAsync(endpoint.Text);
        for (var i = 0; i < 4; i++)
        {
            using var reply = await client.CallAsync(TestServer.Echo, new RpcError { Errno = i });
            Assert.Equal(i, reply.ParseMessage(RpcError.Parser).Errno);
        }

        Assert.Equal(2, client.OpenConnections);
    }

    [Fact]
    public async Task A_server_push_reaches_the_client_on_its_connection()
    {
        await using var server = await TestServer.StartAsync();
        var received = new List<(uint Method, int Index, string Text, byte[] Payload)>();
        var all = new TaskCompletionSource();
        await using var client = server.Client(connections: 1, onPush: (push, _) =>
        {
            var message = push.ParseMessage(RpcError.Parser);
            lock (received)
            {
                received.Add((push.Method, message.Errno, message.Message, push.Payload.ToArray()));
                if (received.Count == 3)
                {
                    all.TrySetResult();
                }
            }

            return ValueTask.CompletedTask;
        });

        await client.CallAsync(TestServer.PushBack, new RpcError { Errno = 3, Message = "layout changed" }, new byte[] { 9, 8, 7 });
        await all.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal([0, 1, 2], received.Select(r => r.Index).Order());
        Assert.All(received, r =>
        {
            Assert.Equal(TestServer.PushBack, r.Method);
            Assert.Equal("layout changed", r.Text);
            Assert.Equal(new byte[] { 9, 8, 7 }, r.Payload);
        });
    }

    [Fact]
    public async Task A_server_can_push_to_every_connected_client()
    {
        await using var server = await TestServer.StartAsync();
        var counts = new int[3];
        var clients = Enumerable.Range(0, 3).Select(i => server.Client(connections: 1, onPush: (_, _) =>
        {
            Interlocked.Increment(ref counts[i]);
            return ValueTask.CompletedTask;
        })).ToArray();
        try
        {
            foreach (var c in clients)
            {
                await c.CallAsync(Methods.Ping, null);
            }

            foreach (var connection in server.Server.Connections)
            {
                await connection.PushAsync(TestServer.PushBack, new RpcError { Message = "entry changed" });
            }

            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (counts.Any(c => c == 0) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(10);
            }

            Assert.All(counts, c => Assert.Equal(1, c));
        }
        finally
        {
            foreach (var c in clients)
            {
                await c.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Connecting_to_nothing_fails_with_a_message_that_names_the_address()
    {
        await using var client = new RpcClient(RpcEndpoint.Parse("127.0.0.1:1"), new RpcClientOptions());
        var e = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.Ping, null));
        Assert.Equal(Errno.ECONNREFUSED, e.Errno);
        Assert.Contains("127.0.0.1:1", e.Message, StringComparison.Ordinal);
    }
}
