using System.Text;
using ParaFS.Common;
using ParaFS.Common.Interop;

namespace ParaFS.PropTests;

/// <summary>
/// The real kernel mount: every call a system call on a path or descriptor (so the errno is
/// exactly what the kernel returns), directory listings through System.IO. With a second mount
/// to verify through, the final read-back happens there, after every handle is closed: what one
/// mount wrote and closed, another mount must see when it opens (close-to-open).
/// </summary>
public sealed class MountSut : ISystemUnderTest
{
    private const int ORdWr = 2;
    private const int OCreat = 0x40;
    private const int OExcl = 0x80;
    private const int OTrunc = 0x200;
    private const int ODirectory = 0x10000;
    private const int OCloExec = 0x80000;

    private readonly Dictionary<int, int> _fds = [];
    private readonly Dictionary<int, string> _paths = [];
    private readonly string? _verifyRoot;
    private readonly string _primaryRoot;
    private string _root;

    public MountSut(string root, string? verifyRoot = null)
    {
        _root = root;
        _primaryRoot = root;
        _verifyRoot = verifyRoot;
        Directory.CreateDirectory(root);
    }

    public Task CreateAsync(string path, bool exclusive, int slot, (int Size, int Count)? stripe)
    {
        var fd = Check(Libc.OpenPath(Full(path), ORdWr | OCreat | OCloExec | (exclusive ? OExcl : 0), 0x1A4), path);
        _fds[slot] = fd;
        if (stripe is { } s)
        {
            var layout = Encoding.UTF8.GetBytes($"stripe_size={s.Size} stripe_count={s.Count}");
            Check(Libc.SetXattr(Full(path), "parafs.layout", layout, layout.Length, 0), path);
        }

        return Task.CompletedTask;
    }

    public Task OpenAsync(string path, bool truncate, int slot)
    {
        _fds[slot] = Check(Libc.OpenPath(Full(path), ORdWr | OCloExec | (truncate ? OTrunc : 0), 0), path);
        _paths[slot] = path;
        return Task.CompletedTask;
    }

    public Task WriteAsync(int slot, long offset, byte[] data)
    {
        var done = 0;
        while (done < data.Length)
        {
            done += (int)Check(Libc.Pwrite(_fds[slot], data.AsSpan(done), data.Length - done, offset + done), $"slot {slot}");
        }

        return Task.CompletedTask;
    }

    public Task<byte[]> ReadAsync(int slot, long offset, int length)
    {
        var buffer = new byte[length];
        var done = 0;
        while (done < length)
        {
            var n = (int)Check(Libc.Pread(_fds[slot], buffer.AsSpan(done), length - done, offset + done), $"slot {slot}");
            if (n == 0)
            {
                break;
            }

            done += n;
        }

        if (done < length && _verifyRoot is not null && _root == _verifyRoot && _paths.TryGetValue(slot, out var path)
            && new FileInfo(Path.Combine(_primaryRoot, path)).Length > offset + done)
        {
            // Diagnose a close-to-open miss: what each mount says of the file now, and a moment later.
            var seen = $"read {done} bytes through the second mount; stat there {new FileInfo(Full(path)).Length}, through the first {new FileInfo(Path.Combine(_primaryRoot, path)).Length}";
            Thread.Sleep(1500);
            seen += $", 1.5 s later {new FileInfo(Full(path)).Length}";
            Console.Error.WriteLine($"close-to-open check: {path}: {seen}");
            throw new InvalidOperationException($"close-to-open: {path}: {seen}");
        }

        return Task.FromResult(buffer[..done]);
    }

    public Task TruncateAsync(string path, long size)
    {
        Check(Libc.Truncate(Full(path), size), path);
        return Task.CompletedTask;
    }

    public Task PunchAsync(int slot, long offset, long length)
    {
        Check(Libc.FallocateFd(_fds[slot], Libc.FallocFlPunchHole | Libc.FallocFlKeepSize, offset, length), $"slot {slot}");
        return Task.CompletedTask;
    }

    public Task<long> SeekAsync(int slot, long offset, bool hole) =>
        Task.FromResult(Check(Libc.LseekFd(_fds[slot], offset, hole ? Libc.SeekHoleWhence : Libc.SeekDataWhence), $"slot {slot}"));

    public Task FsyncAsync(int slot)
    {
        Check(Libc.FsyncFd(_fds[slot]), $"slot {slot}");
        return Task.CompletedTask;
    }

    public Task CloseAsync(int slot)
    {
        Check(Libc.Close(_fds[slot]), $"slot {slot}");
        _fds.Remove(slot);
        return Task.CompletedTask;
    }

    public Task RenameAsync(string from, string to) => Done(Libc.Rename(Full(from), Full(to)), from);

    public Task LinkAsync(string from, string to) => Done(Libc.Link(Full(from), Full(to)), from);

    public Task UnlinkAsync(string path) => Done(Libc.Unlink(Full(path)), path);

    public Task MkdirAsync(string path) => Done(Libc.Mkdir(Full(path), 0x1ED), path);

    public Task RmdirAsync(string path) => Done(Libc.Rmdir(Full(path)), path);

    public Task<IReadOnlyList<string>> ReaddirAsync(string path)
    {
        // open(O_DIRECTORY) gives the exact errno; System.IO lists the names.
        Check(Libc.Close(Check(Libc.OpenPath(Full(path), ODirectory | OCloExec, 0), path)), path);
        return Task.FromResult<IReadOnlyList<string>>([.. Directory.EnumerateFileSystemEntries(Full(path)).Select(Path.GetFileName).OfType<string>()]);
    }

    public Task SetXattrAsync(string path, string name, byte[] value, uint flags) =>
        Done(Libc.SetXattr(Full(path), name, value, value.Length, (int)flags), path);

    public Task<byte[]> GetXattrAsync(string path, string name)
    {
        var buffer = new byte[65536];
        var n = (int)Check(Libc.GetXattr(Full(path), name, buffer, buffer.Length), path);
        return Task.FromResult(buffer[..n]);
    }

    public Task FaultAsync(FaultKind kind, int index) => throw new NotSupportedException("the mount suite runs without faults");

    /// <summary>From now on every path goes through the other mount.</summary>
    public Task BeginVerificationAsync()
    {
        if (_verifyRoot is not null)
        {
            _root = _verifyRoot;
        }

        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        foreach (var fd in _fds.Values)
        {
            Libc.Close(fd);
        }

        return ValueTask.CompletedTask;
    }

    private static T Check<T>(T result, string what)
        where T : System.Numerics.INumber<T>
    {
        if (result < T.Zero)
        {
            var errno = Libc.LastErrno;
            throw new ParaFsException(errno, $"{what}: {errno}");
        }

        return result;
    }

    private static Task Done(int result, string what)
    {
        Check(result, what);
        return Task.CompletedTask;
    }

    private string Full(string path) => path.Length == 0 ? _root : Path.Combine(_root, path);
}
