using ParaFS.Mds;
using ParaFS.Protocol.Mds;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Tests;

/// <summary>The OST against the real MDS (in-process, SQLite store), not the double.</summary>
public sealed class RealMdsTests
{
    [Fact]
    public async Task The_real_MDS_registers_the_target_once_and_sees_its_heartbeats_across_a_restart()
    {
        using var directory = new TestDirectory();
        await using var mds = await MdsServer.StartAsync(new MdsOptions
        {
            DataDirectory = directory.Sub("mds"),
            Listen = RpcEndpoint.Parse("127.0.0.1:0"),
            FileSystemName = "real",
            HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        });

        uint targetId;
        await using (var ost = await TestOst.StartAsync(mds.Endpoint, mds.FileSystemId, directory.Sub("ost")))
        {
            targetId = ost.Server.Superblock!.TargetId;
            Assert.Equal(mds.FileSystemId, ost.Server.Superblock.FsId);
            Assert.Equal("real", ost.Server.Superblock.FsName);
            await ost.WriteAsync(1, 0, new byte[4096]);
            await Eventually.TrueAsync(() => mds.Targets.Usage((int)targetId)?.Objects == 1, "a heartbeat counting the object");
            var target = mds.Targets.Find((int)targetId)!;
            Assert.Equal(TargetState.Up, target.State);
            Assert.Equal("fast", target.Pool);
            Assert.Equal($"127.0.0.1:{ost.Server.Endpoint.Port}", target.Address);
        }

        await using var again = await TestOst.StartAsync(mds.Endpoint, mds.FileSystemId, directory.Sub("ost"));
        Assert.Equal(targetId, again.Server.Superblock!.TargetId);
        Assert.Single(mds.Targets.All);
        Assert.Equal(0, again.Log.Count("refused"));
    }
}
