using System.Security.Cryptography;
using ParaFS.Ost.Backends.Dir;
using ParaFS.Protocol.Rpc;
using Xunit.Abstractions;

namespace ParaFS.Ost.Tests;

/// <summary>The `dir` store on a file system that refuses O_DIRECT (ramfs does, with EINVAL).</summary>
public sealed class DirectIoFallbackTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_data_directory_that_refuses_O_DIRECT_gets_every_write_buffered_and_loses_nothing()
    {
        using var directory = new TestDirectory();
        await using var mount = await ScratchMount.TryMountAsync(output, "a ramfs (a file system that refuses O_DIRECT)", directory.Sub("ramfs"), "-t", "ramfs", "ramfs");
        if (mount is null)
        {
            return;
        }

        var data = Path.Combine(mount.Path, "data");
        using var first = RpcBuffer.Rent(1024 * 1024);
        using var second = RpcBuffer.Rent(1024 * 1024);
        RandomNumberGenerator.Fill(first.Span);
        RandomNumberGenerator.Fill(second.Span);
        var log = new CapturingLoggerProvider();
        using (var backend = DirBackend.Open(data, "target 4 (pool fast)", logger: log.CreateLogger("ost")))
        {
            // Both are large and page aligned, so both would go O_DIRECT on a disk.
            await backend.WriteAsync(1, 0, first.Memory, default);
            await backend.WriteAsync(1, first.Length, second.Memory, default);
            await backend.SyncAsync([1UL], default);
            Assert.Equal(0, backend.DirectWrites);
            Assert.Equal(1, log.Count("refuses O_DIRECT"));
            Assert.Contains(log.Warnings, w => w.Contains("target 4 (pool fast)", StringComparison.Ordinal));
        }

        // Read back through a fresh store: what was written is what is there.
        using var reopened = DirBackend.Open(data, "target 4 (pool fast)");
        var back = new byte[first.Length + second.Length];
        var read = await reopened.ReadAsync(1, 0, back, default);
        Assert.Equal(back.Length, read.BytesRead);
        Assert.True(back.AsSpan(0, first.Length).SequenceEqual(first.Span), "the first 1 MiB differs");
        Assert.True(back.AsSpan(first.Length).SequenceEqual(second.Span), "the second 1 MiB differs");
    }
}
