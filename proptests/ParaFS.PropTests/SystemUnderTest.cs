namespace ParaFS.PropTests;

public enum FaultKind
{
    KillOst,
    KillMds,
}

/// <summary>
/// What the model-based tests drive: paths relative to a case directory, handles by slot number
/// (chosen by the model). A failing call throws <see cref="Common.ParaFsException"/> with its errno.
/// </summary>
public interface ISystemUnderTest : IAsyncDisposable
{
    Task CreateAsync(string path, bool exclusive, int slot, (int Size, int Count)? stripe);

    Task OpenAsync(string path, bool truncate, int slot);

    Task WriteAsync(int slot, long offset, byte[] data);

    Task<byte[]> ReadAsync(int slot, long offset, int length);

    Task TruncateAsync(string path, long size);

    Task PunchAsync(int slot, long offset, long length);

    /// <summary>lseek SEEK_HOLE (<paramref name="hole"/>) or SEEK_DATA from <paramref name="offset"/>.</summary>
    Task<long> SeekAsync(int slot, long offset, bool hole);

    Task FsyncAsync(int slot);

    Task CloseAsync(int slot);

    Task RenameAsync(string from, string to);

    Task LinkAsync(string from, string to);

    Task UnlinkAsync(string path);

    Task MkdirAsync(string path);

    Task RmdirAsync(string path);

    Task<IReadOnlyList<string>> ReaddirAsync(string path);

    Task SetXattrAsync(string path, string name, byte[] value, uint flags);

    Task<byte[]> GetXattrAsync(string path, string name);

    Task FaultAsync(FaultKind kind, int index);

    /// <summary>Restripes a file online to the given stripe size and count: only its pending layout (<paramref name="finish"/> false), or all of it.</summary>
    Task MigrateAsync(string path, int stripeSize, int stripeCount, bool finish) =>
        throw new NotSupportedException("this system under test does not migrate files");

    /// <summary>Called after every handle is closed, before the final read-back (a second mount switches to itself here).</summary>
    Task BeginVerificationAsync() => Task.CompletedTask;
}
