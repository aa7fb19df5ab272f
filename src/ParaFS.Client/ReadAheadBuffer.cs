using System.Buffers;

namespace ParaFS.Client;

/// <summary>
/// A window of a file fetched ahead of a sequential reader, from all its targets at once. Readers
/// take a reference while they copy out of it, so it returns to the pool only when nobody uses it.
/// </summary>
internal sealed class ReadAheadBuffer
{
    private readonly byte[] _buffer;
    private readonly Action<int> _release;
    private int _references = 1;

    public ReadAheadBuffer(long start, int length, Action<int> release)
    {
        Start = start;
        Length = length;
        _release = release;
        _buffer = ArrayPool<byte>.Shared.Rent(length);
    }

    public long Start { get; }

    public int Length { get; }

    public long End => Start + Length;

    /// <summary>Completes with the number of valid bytes from <see cref="Start"/> (fewer at end of file or on failure).</summary>
    public Task<int> Filled { get; set; } = Task.FromResult(0);

    public Memory<byte> Memory => _buffer.AsMemory(0, Length);

    public bool Covers(long offset, int length) => offset >= Start && offset + length <= End;

    public bool TryAddReference()
    {
        while (true)
        {
            var current = Volatile.Read(ref _references);
            if (current == 0)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _references, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            // Only after the fetch is done may the array go back: the fetch writes into it.
            _ = Filled.ContinueWith(
                static (_, s) =>
                {
                    var self = (ReadAheadBuffer)s!;
                    ArrayPool<byte>.Shared.Return(self._buffer);
                    self._release(self.Length);
                },
                this,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }
}
