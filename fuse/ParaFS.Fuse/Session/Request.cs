using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using ParaFS.Fuse.Interop;
using ParaFS.Fuse.Protocol;
using ParaFS.Fuse.Transport;

namespace ParaFS.Fuse.Session;

/// <summary>
/// One request in flight and the page-aligned native buffer it was read into. The buffer stays
/// with the request until its reply is written, so a handler's Memory arguments (write data,
/// xattr values) point straight into it and nothing is copied; the reply payload of READ,
/// READDIR, READLINK and GETXATTR is built in the same buffer once the arguments are parsed.
/// </summary>
internal sealed unsafe class Request : MemoryManager<byte>
{
    public static readonly int InHeaderSize = Unsafe.SizeOf<FuseInHeader>();

    private readonly byte* _memory;
    private readonly int _capacity;
    private readonly Action<Request>? _release;
    private int _disposed;
    private int _references;

    /// <param name="capacity">Bytes of the buffer.</param>
    /// <param name="release">Called when the last reference is released (<see cref="Release"/>): the buffer is free for reuse.</param>
    public Request(int capacity, Action<Request>? release = null)
    {
        _capacity = capacity;
        _release = release;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)capacity, 4096);
        Directory = new DirectoryWriter(this);
    }

    public FuseInHeader Header;

    /// <summary>Bytes the read returned: the whole request.</summary>
    public int Length { get; set; }

    /// <summary>The descriptor the request came from, which its reply must go to.</summary>
    public IFuseChannel Channel { get; set; } = null!;

    public CancellationTokenSource? Cancellation { get; set; }

    public DirectoryWriter Directory { get; }

    public int Capacity => _capacity;

    public Span<byte> Buffer => new(_memory, _capacity);

    public FuseContext Context => new(Header.Unique, Header.Uid, Header.Gid, Header.Pid, Cancellation?.Token ?? CancellationToken.None) { Request = this };

    /// <summary>Starts the request's life with one reference, its handler's.</summary>
    public void Begin() => Volatile.Write(ref _references, 1);

    /// <summary>Drops one reference; the last gives the buffer back (to its session's pool).</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _release?.Invoke(this);
        }
    }

    /// <summary>A further reference, held until the lease is disposed (see <see cref="FuseContext.RetainRequest"/>).</summary>
    public IDisposable Retain()
    {
        Interlocked.Increment(ref _references);
        return new Lease(this);
    }

    public FuseOpcode Opcode => (FuseOpcode)Header.Opcode;

    private int BodyLength => Length - InHeaderSize;

    /// <summary>The argument struct at <paramref name="offset"/> bytes into the body.</summary>
    public T Arg<T>(int offset = 0)
        where T : unmanaged
    {
        if (offset < 0 || offset + sizeof(T) > BodyLength)
        {
            throw new FuseException(Errno.EINVAL, $"{Opcode} request of {Length} bytes is too short for {typeof(T).Name}");
        }

        return Unsafe.ReadUnaligned<T>(_memory + InHeaderSize + offset);
    }

    /// <summary>The argument struct, zero-filled where an older kernel sent a shorter one (INIT).</summary>
    public T ArgOrShorter<T>()
        where T : unmanaged
    {
        var value = default(T);
        var available = Math.Clamp(BodyLength, 0, sizeof(T));
        new ReadOnlySpan<byte>(_memory + InHeaderSize, available).CopyTo(new Span<byte>(&value, sizeof(T)));
        return value;
    }

    /// <summary>The NUL-terminated name at <paramref name="offset"/>, decoded as UTF-8; offset moves past the NUL.</summary>
    public string Name(ref int offset)
    {
        var body = new ReadOnlySpan<byte>(_memory + InHeaderSize, Math.Max(BodyLength, 0));
        if (offset < 0 || offset > body.Length)
        {
            throw new FuseException(Errno.EINVAL, $"{Opcode} request of {Length} bytes has no name at {offset}");
        }

        var rest = body[offset..];
        var end = rest.IndexOf((byte)0);
        if (end < 0)
        {
            end = rest.Length;
        }

        offset += Math.Min(end + 1, rest.Length);
        return Encoding.UTF8.GetString(rest[..end]);
    }

    /// <summary>Body bytes as Memory (write data, xattr values), valid while the request is.</summary>
    public Memory<byte> BodyMemory(int offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > BodyLength)
        {
            throw new FuseException(Errno.EINVAL, $"{Opcode} request of {Length} bytes is too short for {length} data bytes");
        }

        return CreateMemory(InHeaderSize + offset, length);
    }

    /// <summary>The first <paramref name="length"/> bytes of the buffer (capped to its size), for a handler to fill.</summary>
    public Memory<byte> Destination(uint length) => CreateMemory(0, (int)Math.Min(length, (uint)_capacity));

    public override Span<byte> GetSpan() => Buffer;

    public override MemoryHandle Pin(int elementIndex = 0) => new(_memory + elementIndex);

    public override void Unpin()
    {
    }

    private sealed class Lease(Request request) : IDisposable
    {
        private Request? _request = request;

        public void Dispose() => Interlocked.Exchange(ref _request, null)?.Release();
    }

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            NativeMemory.AlignedFree(_memory);
        }
    }
}
