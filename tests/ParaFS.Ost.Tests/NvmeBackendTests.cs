using Microsoft.Extensions.Logging.Abstractions;
using ParaFS.Nvme;
using ParaFS.Ost.Backends;
using ParaFS.Ost.Backends.Block;

namespace ParaFS.Ost.Tests;

/// <summary>
/// The backend contract on `nvme-tcp`: the block store on namespace 2 of the real NVMe/TCP target
/// (Linux nvmet in qemu, started by scripts/test and named by PARAFS_TEST_NVMET), through
/// ParaFS's own host. Each test starts from a blank namespace (its superblock zeroed).
/// </summary>
public sealed class NvmeBackendTests : ObjectBackendContract
{
    private bool _wiped;

    /// <summary>Why these tests cannot run here; null when a target is configured.</summary>
    public static string? SkipReason => Target is not null
        ? null
        : Environment.GetEnvironmentVariable("PARAFS_TEST_NVMET_SKIP") is { Length: > 0 } why
            ? $"no NVMe/TCP target: {why}"
            : "no NVMe/TCP target: PARAFS_TEST_NVMET is not set (scripts/test starts one with scripts/nvmet and sets it)";

    /// <summary>HOST:PORT/NQN of the test target.</summary>
    public static string? Target => Environment.GetEnvironmentVariable("PARAFS_TEST_NVMET") is { Length: > 0 } value ? value : null;

    protected override IObjectBackend Open(TestDirectory directory)
    {
        var device = NvmeNamespaceDevice.OpenAsync($"nvme-tcp://{Target}/2").GetAwaiter().GetResult();
        if (!_wiped)
        {
            device.WriteZeroesAsync(0, 2 * BlockFormat.MetadataBlock, default).AsTask().GetAwaiter().GetResult();
            _wiped = true;
        }

        return BlockBackend.OpenAsync(BackendSpec.NvmeTcp, device, "fs-test", "", 1, "fast", NullLogger.Instance).GetAwaiter().GetResult();
    }
}
