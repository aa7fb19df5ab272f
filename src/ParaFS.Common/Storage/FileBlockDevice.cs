using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using ParaFS.Common.Interop;

namespace ParaFS.Common.Storage;

/// <summary>
/// A file or a block device as a raw block address space, opened with O_DIRECT so the block store
/// owns caching and ordering (a Flush is an fdatasync). O_DIRECT wants aligned memory: requests
/// go through page-aligned bounce buffers (pinned, pooled), so callers' buffers may be anywhere.
/// </summary>
public sealed class FileBlockDevice : IBlockDevice
{
    private const int Alignment = 4096;
    private const int BounceBytes = 1024 * 1024;
    private readonly SafeFileHandle _handle;
    private readonly ConcurrentBag<AlignedBuffer> _bounce = [];
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
        var done = 0;
        while (done < destination.Length)
        {
            var length = Math.Min(BounceBytes, destination.Length - done);
            var buffer = Rent();
            try
            {
                Transfer(read: true, buffer.Span[..length], offset + done);
                buffer.Span[..length].CopyTo(destination.Span.Slice(done, length));
            }
            finally
            {
                _bounce.Add(buffer);
            }

            done += length;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Check(offset, data.Length, "write");
        var done = 0;
        while (done < data.Length)
        {
            var length = Math.Min(BounceBytes, data.Length - done);
            var buffer = Rent();
            try
            {
                data.Span.Slice(done, length).CopyTo(buffer.Span);
                Transfer(read: false, buffer.Span[..length], offset + done);
            }
            finally
            {
                _bounce.Add(buffer);
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
        var zeros = Rent();
        try
        {
            zeros.Span.Clear();
            for (long done = 0; done < length;)
            {
                var chunk = (int)Math.Min(BounceBytes, length - done);
                Transfer(read: false, zeros.Span[..chunk], offset + done);
                done += chunk;
            }
        }
        finally
        {
            _bounce.Add(zeros);
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
        _bounce.Clear();
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

    private AlignedBuffer Rent() => _bounce.TryTake(out var buffer) ? buffer : new AlignedBuffer(BounceBytes);

    /// <summary>A pinned array (on the pinned object heap: it never moves) with a page-aligned window of <c>size</c> bytes in it.</summary>
    private sealed class AlignedBuffer
    {
        private readonly byte[] _array;
        private readonly int _start;
        private readonly int _size;

        public AlignedBuffer(int size)
        {
            _array = GC.AllocateUninitializedArray<byte>(size + Alignment, pinned: true);
            var address = Marshal.UnsafeAddrOfPinnedArrayElement(_array, 0);
            _start = (int)((Alignment - (address % Alignment)) % Alignment);
            _size = size;
        }

        public Span<byte> Span => _array.AsSpan(_start, _size);
    }
}
