using System.Buffers;
using ParaFS.Common.Storage;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// A pooled byte buffer of a known length: received messages and payloads live in these, so the
/// data path rents and returns instead of allocating an array per call.
/// </summary>
public sealed class RpcBuffer : IDisposable
{
    /// <summary>
    /// Payloads have a pool of their own: the shared pool keeps only a few arrays of each large
    /// size, and a client with write-behind and read-ahead holds dozens of 1 MiB payloads at once;
    /// every miss would be a new large-object allocation and, soon, a full collection.
    /// </summary>
    private static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(maxArrayLength: 32 * 1024 * 1024, maxArraysPerBucket: 512);

    /// <summary>From this length on a buffer starts on a page boundary (see <see cref="AlignedBuffers"/>).</summary>
    public const int AlignedFrom = 64 * 1024;

    private byte[]? _array;
    private readonly int _offset;

    private RpcBuffer(byte[] array, int offset, int length)
    {
        _array = array;
        _offset = offset;
        Length = length;
    }

    public static RpcBuffer Empty { get; } = new([], 0, 0);

    public int Length { get; }

    public Memory<byte> Memory => _array is { } a ? a.AsMemory(_offset, Length) : throw new ObjectDisposedException(nameof(RpcBuffer));

    public Span<byte> Span => Memory.Span;

    /// <summary>
    /// A buffer of <paramref name="length"/> bytes. From <see cref="AlignedFrom"/> bytes on it is
    /// pinned and starts on a 4 KiB boundary, so an OST can hand a received payload to an
    /// O_DIRECT write as it is.
    /// </summary>
    public static RpcBuffer Rent(int length)
    {
        if (length == 0)
        {
            return Empty;
        }

        if (length >= AlignedFrom && AlignedBuffers.Rent(length) is var (array, offset))
        {
            return new RpcBuffer(array, offset, length);
        }

        return new RpcBuffer(Pool.Rent(length), 0, length);
    }

    public static RpcBuffer CopyOf(in ReadOnlySequence<byte> source)
    {
        var buffer = Rent(checked((int)source.Length));
        source.CopyTo(buffer.Span);
        return buffer;
    }

    public void Dispose()
    {
        if (Length == 0)
        {
            return;
        }

        var array = Interlocked.Exchange(ref _array, null);
        if (array is null)
        {
            return;
        }

        if (Length >= AlignedFrom && AlignedBuffers.Return(array))
        {
            return;
        }

        Pool.Return(array);
    }
}
