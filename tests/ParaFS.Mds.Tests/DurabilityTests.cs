using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

public sealed class DurabilityTests
{
    [Fact]
    public async Task Every_acknowledged_operation_survives_kill_9_of_the_mds()
    {
        var data = Path.Combine(Path.GetTempPath(), $"parafs-mds-kill-{Guid.NewGuid():N}");
        var listen = $"127.0.0.1:{ParafsProcess.FreePort()}";
        var acknowledged = new List<string>();
        await using (var daemon = ParafsProcess.Start("mds", "--data", data, "--listen", listen))
        {
            await daemon.WaitForOutputAsync("serving on");
            await using var client = await TestClient.ConnectAsync(RpcEndpoint.Parse(listen), new Caller(), null);
            var dir = await client.MkdirAsync(1, "d");
            acknowledged.Add("d");

            // Calls in flight while the process dies: whatever was acknowledged must be there after.
            var writer = Task.Run(async () =>
            {
                for (var i = 0; i < 10_000; i++)
                {
                    try
                    {
                        await client.MkdirAsync(dir.Ino, $"e{i}");
                    }
                    catch (RpcException)
                    {
                        return;
                    }

                    lock (acknowledged)
                    {
                        acknowledged.Add($"d/e{i}");
                    }
                }
            });
            while (true)
            {
                lock (acknowledged)
                {
                    if (acknowledged.Count > 150)
                    {
                        break;
                    }
                }

                await Task.Delay(10);
            }

            await daemon.KillAsync();
            await writer;
        }

        await using var again = ParafsProcess.Start("mds", "--data", data, "--listen", listen);
        await again.WaitForOutputAsync("serving on");
        await using var reader = await TestClient.ConnectAsync(RpcEndpoint.Parse(listen), new Caller(), null);
        var d = await reader.LookupAsync(1, "d");
        var names = (await reader.ReaddirAllAsync(d.Attr.Ino, 1000)).Select(e => "d/" + e.Name).ToHashSet();
        List<string> expected;
        lock (acknowledged)
        {
            expected = [.. acknowledged.Skip(1)];
        }

        Assert.True(expected.Count > 150);
        Assert.All(expected, name => Assert.Contains(name, names));
        Assert.Equal((uint)(2 + names.Count), d.Attr.Nlink);
        Directory.Delete(data, recursive: true);
    }

    [Fact]
    public async Task A_restarted_mds_keeps_its_file_system_id_and_its_namespace()
    {
        await using var mds = await MdsFixture.StartAsync();
        var id = mds.Server.FileSystemId;
        await mds.AddTargetsAsync(1);
        await using (var client = await mds.ClientAsync())
        {
            await client.CreateAsync(1, "kept");
        }

        await mds.RestartAsync();
        Assert.Equal(id, mds.Server.FileSystemId);
        await using var after = await mds.ClientAsync();
        Assert.Equal(FileType.Regular, (await after.LookupAsync(1, "kept")).Attr.Type);
    }

    [Fact]
    public async Task The_mds_refuses_to_start_on_a_port_in_use_with_a_clear_message()
    {
        await using var first = await MdsFixture.StartAsync();
        var data = Path.Combine(Path.GetTempPath(), $"parafs-mds-busy-{Guid.NewGuid():N}");
        await using var second = ParafsProcess.Start("mds", "--data", data, "--listen", first.Server.Endpoint.Text);
        Assert.Equal(1, await second.WaitForExitAsync());
        Assert.Contains($"cannot listen on {first.Server.Endpoint.Text}", second.Output, StringComparison.Ordinal);
        if (Directory.Exists(data))
        {
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>
    /// Two MDS processes on one SQLite directory would each trust their own session table (one
    /// could delete the objects of a file the other's client holds open): the second is refused
    /// while the first lives, and a kill -9 of the first frees the directory with it.
    /// </summary>
    [Fact]
    public async Task A_second_mds_on_a_data_directory_in_use_is_refused_and_a_kill_9_frees_it()
    {
        var data = Path.Combine(Path.GetTempPath(), $"parafs-mds-twice-{Guid.NewGuid():N}");
        var listen = $"127.0.0.1:{ParafsProcess.FreePort()}";
        try
        {
            await using (var first = ParafsProcess.Start("mds", "--data", data, "--listen", listen))
            {
                await first.WaitForOutputAsync("serving on");
                await using var second = ParafsProcess.Start("mds", "--data", data, "--listen", $"127.0.0.1:{ParafsProcess.FreePort()}");
                Assert.Equal(1, await second.WaitForExitAsync());
                Assert.Contains($"parafs mds: {data} is in use by another process (pid {first.Id} holds {data}/lock)", second.Output, StringComparison.Ordinal);
                Assert.DoesNotContain("serving on", second.Output, StringComparison.Ordinal);

                await using var client = await TestClient.ConnectAsync(RpcEndpoint.Parse(listen), new Caller(), null);
                await client.MkdirAsync(1, "made-after-the-refusal");
                await first.KillAsync();
            }

            await using var again = ParafsProcess.Start("mds", "--data", data, "--listen", listen);
            await again.WaitForOutputAsync("serving on");
            await using var reader = await TestClient.ConnectAsync(RpcEndpoint.Parse(listen), new Caller(), null);
            Assert.Equal(FileType.Directory, (await reader.LookupAsync(1, "made-after-the-refusal")).Attr.Type);
        }
        finally
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }
}
