using System.Text.Json;
using ParaFS.Nvme;

namespace ParaFS.Mount.Tests;

/// <summary>
/// An embedded cluster whose OSTs keep their objects on the namespaces of a real NVMe/TCP target
/// (Linux nvmet in qemu, started by scripts/test: PARAFS_TEST_NVMET), through ParaFS's own
/// user-space host: no kernel initiator anywhere. Files written through the kernel mount read
/// back from the namespaces (page cache dropped), and again after the whole cluster restarts.
/// </summary>
public sealed class NvmeClusterTests
{
    internal static string? Target => Environment.GetEnvironmentVariable("PARAFS_TEST_NVMET") is { Length: > 0 } value ? value : null;

    [NvmeMountFact]
    public async Task Up_with_nvme_tcp_targets_writes_through_the_mount_and_reads_back_after_a_restart()
    {
        // Blank namespaces: whatever earlier tests left there belongs to another file system.
        for (var nsid = 1; nsid <= 2; nsid++)
        {
            await using var device = await NvmeNamespaceDevice.OpenAsync($"nvme-tcp://{Target}/{nsid}");
            await device.WriteZeroesAsync(0, 8192, default);
        }

        var root = Path.Combine(Path.GetTempPath(), $"parafs-nvme-{Guid.NewGuid():N}");
        var data = Path.Combine(root, ".parafs");
        var mnt = Path.Combine(root, "mnt");
        string sha;
        try
        {
            await using (var up = await ParafsUp.StartAsync(data, mnt, "--targets", "2", "--backend", $"nvme-tcp://{Target}"))
            {
                await Shell.OkAsync($"dd if=/dev/urandom of='{mnt}/ckpt' bs=1M count=24 status=none && cp '{mnt}/ckpt' '{mnt}/copy' && sync");
                sha = await Shell.OkAsync($"sha256sum < '{mnt}/ckpt'");
                await File.WriteAllTextAsync("/proc/sys/vm/drop_caches", "3");
                Assert.Equal(sha, await Shell.OkAsync($"sha256sum < '{mnt}/copy'"));

                using var targets = JsonDocument.Parse(await Shell.OkAsync($"dotnet '{ParafsUp.ParafsDll}' targets --json '{mnt}'"));
                Assert.Equal(["nvme-tcp", "nvme-tcp"], targets.RootElement.EnumerateArray().Select(t => t.GetProperty("backend").GetString()));
                Assert.Equal(0, await up.InterruptAsync());
            }

            await using (var again = await ParafsUp.StartAsync(data, mnt, "--targets", "2", "--backend", $"nvme-tcp://{Target}"))
            {
                Assert.Equal(sha, await Shell.OkAsync($"sha256sum < '{mnt}/ckpt'"));
                Assert.Equal(sha, await Shell.OkAsync($"sha256sum < '{mnt}/copy'"));
            }
        }
        finally
        {
            if (!ParafsUp.IsMounted(mnt))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }
}

/// <summary>A mount test that also needs the NVMe/TCP test target; skips saying which is missing.</summary>
public sealed class NvmeMountFactAttribute : FactAttribute
{
    public NvmeMountFactAttribute()
    {
        Skip = new MountFactAttribute().Skip
            ?? (NvmeClusterTests.Target is null
                ? $"no NVMe/TCP target: {Environment.GetEnvironmentVariable("PARAFS_TEST_NVMET_SKIP") ?? "PARAFS_TEST_NVMET is not set (scripts/test starts one with scripts/nvmet)"}"
                : null);
    }
}
