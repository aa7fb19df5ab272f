using ParaFS.Protocol.Rpc;

namespace ParaFS.Ost.Backends;

/// <summary>
/// Where a target keeps its objects. Offsets and lengths arrive checked (<see cref="ObjectBounds"/>).
/// An object that was never written behaves as ost.proto says: empty, size 0, not existing; only
/// a write (or a truncate to a non-zero size) creates it.
/// </summary>
public interface IObjectBackend : IDisposable
{
    /// <summary>dir | block | nvme-tcp, as in the superblock and the registration.</summary>
    string Name { get; }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>, creating the object; returns its size after.</summary>
    ValueTask<long> WriteAsync(ulong objectId, long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Reads into <paramref name="destination"/> from <paramref name="offset"/>, never past the object's size.</summary>
    ValueTask<ObjectRead> ReadAsync(ulong objectId, long offset, Memory<byte> destination, CancellationToken cancellationToken);

    /// <summary>Deallocates a range keeping the size; it reads back as zeros.</summary>
    ValueTask PunchAsync(ulong objectId, long offset, long length, CancellationToken cancellationToken);

    ValueTask TruncateAsync(ulong objectId, long size, CancellationToken cancellationToken);

    ValueTask<ObjectAttributes> GetAttributesAsync(ulong objectId, CancellationToken cancellationToken);

    /// <summary>
    /// SEEK_DATA (<paramref name="hole"/> false) or SEEK_HOLE within the object: the first offset at
    /// or after <paramref name="offset"/> where allocated data (or a hole) starts. The object's end
    /// counts as a hole and a missing object is all hole; null when no data lies at or after the offset.
    /// </summary>
    ValueTask<ObjectSeek> SeekAsync(ulong objectId, long offset, bool hole, CancellationToken cancellationToken);

    /// <summary>Removes the object; true when it existed.</summary>
    ValueTask<bool> DeleteAsync(ulong objectId, CancellationToken cancellationToken);

    /// <summary>Makes the objects durable (their data, size and directory entry); none given: every object written since the last sync.</summary>
    ValueTask SyncAsync(IReadOnlyCollection<ulong> objectIds, CancellationToken cancellationToken);

    /// <summary>Object ids greater than <paramref name="after"/>, ascending, at most <paramref name="limit"/>.</summary>
    ValueTask<ObjectPage> ListAsync(ulong after, int limit, CancellationToken cancellationToken);

    StorageUsage GetUsage();
}

/// <summary>
/// A backend whose objects are files of a local file system: a read's reply can then be sent from
/// the file itself (<see cref="FilePayload"/>, sendfile on a bulk connection) instead of through a
/// buffer.
/// </summary>
public interface IFileObjectBackend
{
    /// <summary>
    /// The object's bytes from <paramref name="offset"/>, at most <paramref name="length"/> of them
    /// and never past its size, as a range of its open file (kept open until the payload is
    /// disposed); no payload where the object does not exist or has no bytes there.
    /// </summary>
    ObjectFileRange OpenRange(ulong objectId, long offset, int length);
}

/// <summary>What <see cref="IFileObjectBackend.OpenRange"/> found: the range to send (if any), the object's size, and whether it exists.</summary>
public readonly record struct ObjectFileRange(FilePayload? Payload, long ObjectSize, bool Exists);

/// <summary>What a read found: bytes placed in the destination, the object's size, and whether it exists.</summary>
public readonly record struct ObjectRead(int BytesRead, long ObjectSize, bool Exists);

/// <summary>What <see cref="IObjectBackend.SeekAsync"/> found: the offset (null: no data at or after the one asked) and the object's size.</summary>
public readonly record struct ObjectSeek(long? Offset, long ObjectSize);

public readonly record struct ObjectAttributes(bool Exists, long Size, long AllocatedBytes);

public sealed record ObjectPage(IReadOnlyList<ulong> ObjectIds, bool More);

public readonly record struct StorageUsage(long CapacityBytes, long FreeBytes, long Objects);
