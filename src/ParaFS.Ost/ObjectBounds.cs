using ParaFS.Common;

namespace ParaFS.Ost;

/// <summary>
/// The offsets and lengths an object accepts. 2^50 bytes (1 PiB) per object is far past any
/// stripe of a real file and keeps every end offset well inside a signed 64-bit off_t.
/// </summary>
public static class ObjectBounds
{
    public const long MaxObjectSize = 1L << 50;

    /// <summary>Checks [offset, offset + length) lies inside an object; returns the offset as a long.</summary>
    public static long CheckRange(ulong objectId, string operation, ulong offset, ulong length)
    {
        if (offset > MaxObjectSize || length > MaxObjectSize || offset + length > MaxObjectSize)
        {
            throw new ParaFsException(Errno.EINVAL,
                $"{operation} of object {objectId}: offset {offset} + length {length} is past the largest object size of {MaxObjectSize} bytes (2^50)");
        }

        return (long)offset;
    }

    /// <summary>The same check for callers inside the OST, where a negative value is also refused.</summary>
    public static void CheckRange(ulong objectId, string operation, long offset, long length)
    {
        if (offset < 0 || length < 0)
        {
            throw new ParaFsException(Errno.EINVAL, $"{operation} of object {objectId}: offset {offset} and length {length} must not be negative");
        }

        CheckRange(objectId, operation, (ulong)offset, (ulong)length);
    }

    /// <summary>Checks a size an object is truncated to.</summary>
    public static long CheckSize(ulong objectId, ulong size)
    {
        if (size > MaxObjectSize)
        {
            throw new ParaFsException(Errno.EINVAL,
                $"truncate of object {objectId} to {size} bytes: past the largest object size of {MaxObjectSize} bytes (2^50)");
        }

        return (long)size;
    }
}
