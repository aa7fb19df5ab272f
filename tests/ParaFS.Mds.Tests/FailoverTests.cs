using System.Diagnostics;
using System.Security.Cryptography;
using ParaFS.Client;
using ParaFS.Ost;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;
using Xunit.Abstractions;

namespace ParaFS.Mds.Tests;

/// <summary>Two MDS processes on one PostgreSQL database: one serves, the other stands by and takes over.</summary>
public sealed class FailoverTests(ITestOutputHelper output)
{
    private static readonly Caller Me = new();

    [PostgresFact]
    public async Task Kill_9_of_the_active_mds_hands_over_to_the_standby_and_the_client_keeps_its_open_file()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        var root = Path.Combine(Path.GetTempPath(), $"parafs-failover-{Guid.NewGuid():N}");
        var (a, b) = ($"127.0.0.1:{ParafsProcess.FreePort()}", $"127.0.0.1:{ParafsProcess.FreePort()}");
        var both = RpcEndpoint.Parse($"{a},{b}");
        try
        {
            await using var active = ParafsProcess.Start("mds", "--store", database.ConnectionString, "--listen", a, "--heartbeat-ms", "500");
            await active.WaitForOutputAsync("serving on");
            await using var standby = ParafsProcess.Start("mds", "--store", database.ConnectionString, "--listen", b, "--heartbeat-ms", "500");
            await standby.WaitForOutputAsync("standby");
            Assert.DoesNotContain("serving on", standby.Output, StringComparison.Ordinal);

            await using var ost = new OstServer(new OstOptions { DataDirectory = Path.Combine(root, "ost0"), Listen = RpcEndpoint.Parse("127.0.0.1:0"), Mds = both, Pool = "default" });
            await ost.StartAsync();
            await using var client = await ParaFsClient.ConnectAsync(both);
            var (attr, handle) = await client.CreateAsync(Me, ParaFsClient.RootIno, "checkpoint", FileType.Regular, 0x1A4, openFlags: 2);
            var first = RandomNumberGenerator.GetBytes(300_000);
            await client.WriteAsync(handle!, 0, first);
            await client.FsyncAsync(handle!);

            var clock = Stopwatch.StartNew();
            await active.KillAsync();
            await standby.WaitForOutputAsync("serving on");
            var takeover = clock.Elapsed;

            // The same open handle goes on: the client re-attaches its session and handles to the new MDS.
            var second = RandomNumberGenerator.GetBytes(200_000);
            await client.WriteAsync(handle!, first.Length, second);
            await client.FsyncAsync(handle!);
            output.WriteLine($"standby serving {takeover.TotalMilliseconds:0} ms after kill -9; the client's next write+fsync done after {clock.Elapsed.TotalMilliseconds:0} ms");

            var read = new byte[first.Length + second.Length];
            Assert.Equal(read.Length, await client.ReadAsync(handle!, 0, read));
            Assert.True(read.AsSpan(0, first.Length).SequenceEqual(first));
            Assert.True(read.AsSpan(first.Length).SequenceEqual(second));

            // The size the fsync committed is in the database the new MDS serves.
            await using var other = await ParaFsClient.ConnectAsync(RpcEndpoint.Parse(b));
            Assert.Equal((ulong)read.Length, (await other.GetAttrAsync(attr.Attr.Ino, fresh: true)).Attr.Size);
            await client.ReleaseAsync(handle!);
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }
}
