using System.Buffers;
using System.Buffers.Binary;

namespace ParaFS.Nvme;

/// <summary>Reads a discovery controller's log (log page 0x70; reference section 11).</summary>
public static class NvmeDiscovery
{
    public const byte DiscoveryLogId = 0x70;

    /// <summary>
    /// Connects to the discovery NQN (KATO 0), reads the header, then every record, again if
    /// GENCTR moved meanwhile, and disconnects. The addresses in the entries are the target's own
    /// view: behind NAT or port forwarding (the qemu test target says 10.0.2.15) they may be
    /// unreachable, so callers should prefer their configured address.
    /// </summary>
    public static async Task<IReadOnlyList<DiscoveryLogEntry>> GetLogAsync(string host, int port, NvmeTcpOptions options, CancellationToken cancellationToken)
    {
        await using var controller = await NvmeController.ConnectAsync(host, port, NvmeController.DiscoveryNqn,
            options with { KeepAliveTimeout = TimeSpan.Zero }, discovery: true, cancellationToken).ConfigureAwait(false);
        for (var attempt = 0; ; attempt++)
        {
            var header = ArrayPool<byte>.Shared.Rent(DiscoveryLogEntry.Size);
            ulong generation;
            int records;
            try
            {
                await controller.GetLogPageAsync(DiscoveryLogId, 0, header.AsMemory(0, DiscoveryLogEntry.Size), cancellationToken).ConfigureAwait(false);
                generation = BinaryPrimitives.ReadUInt64LittleEndian(header);
                records = (int)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8)), 1024);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(header);
            }
            var length = (records + 1) * DiscoveryLogEntry.Size;
            var log = ArrayPool<byte>.Shared.Rent(length);
            try
            {
                await controller.GetLogPageAsync(DiscoveryLogId, 0, log.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                if (BinaryPrimitives.ReadUInt64LittleEndian(log) != generation && attempt < 3)
                {
                    continue;
                }
                var entries = new List<DiscoveryLogEntry>(records);
                for (var i = 0; i < records; i++)
                {
                    entries.Add(DiscoveryLogEntry.Parse(log.AsSpan((i + 1) * DiscoveryLogEntry.Size, DiscoveryLogEntry.Size)));
                }
                return entries;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(log);
            }
        }
    }
}
