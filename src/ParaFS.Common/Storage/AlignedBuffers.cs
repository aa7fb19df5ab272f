using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace ParaFS.Common.Storage;

/// <summary>
/// Pinned arrays (the pinned object heap: the collector never moves them) in power-of-two size
/// classes, each with a page of slack so that a buffer can start on a 4 KiB boundary. Each class
/// keeps at most <see cref="KeptPerClass"/> free arrays; the rest go to the collector. O_DIRECT
/// I/O wants such memory: RPC payloads (an OST writes a received one as it is) and the block
/// device's bounce buffers come from here.
/// </summary>
public static class AlignedBuffers
{
    /// <summary>The alignment of every buffer handed out (a page; what O_DIRECT asks for).</summary>
    public const int Page = 4096;

    private const int SmallestClass = 16; // 64 KiB
    private const int LargestClass = 25;  // 32 MiB
    private const int KeptPerClass = 512;

    private static readonly ConcurrentBag<byte[]>[] Free = [.. Enumerable.Range(0, LargestClass + 1).Select(_ => new ConcurrentBag<byte[]>())];
    private static readonly int[] FreeCounts = new int[LargestClass + 1];

    /// <summary>An array and the offset in it of a page-aligned run of <paramref name="length"/> bytes; null past the largest class.</summary>
    public static (byte[] Array, int Offset)? Rent(int length)
    {
        var sizeClass = ClassOf(length);
        if (sizeClass > LargestClass)
        {
            return null;
        }

        if (Free[sizeClass].TryTake(out var array))
        {
            Interlocked.Decrement(ref FreeCounts[sizeClass]);
        }
        else
        {
            array = GC.AllocateUninitializedArray<byte>((1 << sizeClass) + Page, pinned: true);
        }

        return (array, AlignedOffset(array));
    }

    /// <summary>Takes back an array that <see cref="Rent"/> gave; false if it is not one of ours.</summary>
    public static bool Return(byte[] array)
    {
        var size = array.Length - Page;
        if (size <= 0)
        {
            return false;
        }

        var sizeClass = ClassOf(size);
        if (sizeClass > LargestClass || size != 1 << sizeClass)
        {
            return false;
        }

        if (Interlocked.Increment(ref FreeCounts[sizeClass]) <= KeptPerClass)
        {
            Free[sizeClass].Add(array);
        }
        else
        {
            Interlocked.Decrement(ref FreeCounts[sizeClass]);
        }

        return true;
    }

    /// <summary>
    /// Whether pinned memory of <paramref name="length"/> bytes starts on a page and is a whole
    /// number of pages long: usable for O_DIRECT as it is, for as long as the pin is held (an
    /// unpinned array may move after the check).
    /// </summary>
    public static unsafe bool IsPageAligned(MemoryHandle pinned, int length) =>
        length % Page == 0 && (nint)pinned.Pointer % Page == 0;

    private static int ClassOf(int length) => Math.Max(SmallestClass, 32 - int.LeadingZeroCount(length - 1));

    private static unsafe int AlignedOffset(byte[] array)
    {
        var address = (nint)Unsafe.AsPointer(ref array[0]);
        return (int)((Page - (address & (Page - 1))) & (Page - 1));
    }
}
