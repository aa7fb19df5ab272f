using System.Buffers;
using System.Runtime.CompilerServices;
using ParaFS.Common;
using ParaFS.Common.Storage;

namespace ParaFS.Nvme;

/// <summary>
/// One NVMe namespace over ParaFS's own NVMe/TCP host, as an <see cref="IBlockDevice"/>: the
/// `block` object store's address space when the OST runs with <c>--backend nvme-tcp://...</c>.
/// Commands are spread round robin across the controller's I/O queues; requests larger than
/// <see cref="MaxTransferBytes"/> are split here and their pieces sent in parallel.
/// A command whose connection drops (or times out, which drops it) is retried once on a freshly
/// reconnected controller; if that fails too, the caller gets the error (EIO, or ETIMEDOUT).
/// Every Read/Write/Write Zeroes/Deallocate is idempotent, so the retry cannot corrupt data.
/// </summary>
public sealed class NvmeNamespaceDevice : IBlockDevice
{
    /// <summary>NLB is 16 bits: one Write Zeroes covers at most 65536 blocks.</summary>
    private const int MaxBlocksPerCommand = 65536;

    /// <summary>Dataset Management carries at most 256 ranges (4096 bytes).</summary>
    private const int MaxDsmRanges = 256;

    private readonly NvmeController _controller;
    private readonly bool _ownsController;
    private int _disposed;

    private NvmeNamespaceDevice(NvmeController controller, bool ownsController, uint nsid, IdentifyNamespace identity, string description)
    {
        _controller = controller;
        _ownsController = ownsController;
        NamespaceId = nsid;
        Namespace = identity;
        Description = description;
        BlockSize = identity.BlockSize;
        SizeBytes = checked((long)identity.SizeBlocks * identity.BlockSize);
        var max = Math.Min(controller.Options.MaxTransferBytes, controller.MaxDataTransferBytes);
        max = (int)Math.Min(max, (long)MaxBlocksPerCommand * BlockSize);
        if (controller.Options.DataDigest && controller.IoQueues.Count > 0)
        {
            // nvmet 6.1 miscomputes the digest of an R2T answered by several H2CData PDUs
            // (reference pitfall 3): keep every write within one MAXH2CDATA.
            max = Math.Min(max, controller.IoQueues[0].MaxH2CData);
        }
        MaxTransferBytes = max / BlockSize * BlockSize;
    }

    public string Description { get; }

    public int BlockSize { get; }

    public long SizeBytes { get; }

    /// <summary>min(options' max transfer (1 MiB), MDTS, 65536 blocks, and MAXH2CDATA when data digests are on);
    /// larger requests are split here too.</summary>
    public int MaxTransferBytes { get; }

    public uint NamespaceId { get; }

    public IdentifyNamespace Namespace { get; }

    public NvmeController Controller => _controller;

    /// <summary>
    /// Opens <c>nvme-tcp://HOST:PORT/NQN[/NSID][?options]</c> (see <see cref="NvmeTcpAddress"/>):
    /// brings the controller up with its I/O queues and identifies the namespace. The device owns
    /// the controller; <see cref="DisposeAsync"/> shuts it down.
    /// </summary>
    public static async Task<NvmeNamespaceDevice> OpenAsync(string url, NvmeTcpOptions? options = null, CancellationToken cancellationToken = default)
    {
        NvmeTcpAddress address;
        NvmeTcpOptions effective;
        try
        {
            (address, effective) = NvmeTcpAddress.Parse(url, options);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new ParaFsException(Errno.EINVAL, e.Message, e);
        }
        return await OpenAsync(address, effective, cancellationToken).ConfigureAwait(false);
    }

