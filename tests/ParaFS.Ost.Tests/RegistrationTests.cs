using System.Text.Json;
using ParaFS.Common;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Tests;

public sealed class RegistrationTests
{
    [Fact]
    public async Task A_first_start_registers_a_new_target_and_formats_the_directory_with_what_the_MDS_assigned()
    {
        await using var mds = await MdsDouble.StartAsync(fsId: "fs-first", fsName: "alpha", lastTargetId: 6);
        using var directory = new TestDirectory();
        await using var ost = await TestOst.StartAsync(mds, directory.Sub("data"));

        var registration = Assert.Single(mds.Registrations);
        Assert.Equal(0U, registration.TargetId);
        Assert.Equal("fast", registration.Pool);
        Assert.Equal("dir", registration.Backend);
        Assert.Equal($"127.0.0.1:{ost.Server.Endpoint.Port}", registration.Address);
        Assert.True(registration.Usage.CapacityBytes > 0);

        using var json = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(directory.Sub("data"), Superblock.FileName)));
        var root = json.RootElement;
        Assert.Equal(Superblock.CurrentFormat, root.GetProperty("format").GetInt32());
        Assert.Equal("fs-first", root.GetProperty("fs_id").GetString());
        Assert.Equal("alpha", root.GetProperty("fs_name").GetString());
        Assert.Equal(7U, root.GetProperty("target_id").GetUInt32());
        Assert.Equal("fast", root.GetProperty("pool").GetString());
        Assert.Equal("dir", root.GetProperty("backend").GetString());
        Assert.True(root.GetProperty("created").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddHours(-1));
        Assert.Equal(7U, ost.Server.Superblock!.TargetId);
    }

    [Fact]
    public async Task Heartbeats_reach_the_MDS_with_capacity_free_space_objects_and_load()
    {
        await using var mds = await MdsDouble.StartAsync(heartbeatMs: 100);
        await using var ost = await TestOst.StartAsync(mds);
        for (var id = 1UL; id <= 3; id++)
        {
            await ost.WriteAsync(id, 0, new byte[4096]);
        }

        await Eventually.TrueAsync(() => mds.Heartbeats.Any(h => h.Usage.Objects == 3), "a heartbeat counting 3 objects");
        var beat = mds.Heartbeats.Last(h => h.Usage.Objects == 3);
        Assert.Equal(1U, beat.TargetId);
        Assert.Equal($"127.0.0.1:{ost.Server.Endpoint.Port}", beat.Address);
        Assert.True(beat.Usage.CapacityBytes > 0 && beat.Usage.FreeBytes > 0 && beat.Usage.FreeBytes <= beat.Usage.CapacityBytes);
        Assert.Contains(mds.Heartbeats, h => h.Usage.OpsPerSecond > 0);
        Assert.Equal(TimeSpan.FromMilliseconds(100), ost.Server.HeartbeatInterval);
    }

    [Fact]
    public async Task The_OST_keeps_serving_while_the_MDS_is_down_and_registers_again_when_it_is_back()
    {
        var mds = await MdsDouble.StartAsync(heartbeatMs: 100);
        var endpoint = mds.Endpoint;
        await using var ost = await TestOst.StartAsync(mds);
        await Eventually.TrueAsync(() => mds.Heartbeats.Count > 0, "a first heartbeat");

        await mds.DisposeAsync();
        await ost.Log.WaitForWarningAsync("cannot reach the MDS at");

        // It serves on, and keeps trying quietly: one warning, not one per retry (every 100 ms).
        await ost.WriteAsync(5, 0, new byte[] { 1, 2, 3 });
        Assert.Equal([1, 2, 3], (await ost.ReadAsync(5, 0, 3)).Data);
        await Task.Delay(1500);
        Assert.Equal(1, ost.Log.Count("cannot reach the MDS at"));

        await using var back = await MdsDouble.StartAsync(fsId: mds.FsId, fsName: mds.FsName, heartbeatMs: 100, listen: endpoint.Text);
        await Eventually.TrueAsync(() => back.Registrations.Count > 0 && back.Heartbeats.Count > 0, "registration and heartbeats to the MDS that came back");
        Assert.Equal(1U, back.Registrations[0].TargetId);
        Assert.Equal(1, ost.Log.Count("is back"));
        Assert.Equal(1, ost.Log.Count("cannot reach the MDS at"));
    }

    [Fact]
    public async Task A_first_start_waits_for_the_MDS_and_says_so()
    {
        var absent = await MdsDouble.StartAsync();
        var endpoint = absent.Endpoint;
        await absent.DisposeAsync();

        using var directory = new TestDirectory();
        var log = new CapturingLoggerProvider();
        await using var server = new OstServer(TestOst.Options(endpoint, directory.Sub("data")), log);
        var starting = server.StartAsync();
        await log.WaitForWarningAsync($"waiting for the MDS at {endpoint} to register target");
        Assert.False(starting.IsCompleted);
        Assert.False(File.Exists(Path.Combine(directory.Sub("data"), Superblock.FileName)), "nothing is formatted before the MDS assigns an id");

        await using var mds = await MdsDouble.StartAsync(listen: endpoint.Text);
        await starting.WaitAsync(Eventually.Patience);
        Assert.Equal(1U, server.Superblock!.TargetId);
        Assert.True(File.Exists(Path.Combine(directory.Sub("data"), Superblock.FileName)));
        await Eventually.TrueAsync(() => mds.Heartbeats.Count > 0, "a heartbeat after the first registration");
    }

    [Fact]
    public async Task A_restart_on_the_same_directory_keeps_its_target_id_and_objects()
    {
        await using var mds = await MdsDouble.StartAsync(lastTargetId: 2);
        using var directory = new TestDirectory();
        await using (var first = await TestOst.StartAsync(mds, directory.Sub("data")))
        {
            await first.WriteAsync(9, 0, new byte[] { 42 });
            await first.SyncAsync(9);
        }

        await using var second = await TestOst.StartAsync(mds, directory.Sub("data"));
        Assert.Equal([0U, 3U], mds.Registrations.Select(r => r.TargetId));
        Assert.Equal(3U, second.Server.Superblock!.TargetId);
        Assert.Equal([42], (await second.ReadAsync(9, 0, 10)).Data);
    }

    [Fact]
    public async Task A_directory_of_another_file_system_is_refused_naming_both()
    {
        using var directory = new TestDirectory();
        var data = directory.Sub("data");
        await using (var mdsA = await MdsDouble.StartAsync(fsId: "fs-aaaa", fsName: "alpha"))
        {
            await using var ost = await TestOst.StartAsync(mdsA, data);
        }

        await using var mdsB = await MdsDouble.StartAsync(fsId: "fs-bbbb", fsName: "beta");
        var e = await Assert.ThrowsAsync<StartupException>(() => TestOst.StartAsync(mdsB, data));
        Assert.Contains(data, e.Message, StringComparison.Ordinal);
        Assert.Contains("belongs to file system fs-aaaa (alpha)", e.Message, StringComparison.Ordinal);
        Assert.Contains($"the MDS at {mdsB.Endpoint} serves file system fs-bbbb (beta)", e.Message, StringComparison.Ordinal);
        Assert.Contains("give --data an empty directory", e.Message, StringComparison.Ordinal);
        Assert.Empty(mdsB.Registrations);
    }

    [Fact]
    public async Task A_second_OST_on_a_data_directory_in_use_is_refused_and_the_first_keeps_serving()
    {
        await using var mds = await MdsDouble.StartAsync();
        using var directory = new TestDirectory();
        var data = directory.Sub("data");
        await using (var first = await TestOst.StartAsync(mds, data))
        {
            var e = await Assert.ThrowsAsync<StartupException>(() => TestOst.StartAsync(mds, data));
            Assert.Contains($"parafs ost: {data} is in use by another process (pid {Environment.ProcessId} holds {data}/lock)", e.Message, StringComparison.Ordinal);
            Assert.Single(mds.Registrations);

            await first.WriteAsync(5, 0, new byte[] { 7 });
            await first.SyncAsync(5);
            Assert.Equal([7], (await first.ReadAsync(5, 0, 10)).Data);
        }

        // Stopped, it leaves the directory free (the lock file stays, unlocked, and is no object).
        await using var again = await TestOst.StartAsync(mds, data);
        Assert.Equal([7], (await again.ReadAsync(5, 0, 10)).Data);
        Assert.Equal([5UL], (await again.Server.Backend.ListAsync(0, 10, default)).ObjectIds);
    }

    [Fact]
    public async Task A_first_start_that_failed_leaves_a_directory_a_new_start_accepts()
    {
        using var directory = new TestDirectory();
        var data = directory.Sub("data");
        Directory.CreateDirectory(data);
        File.WriteAllText(Path.Combine(data, "lock"), "12345\n");
        await using var mds = await MdsDouble.StartAsync();
        await using var ost = await TestOst.StartAsync(mds, data);
        Assert.Single(mds.Registrations);
    }

    [Fact]
    public async Task A_directory_that_is_not_empty_and_has_no_superblock_is_refused()
    {
        await using var mds = await MdsDouble.StartAsync();
        using var directory = new TestDirectory();
        File.WriteAllText(directory.Sub("precious.txt"), "not ParaFS's");
        var e = await Assert.ThrowsAsync<StartupException>(() => TestOst.StartAsync(mds, directory.Path));
        Assert.Contains($"{directory.Path} is not empty and holds no ParaFS superblock", e.Message, StringComparison.Ordinal);
        Assert.Empty(mds.Registrations);
    }

    [Fact]
    public async Task A_restart_under_another_pool_is_refused()
    {
        await using var mds = await MdsDouble.StartAsync();
        using var directory = new TestDirectory();
        await using (await TestOst.StartAsync(mds, directory.Sub("data")))
        {
        }

        var e = await Assert.ThrowsAsync<StartupException>(() => TestOst.StartAsync(mds, directory.Sub("data"), o => o with { Pool = "slow" }));
        Assert.Contains("start it with --pool fast", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_restart_with_the_MDS_down_serves_at_once_and_registers_later()
    {
        var mds = await MdsDouble.StartAsync(heartbeatMs: 100);
        var endpoint = mds.Endpoint;
        using var directory = new TestDirectory();
        await using (var first = await TestOst.StartAsync(mds, directory.Sub("data")))
        {
            await first.WriteAsync(1, 0, new byte[] { 7 });
        }

        await mds.DisposeAsync();
        await using var second = await TestOst.StartAsync(mds, directory.Sub("data"));
        Assert.Equal([7], (await second.ReadAsync(1, 0, 1)).Data);
        await second.Log.WaitForWarningAsync("cannot reach the MDS at");

        await using var back = await MdsDouble.StartAsync(fsId: mds.FsId, heartbeatMs: 100, listen: endpoint.Text);
        await Eventually.TrueAsync(() => back.Registrations.Any(r => r.TargetId == 1) && back.Heartbeats.Count > 0, "the target registering once the MDS is up");
    }

    [Fact]
    public async Task An_address_given_to_advertise_is_what_the_MDS_hears()
    {
        await using var mds = await MdsDouble.StartAsync();
        await using var ost = await TestOst.StartAsync(mds, adjust: o => o with { Advertise = "ost7.example:7000" });
        Assert.Equal("ost7.example:7000", Assert.Single(mds.Registrations).Address);
        _ = RpcEndpoint.Parse(mds.Registrations[0].Address);
    }
}
