using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

public abstract class TargetTests(TestStore store)
{
    private const ulong Root = 1;

    [SuiteFact]
    public async Task A_thousand_single_stripe_files_spread_within_five_percent_over_four_targets()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        var osts = await mds.AddTargetsAsync(4);
        await using var client = await mds.ClientAsync();
        await client.CallAsync(Methods.MdsSetStripe, new SetStripeRequest { Caller = client.Caller, Ino = Root, Policy = new LayoutPolicy { StripeCount = 1 } });
        var perTarget = new Dictionary<uint, int>();
        for (var i = 0; i < 1000; i++)
        {
            var layout = (await client.CallAsync(Methods.MdsCreate, new CreateRequest { Caller = client.Caller, Parent = Root, Name = $"f{i}", Type = FileType.Regular, Mode = 0x1A4 }, EntryReply.Parser)).Layout;
            var target = Assert.Single(layout.Objects).TargetId;
            perTarget[target] = perTarget.GetValueOrDefault(target) + 1;
        }

        Assert.Equal(4, perTarget.Count);
        Assert.All(perTarget.Values, n => Assert.InRange(n, 200, 300));
    }

    [SuiteFact]
    public async Task The_stripes_of_one_file_never_share_a_target_and_object_ids_are_unique_per_target()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(4);
        await using var client = await mds.ClientAsync();
        var seen = new HashSet<(uint, ulong)>();
        for (var i = 0; i < 50; i++)
        {
            var reply = await client.CallAsync(Methods.MdsCreate, new CreateRequest { Caller = client.Caller, Parent = Root, Name = $"f{i}", Type = FileType.Regular, Mode = 0x1A4 }, EntryReply.Parser);
            Assert.Equal(4u, reply.Layout.StripeCount);
            Assert.Equal(1024u * 1024, reply.Layout.StripeSize);
            Assert.Equal(4, reply.Layout.Objects.Select(o => o.TargetId).Distinct().Count());
            Assert.All(reply.Layout.Objects, o => Assert.True(seen.Add((o.TargetId, o.ObjectId))));
        }
    }

    [SuiteFact]
    public async Task With_fewer_targets_than_the_stripe_count_a_file_uses_them_all()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(2);
        await using var client = await mds.ClientAsync();
        var reply = await client.CallAsync(Methods.MdsCreate, new CreateRequest { Caller = client.Caller, Parent = Root, Name = "f", Type = FileType.Regular, Mode = 0x1A4 }, EntryReply.Parser);
        Assert.Equal(2u, reply.Layout.StripeCount);
    }

    [SuiteFact]
    public async Task A_file_in_a_pool_with_no_target_up_fails_with_ENOSPC_naming_the_pool()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(1, pool: "vendorA");
        await using var client = await mds.ClientAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => client.CreateAsync(Root, "f"));
        Assert.Equal(Errno.ENOSPC, e.Errno);
        Assert.Contains("pool 'default'", e.Message, StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task A_target_registers_heartbeats_is_marked_down_when_silent_and_up_when_back()
    {
        // Down after three missed intervals: 3 s, so that a loaded test run, slow between a
        // heartbeat and the look that follows it, does not see the target go down in between.
        await using var mds = await MdsFixture.StartAsync(store, heartbeat: TimeSpan.FromSeconds(1));
        await using var ost = (await mds.AddTargetsAsync(1, pool: "p1"))[0];
        await using var client = await mds.ClientAsync();
        async Task<TargetInfo> Info() => Assert.Single((await client.CallAsync(Methods.MdsListTargets, new StatFsRequest(), ListTargetsReply.Parser)).Targets);

        var registered = await Info();
        Assert.Equal(ost.TargetId, registered.TargetId);
        Assert.Equal("p1", registered.Pool);
        Assert.Equal(ost.Address, registered.Address);
        Assert.Equal(TargetState.Up, registered.State);

        Assert.Equal(TargetState.Up, (await ost.HeartbeatAsync()).State);
        Assert.Equal(1ul << 29, (await Info()).Usage.FreeBytes);

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await Info()).State != TargetState.Down && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        Assert.Equal(TargetState.Down, (await Info()).State);
        Assert.Equal(TargetState.Up, (await ost.HeartbeatAsync()).State);
        Assert.Equal(TargetState.Up, (await Info()).State);
    }

    [SuiteFact]
    public async Task A_target_id_the_mds_never_assigned_is_refused()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await using var rpc = new RpcClient(mds.Server.Endpoint, new RpcClientOptions { Role = PeerRole.Ost });
        var e = await Assert.ThrowsAsync<RpcException>(() => rpc.CallAsync(Methods.RegisterTarget, new RegisterTargetRequest { TargetId = 42, Pool = "p", Address = "127.0.0.1:1" }, RegisterTargetReply.Parser));
        Assert.Equal(Errno.ENOENT, e.Errno);
        Assert.Contains("target 42", e.Message, StringComparison.Ordinal);
    }

    [SuiteFact]
    public async Task Statfs_sums_the_space_of_the_targets_that_are_up()
    {
        await using var mds = await MdsFixture.StartAsync(store);
        await mds.AddTargetsAsync(3, freeBytes: 1000);
        await using var client = await mds.ClientAsync();
        var statfs = await client.CallAsync(Methods.MdsStatFs, new StatFsRequest(), StatFsReply.Parser);
        Assert.Equal(3000ul, statfs.FreeBytes);
        Assert.Equal(6000ul, statfs.CapacityBytes);
        Assert.Equal(255u, statfs.MaxNameLength);
    }
}

public sealed class TargetTestsOnSqlite() : TargetTests(TestStore.Sqlite);

public sealed class TargetTestsOnPostgres() : TargetTests(TestStore.Postgres)
{
    public static string? SkipReason => TestPostgres.SkipReason;
}
