using System.Diagnostics;
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
        if (!Environment.IsPrivilegedProcess)
        {
            output.WriteLine("skipped: mounting a 2 MiB tmpfs to fill needs root (CI runs tests as root)");
            return;
        }

        using var directory = new TestDirectory();
        var mountPoint = directory.Sub("small");
        Directory.CreateDirectory(mountPoint);
        if (await RunAsync("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint) is { } failure)
        {
            output.WriteLine($"skipped: cannot mount a tmpfs here ({failure})");
            return;
        }

        try
        {
            await using var mds = await MdsDouble.StartAsync();
            await using var ost = await TestOst.StartAsync(mds, Path.Combine(mountPoint, "data"));
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
        finally
        {
            if (await RunAsync("umount", mountPoint) is { } stuck)
            {
                await RunAsync("umount", "-l", mountPoint);
                output.WriteLine($"umount needed -l: {stuck}");
            }
        }
    }

    /// <summary>Runs a command; null when it succeeded, else what it said.</summary>
    internal static async Task<string?> RunAsync(string command, params string[] args)
    {
        var start = new ProcessStartInfo(command) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0 ? null : $"{command} exited {process.ExitCode}: {error.Trim()}";
    }
}
