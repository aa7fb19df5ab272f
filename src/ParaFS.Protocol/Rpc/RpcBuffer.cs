using System.Buffers;

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

    private byte[]? _array;

    private RpcBuffer(byte[] array, int length)
    {
        _array = array;
        Length = length;
    }

    public static RpcBuffer Empty { get; } = new([], 0);

    public int Length { get; }

    public Memory<byte> Memory => _array is { } a ? a.AsMemory(0, Length) : throw new ObjectDisposedException(nameof(RpcBuffer));

    public Span<byte> Span => Memory.Span;

    public static RpcBuffer Rent(int length) =>
        length == 0 ? Empty : new RpcBuffer(Pool.Rent(length), length);

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
        if (array is not null)
        {
            Pool.Return(array);
        }
    }
}