    public static async Task<NvmeNamespaceDevice> OpenAsync(NvmeTcpAddress address, NvmeTcpOptions options, CancellationToken cancellationToken = default)
    {
        var controller = await NvmeController.ConnectAsync(address.Host, address.Port, address.SubsystemNqn, options, cancellationToken)
            .ConfigureAwait(false);
        try
        {
            return await OpenAsync(controller, address.NamespaceId, ownsController: true, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await controller.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A namespace of a controller the caller already holds (several namespaces may share one controller).</summary>
    public static async Task<NvmeNamespaceDevice> OpenAsync(NvmeController controller, uint? nsid, bool ownsController, CancellationToken cancellationToken)
    {
        var id = nsid ?? await FirstNamespaceAsync(controller, cancellationToken).ConfigureAwait(false);
        var description = new NvmeTcpAddress(controller.Host, controller.Port, controller.SubsystemNqn, id).ToString();
        IdentifyNamespace identity;
        try
        {
            identity = await controller.IdentifyNamespaceAsync(id, cancellationToken).ConfigureAwait(false);
        }
        catch (NvmeStatusException e)
        {
            throw new ParaFsException(Errno.ENODEV, $"{description}: no such namespace ({e.Completion.DescribeStatus()})", e);
        }
        if (identity.SizeBlocks == 0)
        {
            throw new ParaFsException(Errno.ENODEV, $"{description}: namespace {id} is not active (size 0)");
        }
        if (identity.BlockSize is < 512 or > 65536)
        {
            throw new ParaFsException(Errno.EOPNOTSUPP, $"{description}: unsupported LBA size (format {identity.FormatIndex})");
        }
        if (identity.MetadataSize != 0)
        {
            throw new ParaFsException(Errno.EOPNOTSUPP, $"{description}: LBA format with {identity.MetadataSize} bytes of metadata is not supported");
        }
        var size = (long)identity.SizeBlocks * identity.BlockSize;
        if (size < controller.Options.MinimumSizeBytes)
        {
            throw new ParaFsException(Errno.ENOSPC,
                $"{description}: the namespace holds {size} bytes ({identity.SizeBlocks} blocks of {identity.BlockSize}), less than the {controller.Options.MinimumSizeBytes} bytes required");
        }
        return new NvmeNamespaceDevice(controller, ownsController, id, identity, description);
    }

    private static async Task<uint> FirstNamespaceAsync(NvmeController controller, CancellationToken cancellationToken)
    {
        var ids = await controller.ActiveNamespacesAsync(cancellationToken).ConfigureAwait(false);
        return ids.Count > 0
            ? ids[0]
            : throw new ParaFsException(Errno.ENODEV, $"{controller.Label}: the subsystem has no active namespace");
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        CheckRange(offset, destination.Length, "read");
        if (destination.IsEmpty)
        {
            return ValueTask.CompletedTask;
        }
        if (destination.Length <= MaxTransferBytes)
        {
            return ReadOneAsync(offset, destination, cancellationToken);
        }
        var pieces = new List<Task>();
        for (var done = 0; done < destination.Length; done += MaxTransferBytes)
        {
            var length = Math.Min(MaxTransferBytes, destination.Length - done);
            pieces.Add(ReadOneAsync(offset + done, destination.Slice(done, length), cancellationToken).AsTask());
        }
        return new ValueTask(Task.WhenAll(pieces));
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        CheckRange(offset, data.Length, "write");
        if (data.IsEmpty)
        {
            return ValueTask.CompletedTask;
        }
        if (data.Length <= MaxTransferBytes)
        {
            return WriteOneAsync(offset, data, cancellationToken);
        }
        var pieces = new List<Task>();
        for (var done = 0; done < data.Length; done += MaxTransferBytes)
        {
            var length = Math.Min(MaxTransferBytes, data.Length - done);
            pieces.Add(WriteOneAsync(offset + done, data.Slice(done, length), cancellationToken).AsTask());
        }
        return new ValueTask(Task.WhenAll(pieces));
    }

    private ValueTask ReadOneAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken) =>
        ExecuteAsync(NvmeCommand.ReadWrite(Opcode.Read, NamespaceId, (ulong)(offset / BlockSize), destination.Length / BlockSize),
            default, destination, offset, destination.Length, cancellationToken);

    private ValueTask WriteOneAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        ExecuteAsync(NvmeCommand.ReadWrite(Opcode.Write, NamespaceId, (ulong)(offset / BlockSize), data.Length / BlockSize),
            data, default, offset, data.Length, cancellationToken);

    /// <summary>NVMe Flush: every write completed before the call is durable afterwards.</summary>
    public ValueTask FlushAsync(CancellationToken cancellationToken) =>
        ExecuteAsync(NvmeCommand.Flush(NamespaceId), default, default, 0, 0, cancellationToken);

    /// <summary>Write Zeroes in pieces of 65536 blocks; if the controller lacks it (ONCS bit 3), plain zero writes.</summary>
    public async ValueTask WriteZeroesAsync(long offset, long length, CancellationToken cancellationToken)
    {
        CheckRange(offset, length, "write zeroes");
        if (!_controller.Identity.SupportsWriteZeroes)
        {
            await WriteZeroBuffersAsync(offset, length, cancellationToken).ConfigureAwait(false);
            return;
        }
        var step = (long)MaxBlocksPerCommand * BlockSize;
        var pieces = new List<Task>();
        for (var done = 0L; done < length; done += step)
        {
            var piece = Math.Min(step, length - done);
            var command = NvmeCommand.WriteZeroes(NamespaceId, (ulong)((offset + done) / BlockSize), (int)(piece / BlockSize), deallocate: false);
            pieces.Add(ExecuteAsync(command, default, default, offset + done, piece, cancellationToken).AsTask());
        }
        await Task.WhenAll(pieces).ConfigureAwait(false);
    }

    private async Task WriteZeroBuffersAsync(long offset, long length, CancellationToken cancellationToken)
    {
        var size = (int)Math.Min(MaxTransferBytes, length);
        var zeros = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            Array.Clear(zeros, 0, size);
            for (var done = 0L; done < length; done += size)
            {
                var piece = (int)Math.Min(size, length - done);
                await WriteOneAsync(offset + done, zeros.AsMemory(0, piece), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(zeros);
        }
    }

    /// <summary>Dataset Management with AD (deallocate), ranges of at most 2^32-1 blocks, 256 per command, in-capsule.
    /// A hint: a controller without DSM (ONCS bit 2) ignores it.</summary>
    public async ValueTask DeallocateAsync(long offset, long length, CancellationToken cancellationToken)
    {
        CheckRange(offset, length, "deallocate");
        if (!_controller.Identity.SupportsDatasetManagement || length == 0)
        {
            return;
        }
        var ranges = ArrayPool<byte>.Shared.Rent(MaxDsmRanges * 16);
        try
        {
            var block = (ulong)(offset / BlockSize);
            var blocks = (ulong)(length / BlockSize);
            while (blocks > 0)
            {
                var count = 0;
                var firstByte = (long)block * BlockSize;
                var bytes = 0L;
                while (blocks > 0 && count < MaxDsmRanges)
                {
                    var n = (uint)Math.Min(blocks, uint.MaxValue);
                    NvmeCommand.WriteDsmRange(ranges.AsSpan(count * 16, 16), block, n);
                    block += n;
                    blocks -= n;
                    bytes += (long)n * BlockSize;
                    count++;
                }
                await ExecuteAsync(NvmeCommand.Deallocate(NamespaceId, count), ranges.AsMemory(0, count * 16), default, firstByte, bytes,
                    cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(ranges);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ExecuteAsync(NvmeCommand command, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn, long offset, long length,
        CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        for (var attempt = 0; ; attempt++)
        {
            var generation = _controller.Generation;
            NvmeQueuePair? queue = null;
            try
            {
                queue = _controller.NextIoQueue();
                var completion = await queue.ExecuteAsync(command, dataOut, dataIn, cancellationToken).ConfigureAwait(false);
                if (!completion.IsSuccess)
                {
                    throw new NvmeStatusException(
                        $"{Description}: {Name(command)} of bytes {offset}+{length} failed: {completion.DescribeStatus()}", completion);
                }
                return;
            }
            catch (NvmeTransportException e) when (attempt == 0 && Volatile.Read(ref _disposed) == 0)
            {
                if (queue is { IsFaulted: false })
                {
                    continue; // a command-level failure (a data digest mismatch): the connection is fine, just retry
                }
                try
                {
                    await _controller.ReconnectAsync(generation, cancellationToken).ConfigureAwait(false);
                }
                catch (ParaFsException reconnect)
                {
                    throw new NvmeTransportException(e.Errno,
                        $"{Description}: {Name(command)} of bytes {offset}+{length} failed ({e.Message}) and the controller could not be reconnected: {reconnect.Message}",
                        e);
                }
            }
            catch (NvmeTransportException e)
            {
                throw new NvmeTransportException(e.Errno,
                    $"{Description}: {Name(command)} of bytes {offset}+{length} failed after a reconnect: {e.Message}", e);
            }
        }
    }

    private static string Name(NvmeCommand command) => command.Opcode switch
    {
        Opcode.Read => "Read",
        Opcode.Write => "Write",
        Opcode.Flush => "Flush",
        Opcode.WriteZeroes => "Write Zeroes",
        Opcode.DatasetManagement => "Deallocate",
        _ => command.Name,
    };

    private void CheckRange(long offset, long length, string what)
    {
        if (offset < 0 || length < 0 || offset % BlockSize != 0 || length % BlockSize != 0)
        {
            throw new ParaFsException(Errno.EINVAL,
                $"{Description}: {what} at {offset} of {length} bytes is not aligned to the {BlockSize}-byte block size");
        }
        if (offset + length > SizeBytes)
        {
            throw new ParaFsException(Errno.ENOSPC,
                $"{Description}: {what} at {offset} of {length} bytes goes past the end of the namespace ({SizeBytes} bytes)");
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (_ownsController)
        {
            await _controller.DisposeAsync().ConfigureAwait(false);
        }
    }
}
