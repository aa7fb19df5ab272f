namespace ParaFS.Common.Storage;

/// <summary>
/// A raw block address space the `block` object store keeps objects on: a file or block device
/// opened with O_DIRECT, or an NVMe namespace reached through ParaFS's own NVMe/TCP host.
/// Offsets and lengths are multiples of <see cref="BlockSize"/>; buffers may be anywhere (an
/// implementation that needs aligned memory copies through its own). Failures are
/// <see cref="ParaFsException"/> with an errno (EIO for a device error, ENOSPC past the end) and
/// a message naming the device.
/// </summary>
public interface IBlockDevice : IAsyncDisposable
{
    /// <summary>For messages: "file /var/ost0.img", "nvme-tcp://127.0.0.1:4420/nqn.../1".</summary>
    string Description { get; }

    /// <summary>The logical block size: every offset and length is a multiple of it (512 or 4096).</summary>
    int BlockSize { get; }

    /// <summary>Bytes addressable.</summary>
    long SizeBytes { get; }

    /// <summary>The largest single read or write the device takes; larger requests are split by the caller.</summary>
    int MaxTransferBytes { get; }

    ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken);

    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Everything written before the call is durable when it returns (NVMe Flush, fdatasync).</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken);

    /// <summary>The range reads back as zeros afterwards (NVMe Write Zeroes; fallocate ZERO_RANGE or plain zeros on a file).</summary>
    ValueTask WriteZeroesAsync(long offset, long length, CancellationToken cancellationToken);

    /// <summary>A hint that the range holds nothing any more (NVMe Dataset Management deallocate, fallocate PUNCH_HOLE); its contents are undefined afterwards.</summary>
    ValueTask DeallocateAsync(long offset, long length, CancellationToken cancellationToken);
}
