using ParaFS.Ost.Backends;
using ParaFS.Ost.Backends.Dir;

namespace ParaFS.Ost.Tests;

/// <summary>The contract on the `dir` backend, and what only it does.</summary>
public sealed class DirBackendTests : ObjectBackendContract
{
    protected override IObjectBackend Open(TestDirectory directory) => DirBackend.Open(directory.Path, "target 1 (pool fast)");

    [Fact]
    public async Task StatFs_reports_the_file_systems_capacity_and_free_space()
    {
        await Backend.WriteAsync(1, 0, new byte[10], default);
        var usage = Backend.GetUsage();
        var drive = new DriveInfo(Path.GetTempPath());
        Assert.Equal(drive.TotalSize, usage.CapacityBytes);
        Assert.InRange(usage.FreeBytes, 1, usage.CapacityBytes);
        Assert.Equal(1, usage.Objects);
    }

    [Fact]
    public async Task The_open_file_cache_stays_within_its_limit()
    {
        using var directory = new TestDirectory();
        using var small = DirBackend.Open(directory.Path, "target 2 (pool fast)", openObjectLimit: 8);
        for (var id = 1UL; id <= 100; id++)
        {
            await small.WriteAsync(id, 0, BitConverter.GetBytes(id), default);
            Assert.InRange(small.OpenObjects, 1, 8);
        }

        var buffer = new byte[8];
        for (var id = 1UL; id <= 100; id++)
        {
            Assert.Equal(8, (await small.ReadAsync(id, 0, buffer, default)).BytesRead);
            Assert.Equal(id, BitConverter.ToUInt64(buffer));
        }
    }
}
