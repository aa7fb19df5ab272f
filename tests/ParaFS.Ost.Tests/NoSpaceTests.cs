using System.Security.Cryptography;
using ParaFS.Common;
using ParaFS.Protocol;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;
using Xunit.Abstractions;

namespace ParaFS.Ost.Tests;

public sealed class NoSpaceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_full_target_answers_ENOSPC_keeps_earlier_objects_and_serves_on()
    {
        using var directory = new TestDirectory();
        await using var mount = await ScratchMount.TryMountAsync(output, "a 2 MiB tmpfs to fill", directory.Sub("small"), "-t", "tmpfs", "-o", "size=2m", "tmpfs");
        if (mount is null)
        {
            return;
        }

        await using var mds = await MdsDouble.StartAsync();
        await using var ost = await TestOst.StartAsync(mds, Path.Combine(mount.Path, "data"));
        var kept = RandomNumberGenerator.GetBytes(256 * 1024);
        await ost.WriteAsync(1, 0, kept);
        await ost.SyncAsync(1);

        var chunk = RandomNumberGenerator.GetBytes(1024 * 1024);
        RpcException? full = null;
        for (var i = 0; i < 8 && full is null; i++)
        {
            try
            {
                await ost.WriteAsync(2, (long)i * chunk.Length, chunk);
            }
            catch (RpcException e)
            {
                full = e;
            }
        }

        Assert.NotNull(full);
        Assert.Equal(Errno.ENOSPC, full.Errno);
        Assert.Contains("target 1 (pool fast) is full", full.Message, StringComparison.Ordinal);

        var (back, reply) = await ost.ReadAsync(1, 0, kept.Length);
        Assert.True(reply.Exists);
        Assert.True(back.AsSpan().SequenceEqual(kept), "an object written before the disk filled must be intact");

        await ost.Client.CallAsync(Methods.OstDelete, new ObjectRequest { ObjectId = 2 }, Empty.Parser);
        await ost.WriteAsync(3, 0, kept);
        Assert.Equal(kept, (await ost.ReadAsync(3, 0, kept.Length)).Data);
        var statfs = await ost.Client.CallAsync(Methods.OstStatFs, new Empty(), StatFsReply.Parser);
        Assert.Equal(2UL * 1024 * 1024, statfs.CapacityBytes);
    }
}
