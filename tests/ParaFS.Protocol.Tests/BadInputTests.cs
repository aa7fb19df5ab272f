using ParaFS.Common;
using ParaFS.Protocol.Framing;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

public sealed class BadInputTests
{
    private static readonly FrameLimits SmallLimits = new() { MaxPayloadBytes = 1024 * 1024 };

    /// <summary>Sends <paramref name="bytes"/> after a good handshake, and checks the server closed that connection, logged why, and still serves others.</summary>
    private static async Task AssertConnectionClosedAndOthersServedAsync(byte[] bytes, string logged, bool closeAfterSending = false)
    {
        await using var server = await TestServer.StartAsync(limits: SmallLimits);
        await using var bystander = server.Client(connections: 1);
        await bystander.CallAsync(Methods.Ping, null);

        await using (var peer = await RawPeer.ConnectAsync(server.Endpoint))
        {
            await peer.HandshakeAsync();
            await peer.SendAsync(bytes);
            if (!closeAfterSending)
            {
                Assert.True(await peer.ClosedByServerAsync(), "the server kept a connection that sent a bad frame");
            }
        }

        var line = await server.Log.WaitForWarningAsync(logged);
        Assert.Single(server.Log.Warnings, w => w.Contains(logged, StringComparison.Ordinal));
        Assert.Contains("closing connection", line, StringComparison.Ordinal);

        using var reply = await bystander.CallAsync(TestServer.Echo, new RpcError { Message = "still here" }, new byte[] { 1, 2, 3 });
        Assert.Equal(new byte[] { 1, 2, 3 }, reply.Payload.ToArray());
    }

    [Fact]
    public Task A_frame_over_the_size_limit_closes_only_that_connection()
    {
        var preamble = new byte[FramePreamble.Size];
        new FramePreamble(4, 0, SmallLimits.MaxPayloadBytes + 1).Write(preamble);
        return AssertConnectionClosedAndOthersServedAsync(preamble, "over the limit");
    }

    [Fact]
    public Task Bytes_that_are_not_frames_close_only_that_connection() =>
        AssertConnectionClosedAndOthersServedAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray(), "bad frame magic");

    [Fact]
    public Task A_header_that_does_not_parse_closes_only_that_connection()
    {
        var bytes = new byte[FramePreamble.Size + 4];
        new FramePreamble(4, 0, 0).Write(bytes);
        bytes.AsSpan(FramePreamble.Size).Fill(0xFF);
        return AssertConnectionClosedAndOthersServedAsync(bytes, "does not parse");
    }

    [Fact]
    public Task A_frame_cut_off_by_a_closed_connection_is_logged_and_harms_nobody()
    {
        var frame = RawPeer.Frame(new() { Kind = FrameKind.Request, CallId = 2, Method = TestServer.Echo }, null, new byte[4096]);
        return AssertConnectionClosedAndOthersServedAsync(frame[..(frame.Length - 100)], "in the middle of a frame", closeAfterSending: true);
    }

    [Fact]
    public async Task An_unknown_method_is_answered_ENOSYS_and_the_connection_stays()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        var e = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(424242, null));
        Assert.Equal(Errno.ENOSYS, e.Errno);
        Assert.Contains("424242", e.Message, StringComparison.Ordinal);
        await server.Log.WaitForWarningAsync("unknown method id 424242");

        using var reply = await client.CallAsync(TestServer.Echo, new RpcError { Message = "after" });
        Assert.Equal("after", reply.ParseMessage(RpcError.Parser).Message);
        Assert.Equal(1, client.OpenConnections);
    }

    [Fact]
    public async Task A_request_message_that_does_not_parse_is_answered_EBADMSG()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.Endpoint);
        await peer.HandshakeAsync();

        var header = new CallHeader { Kind = FrameKind.Request, CallId = 5, Method = TestServer.Strict };
        var frame = RawPeer.Frame(header, new RpcError { Message = "x" });

        // Replace the message section with bytes that are not protobuf (a truncated varint).
        var messageStart = FramePreamble.Size + header.CalculateSize();
        frame.AsSpan(messageStart).Fill(0xFF);
        await peer.SendAsync(frame);

        var (reply, _) = await peer.ReadFrameAsync();
        Assert.NotNull(reply);
        Assert.Equal(5ul, reply.CallId);
        Assert.Equal((int)Errno.EBADMSG, reply.Error.Errno);
        await server.Log.WaitForWarningAsync("does not parse");

        // The connection still serves calls.
        await peer.SendAsync(RawPeer.Request(6, Methods.Ping, null));
        var (pong, _) = await peer.ReadFrameAsync();
        Assert.Equal(6ul, pong!.CallId);
        Assert.Null(pong.Error);
    }

    [Fact]
    public async Task A_handler_that_throws_answers_EIO_with_the_reason_and_is_logged()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        var e = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(TestServer.Crash, null));
        Assert.Equal(Errno.EIO, e.Errno);
        Assert.Contains("the handler broke", e.Message, StringComparison.Ordinal);
        Assert.Contains(server.Log.Lines, l => l.Text.Contains($"method {TestServer.Crash}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_handler_errno_reaches_the_caller()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1);
        var e = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(TestServer.Fail, null));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Equal("object 7 does not exist on this target", e.Message);
    }

    [Fact]
    public async Task A_payload_over_the_limit_is_refused_before_it_is_sent()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = server.Client(connections: 1, limits: SmallLimits);
        var e = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(TestServer.Echo, null, new byte[SmallLimits.MaxPayloadBytes + 1]));
        Assert.Equal(Errno.EMSGSIZE, e.Errno);
        await client.CallAsync(Methods.Ping, null);
        Assert.Equal(1, client.OpenConnections);
    }

    [Fact]
    public async Task A_call_before_the_handshake_is_refused_and_the_connection_closed()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.Endpoint);
        await peer.SendAsync(RawPeer.Request(1, TestServer.Echo, null));
        var (reply, _) = await peer.ReadFrameAsync();
        Assert.Equal((int)Errno.EPROTO, reply!.Error.Errno);
        Assert.Contains("must be the handshake", reply.Error.Message, StringComparison.Ordinal);
        Assert.True(await peer.ClosedByServerAsync());
    }
}
