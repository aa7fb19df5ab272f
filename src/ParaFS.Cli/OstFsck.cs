using ParaFS.Common;
using ParaFS.Common.Storage;
using ParaFS.Nvme;
using ParaFS.Ost.Backends;
using ParaFS.Ost.Backends.Block;

namespace ParaFS.Cli;

/// <summary>parafs ost fsck: the offline check of a block store, on a file, a device or an NVMe/TCP namespace (the OST must be stopped).</summary>
internal static class OstFsck
{
    public static async Task<int> RunAsync(string[] args)
    {
        var backend = args is ["--backend", var b] ? b : null;
        if (backend is null)
        {
            await Console.Error.WriteLineAsync("usage: parafs ost fsck --backend block:PATH|nvme-tcp://HOST:PORT/NQN/NSID   (see parafs ost --help)").ConfigureAwait(false);
            return 2;
        }

        try
        {
            var spec = BackendSpec.Parse(backend, dataDirectory: "");
            if (spec.IsDirectory)
            {
                await Console.Error.WriteLineAsync($"parafs ost fsck: only block:PATH and nvme-tcp:// stores have an index to check; {backend} is a directory (check it with its file system's own fsck)").ConfigureAwait(false);
                return 2;
            }

            await using IBlockDevice device = spec.Kind == BlockBackend.BackendName
                ? FileBlockDevice.Open(spec.Location)
                : await NvmeNamespaceDevice.OpenAsync(spec.Location).ConfigureAwait(false);
            // A running OST changes the store under the check: refused, as a second OST would be.
            using var exclusive = spec.Kind == BlockBackend.BackendName ? ExclusiveUse.OfDevice(spec.Location, "parafs ost fsck") : null;
            var report = await BlockCheck.RunAsync(device).ConfigureAwait(false);
            var f = report.Format;
            Console.WriteLine($"{device.Description}: target {f.TargetId} (pool {f.Pool}) of file system {f.FsId}, format {f.Format}");
            Console.WriteLine($"  {report.Objects} objects, {report.UsedChunks} of {f.ChunkCount} chunks of {f.ChunkSize} bytes in use, {report.JournalBlocks} journal blocks after the newest checkpoint");
            foreach (var problem in report.Problems)
            {
                Console.WriteLine($"  problem: {problem}");
            }

            foreach (var leak in report.Leaked)
            {
                Console.WriteLine($"  leaked: {leak}");
            }

            Console.WriteLine(report.Clean ? "  clean: no chunk held twice, none outside the device, none leaked" : $"  NOT clean: {report.Problems.Count} problems, {report.Leaked.Count} leaked chunks");
            return report.Clean ? 0 : 1;
        }
        catch (ParaFsException e)
        {
            await Console.Error.WriteLineAsync($"parafs ost fsck: {e.Message}").ConfigureAwait(false);
            return 1;
        }
        catch (StartupException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 1;
        }
    }
}
