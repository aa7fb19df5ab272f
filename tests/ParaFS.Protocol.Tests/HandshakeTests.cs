using ParaFS.Common;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

public sealed class HandshakeTests
{
    [Fact]
    public async Task A_client_of_another_file_system_is_told_which_one_it_reached()
    {
        await using var server = await TestServer.StartAsync(fsId: "fs-aaaa");
        await using var client = server.Client(fsId: "fs-bbbb");
        var e = await Assert.ThrowsAsync<RpcException>(() => client.CallAsync(Methods.Ping, null));
        Assert.Equal(Errno.EPROTO, e.Errno);
        Assert.Contains("this OST belongs to file system fs-aaaa (testfs), not fs-bbbb", e.Message, StringComparison.Ordinal);
        await server.Log.WaitForWarningAsync("handshake from");
    }

    [Fact]
    public async Task A_client_that_does_not_know_the_file_system_learns_it()
    {
        await using var server = await TestServer.StartAsync(fsId: "fs-cccc");
        await using var client = server.Client();
        await client.CallAsync(Methods.Ping, null);
        Assert.Equal("fs-cccc", client.ServerInfo!.FsId);
        Assert.Equal(PeerRole.Ost, client.ServerInfo.Role);
        Assert.Equal(ProtocolVersion.Current, client.ServerInfo.ProtocolVersion);
    }

    [Fact]
    public async Task An_incompatible_protocol_version_is_refused_with_both_ranges()
    {
        await using var server = await TestServer.StartAsync();
        await using var peer = await RawPeer.ConnectAsync(server.Endpoint);
        var hello = RawPeer.GoodHello();
        hello.ProtocolVersion = 99;
        hello.MinProtocolVersion = 90;
        await peer.SendAsync(RawPeer.Request(1, Methods.Handshake, hello));
        var (reply, _) = await peer.ReadFrameAsync();
        Assert.Equal((int)Errno.EPROTO, reply!.Error.Errno);
        Assert.Contains("protocol version mismatch: the peer speaks versions 90..99", reply.Error.Message, StringComparison.Ordinal);
        Assert.True(await peer.ClosedByServerAsync());
    }
}
