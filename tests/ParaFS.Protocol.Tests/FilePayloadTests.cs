using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

/// <summary>Replies whose payload is a range of a file (FilePayload): sendfile on a bulk connection, a buffer elsewhere.</summary>
public sealed class FilePayloadTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("parafs-filepayload-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string WriteFile(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        var path = Path.Combine(_directory, $"file-{seed}");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static async Task<byte[]> FetchAsync(RpcClient client, string path, long offset, int length)
    {
        // A room as large as the reply makes the client pick a bulk connection for the call.
        var room = new byte[length];
        using var reply = await client.CallAsync(TestServer.FromFile, new RpcError { Message = $"{path}|{offset}|{length}" }, default, room);
        return reply.Payload.ToArray();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_file_range_arrives_whole_on_bulk_connections_with_or_without_their_threads(bool serverBulkThreads)
    {
        await using var server = await TestServer.StartAsync(configure: o => o with { BulkThreads = serverBulkThreads });
        await using var client = new RpcClient(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1, BulkConnectionsPerServer = 2 });
        var path = WriteFile((3 * 1024 * 1024) + 12_345, 1);
        var expected = await File.ReadAllBytesAsync(path);

        // Many at once, so replies queue on each connection; ranges that start and end mid-page.
        var ranges = Enumerable.Range(0, 24).Select(i => (Offset: (long)i * 100_003, Length: 65_536 + (i * 33_333))).ToList();
        var replies = await Task.WhenAll(ranges.Select(r => FetchAsync(client, path, r.Offset, r.Length)));

        for (var i = 0; i < ranges.Count; i++)
        {
            Assert.True(expected.AsSpan((int)ranges[i].Offset, ranges[i].Length).SequenceEqual(replies[i]), $"range {i} ({ranges[i].Offset}+{ranges[i].Length}) came back different");
        }

        Assert.Equal(serverBulkThreads, server.Server.Connections.Any(c => c.IsDedicated));
    }

    [Fact]
    public async Task A_file_range_arrives_whole_over_a_unix_domain_socket()
    {
        var socketPath = Path.Combine(_directory, "rpc.sock");
        await using var server = await TestServer.StartAsync($"unix:{socketPath}");
        await using var client = new RpcClient(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1, BulkConnectionsPerServer = 1 });
        var path = WriteFile(2 * 1024 * 1024, 3);
        var expected = await File.ReadAllBytesAsync(path);

        var reply = await FetchAsync(client, path, 4096, (1024 * 1024) + 1);

        Assert.True(expected.AsSpan(4096, (1024 * 1024) + 1).SequenceEqual(reply));
        Assert.Contains(server.Server.Connections, c => c.IsDedicated);
    }

    [Fact]
    public async Task A_range_past_the_end_of_a_file_that_shrank_is_filled_with_zeros_and_the_connection_goes_on()
    {
        await using var server = await TestServer.StartAsync();
        await using var client = new RpcClient(server.Endpoint, new RpcClientOptions { ConnectionsPerServer = 1, BulkConnectionsPerServer = 1 });
        var path = WriteFile(300_000, 2);
        var expected = await File.ReadAllBytesAsync(path);

        // The handler promises 1 MiB from 100,000 on: the file ends 200,000 bytes in.
        var reply = await FetchAsync(client, path, 100_000, 1024 * 1024);

        Assert.Equal(1024 * 1024, reply.Length);
        Assert.True(expected.AsSpan(100_000).SequenceEqual(reply.AsSpan(0, 200_000)));
        Assert.All(reply.Skip(200_000), b => Assert.Equal(0, b));
        Assert.Contains(server.Server.Connections, c => c.IsDedicated);

        // The frame was whole: the same connection carries the next call.
        var next = await FetchAsync(client, path, 0, 300_000);
        Assert.True(expected.AsSpan().SequenceEqual(next));
    }
}
