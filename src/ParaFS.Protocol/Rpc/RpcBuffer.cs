using System.Buffers;

namespace ParaFS.Protocol.Rpc;

/// <summary>
/// A pooled byte buffer of a known length: received messages and payloads live in these, so the
/// data path rents and returns instead of allocating an array per call.
/// </summary>
public sealed class RpcBuffer : IDisposable
{
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
        length == 0 ? Empty : new RpcBuffer(ArrayPool<byte>.Shared.Rent(length), length);

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
            ArrayPool<byte>.Shared.Return(array);
        }
    }
}
