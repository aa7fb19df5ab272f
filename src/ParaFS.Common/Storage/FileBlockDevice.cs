using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using ParaFS.Common.Interop;

namespace ParaFS.Common.Storage;

/// <summary>
/// A file or a block device as a raw block address space, opened with O_DIRECT so the block store
/// owns caching and ordering (a Flush is an fdatasync). O_DIRECT wants aligned memory: a caller's
/// page-aligned buffer (a received RPC payload) is used as it is, any other goes through a bounce
/// buffer from <see cref="AlignedBuffers"/>, so callers' buffers may be anywhere.
/// </summary>
public sealed class FileBlockDevice : IBlockDevice
{
    private const int Alignment = AlignedBuffers.Page;
    private const int BounceBytes = 1024 * 1024;
    private readonly SafeFileHandle _handle;
    private readonly bool _isFile;

    private FileBlockDevice(string path, SafeFileHandle handle, long size, bool isFile)
    {
        Path = path;
        _handle = handle;
        SizeBytes = size;
        _isFile = isFile;
    }

    public string Path { get; }

    public string Description => $"{(_isFile ? "file" : "device")} {Path}";

    public int BlockSize => Alignment;

    public long SizeBytes { get; }

    public int MaxTransferBytes => BounceBytes;

    /// <summary>Opens <paramref name="path"/>: an existing block device, or a regular file (created with <paramref name="createSize"/> bytes if missing and a size is given).</summary>
    public static FileBlockDevice Open(string path, long? createSize = null)
    {
        var isFile = !path.StartsWith("/dev/", StringComparison.Ordinal);
        if (isFile && !File.Exists(path))
        {
            if (createSize is not { } size || size <= 0)
            {
                throw new ParaFsException(Errno.ENOENT, $"{path} does not exist; create it first (truncate -s 10G {path}) or give a block device");
            }

            using (var created = File.Open(path, FileMode.CreateNew, FileAccess.Write))
            {
                created.SetLength(size);
            }
        }

        var handle = Libc.OpenDirect(path);
        var bytes = Libc.SizeOf(handle, path) / Alignment * Alignment;
        return new FileBlockDevice(path, handle, bytes, isFile);
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        Check(offset, destination.Length, "read");
        using (var pin = destination.Pin())
        {
            if (AlignedBuffers.IsPageAligned(pin, destination.Length))
            {
                Transfer(read: true, destination.Span, offset);
                return ValueTask.CompletedTask;
            }
        }

        var done = 0;
        while (done < destination.Length)
        {
            var length = Math.Min(BounceBytes, destination.Length - done);
            var (array, start) = RentBounce();
            try
            {
                var bounce = array.AsSpan(start, length);
                Transfer(read: true, bounce, offset + done);
                bounce.CopyTo(destination.Span.Slice(done, length));
            }
            finally
            {
                AlignedBuffers.Return(array);
            }

            done += length;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Check(offset, data.Length, "write");
        using (var pin = data.Pin())
        {
            if (AlignedBuffers.IsPageAligned(pin, data.Length))
            {
                // pwrite only reads the buffer; Transfer's Span serves both directions.
                Transfer(read: false, MemoryMarshal.AsMemory(data).Span, offset);
                return ValueTask.CompletedTask;
            }
        }

        var done = 0;
        while (done < data.Length)
        {
            var length = Math.Min(BounceBytes, data.Length - done);
            var (array, start) = RentBounce();
            try
            {
                var bounce = array.AsSpan(start, length);
                data.Span.Slice(done, length).CopyTo(bounce);
                Transfer(read: false, bounce, offset + done);
            }
            finally
            {
                AlignedBuffers.Return(array);
            }

            done += length;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        if (Libc.Fdatasync(_handle) != 0)
        {
            throw Libc.Failure(Libc.LastErrno, $"flush of {Description}");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteZeroesAsync(long offset, long length, CancellationToken cancellationToken)
    {
        Check(offset, length, "write zeroes");
        if (length == 0)
        {
            return ValueTask.CompletedTask;
        }

        if (Libc.Fallocate(_handle, Libc.FallocFlZeroRange | Libc.FallocFlKeepSize, offset, length) == 0)
        {
            return ValueTask.CompletedTask;
        }

        // Not every file system or device zeroes a range in place: write zeros.
        var (array, start) = RentBounce();
        try
        {
            var zeros = array.AsSpan(start, BounceBytes);
            zeros.Clear();
            for (long done = 0; done < length;)
            {
                var chunk = (int)Math.Min(BounceBytes, length - done);
                Transfer(read: false, zeros[..chunk], offset + done);
                done += chunk;
            }
        }
        finally
        {
            AlignedBuffers.Return(array);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DeallocateAsync(long offset, long length, CancellationToken cancellationToken)
    {
        Check(offset, length, "deallocate");

        // A hint only: a device or file system that cannot punch keeps the blocks.
        if (length > 0 && _isFile)
        {
            _ = Libc.Fallocate(_handle, Libc.FallocFlPunchHole | Libc.FallocFlKeepSize, offset, length);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Check(long offset, long length, string what)
    {
        if (offset < 0 || length < 0 || offset % Alignment != 0 || length % Alignment != 0)
        {
            throw new ParaFsException(Errno.EINVAL, $"{what} of {Description} at {offset} for {length} bytes is not aligned to {Alignment}");
        }

        if (offset + length > SizeBytes)
        {
            throw new ParaFsException(Errno.ENOSPC, $"{what} of {Description} at {offset} for {length} bytes is past its end ({SizeBytes} bytes)");
        }
    }

    private void Transfer(bool read, Span<byte> buffer, long offset)
    {
        var done = 0;
        while (done < buffer.Length)
        {
            var n = read
                ? Libc.PreadHandle(_handle, buffer[done..], buffer.Length - done, offset + done)
                : Libc.PwriteHandle(_handle, buffer[done..], buffer.Length - done, offset + done);
            if (n < 0)
            {
                throw Libc.Failure(Libc.LastErrno, $"{(read ? "read" : "write")} of {Description} at {offset + done}");
            }

            if (n == 0)
            {
                throw new ParaFsException(Errno.EIO, $"{(read ? "read" : "write")} of {Description} at {offset + done}: the device ended early");
            }

            done += (int)n;
        }
    }

    private static (byte[] Array, int Start) RentBounce() => AlignedBuffers.Rent(BounceBytes)!.Value;
}
