namespace ParaFS.Common;

/// <summary>One piece of a byte range that lies in one object.</summary>
/// <param name="ObjectIndex">Which of the layout's objects (0 .. stripe count - 1).</param>
/// <param name="ObjectOffset">Where in that object.</param>
/// <param name="Length">How many bytes.</param>
/// <param name="FileOffset">Where in the file the piece starts.</param>
public readonly record struct StripeExtent(int ObjectIndex, long ObjectOffset, int Length, long FileOffset);

/// <summary>
/// RAID-0 striping (DESIGN.md, "Layouts and striping"): byte <c>o</c> of a file lives in stripe
/// <c>s = o / size</c>, on object <c>s % count</c>, at object offset <c>(s / count) * size + o % size</c>.
/// </summary>
public readonly record struct StripeMap
{
    public StripeMap(int stripeSize, int stripeCount)
    {
        if (stripeSize <= 0 || stripeSize % 4096 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(stripeSize), stripeSize, "a stripe size is a positive multiple of 4 KiB");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(stripeCount, 1);
        StripeSize = stripeSize;
        StripeCount = stripeCount;
    }

    public int StripeSize { get; }

    public int StripeCount { get; }

    /// <summary>The object and object offset holding file byte <paramref name="fileOffset"/>.</summary>
    public (int ObjectIndex, long ObjectOffset) Locate(long fileOffset)
    {
        var stripe = fileOffset / StripeSize;
        return ((int)(stripe % StripeCount), (stripe / StripeCount * StripeSize) + (fileOffset % StripeSize));
    }

    /// <summary>The file offset of byte <paramref name="objectOffset"/> of object <paramref name="objectIndex"/>.</summary>
    public long FileOffset(int objectIndex, long objectOffset)
    {
        var row = objectOffset / StripeSize;
        return (((row * StripeCount) + objectIndex) * StripeSize) + (objectOffset % StripeSize);
    }

    /// <summary>Splits a file range into per-object pieces, in file order. Each piece stays within one stripe.</summary>
    public IEnumerable<StripeExtent> Split(long offset, long length)
    {
        var end = offset + length;
        var position = offset;
        while (position < end)
        {
            var (objectIndex, objectOffset) = Locate(position);
            var inStripe = StripeSize - (position % StripeSize);
            var piece = (int)Math.Min(inStripe, end - position);
            yield return new StripeExtent(objectIndex, objectOffset, piece, position);
            position += piece;
        }
    }

    /// <summary>How long object <paramref name="objectIndex"/> is when the file is <paramref name="fileSize"/> bytes long and dense.</summary>
    public long ObjectSize(int objectIndex, long fileSize)
    {
        var fullStripes = fileSize / StripeSize;
        var remainder = fileSize % StripeSize;
        var lastIndex = (int)(fullStripes % StripeCount);
        var whole = (fullStripes / StripeCount) + (objectIndex < lastIndex ? 1 : 0);
        return (whole * StripeSize) + (objectIndex == lastIndex ? remainder : 0);
    }
}
