using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using ParaFS.Fuse;
using ParaFS.Fuse.Protocol;
using ParaFS.Fuse.Transport;

namespace ParaFS.Microbench;

/// <summary>
/// The FUSE session's own cost per request: the kernel's bytes in (header and arguments parsed,
/// the operation dispatched) and the reply out (built and written in one writev), with a file
/// system that answers at once and a channel in memory, so only the library is measured. One
/// request at a time on one reader thread: the figure is latency, handoffs between threads included.
/// </summary>
[MemoryDiagnoser]
public class FuseRequestBenchmarks : IDisposable
{
    private const ulong NodeId = 2;
    private const int IoBytes = 128 * 1024;
    private BenchChannel _channel = null!;
    private FuseSession _session = null!;
    private CancellationTokenSource _stop = null!;
    private Task _run = null!;
    private byte[] _getattr = null!;
    private byte[] _read = null!;
    private byte[] _write = null!;

    [GlobalSetup]
    public void Setup()
    {
        _channel = new BenchChannel();
        _session = FuseSession.ForChannel(_channel, new FuseMountOptions { MountPoint = "/bench", ReaderThreads = 1 });
        _stop = new CancellationTokenSource();
        _run = _session.RunAsync(new AnsweringFileSystem(), _stop.Token);
        _channel.Call(Request(FuseOpcode.Init, 1, 0, Bytes(new FuseInitIn { Major = 7, Minor = 45, MaxReadahead = 128 * 1024, Flags = uint.MaxValue, Flags2 = uint.MaxValue })));
        _getattr = Request(FuseOpcode.GetAttr, 3, NodeId, Bytes(new FuseGetAttrIn()));
        _read = Request(FuseOpcode.Read, 5, NodeId, Bytes(new FuseReadIn { Fh = 1, Size = IoBytes }));
        _write = Request(FuseOpcode.Write, 7, NodeId, [.. Bytes(new FuseWriteIn { Fh = 1, Size = IoBytes }), .. new byte[IoBytes]]);
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _stop.Cancel();
        _channel.Shutdown();
        _run.Wait(TimeSpan.FromSeconds(10));
        _session.Dispose();
        _channel.Dispose();
        _stop.Dispose();
        GC.SuppressFinalize(this);
    }

    [Benchmark(Description = "GETATTR: request parsed, attributes replied")]
    public int GetAttr() => _channel.Call(_getattr);

    [Benchmark(Description = "READ 128 KiB: request parsed, data replied")]
    public int Read() => _channel.Call(_read);

    [Benchmark(Description = "WRITE 128 KiB: request and data parsed, write replied")]
    public int Write() => _channel.Call(_write);

    private static byte[] Request(FuseOpcode opcode, ulong unique, ulong nodeId, byte[] body)
    {
        var header = new FuseInHeader
        {
            Len = (uint)(Marshal.SizeOf<FuseInHeader>() + body.Length),
            Opcode = (uint)opcode,
            Unique = unique,
            NodeId = nodeId,
            Uid = 1000,
            Gid = 1000,
            Pid = 4242,
        };
        return [.. Bytes(header), .. body];
    }

    private static byte[] Bytes<T>(T value)
        where T : unmanaged => MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    /// <summary>A /dev/fuse in memory: one request handed to the session, the length of its reply back.</summary>
    private sealed class BenchChannel : IFuseChannel
    {
        private readonly BlockingCollection<byte[]> _requests = [];
        private readonly BlockingCollection<int> _replies = [];

        public int Call(byte[] request)
        {
            _requests.Add(request);
            return _replies.Take();
        }

        public int Read(Span<byte> buffer)
        {
            try
            {
                var request = _requests.Take();
                request.CopyTo(buffer);
                return request.Length;
            }
            catch (InvalidOperationException)
            {
                return 0;
            }
        }

        public int Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
        {
            _replies.Add(header.Length + payload.Length);
            return 0;
        }

        public IFuseChannel Clone() => this;

        public void Shutdown() => _requests.CompleteAdding();

        public void Dispose()
        {
            _requests.Dispose();
            _replies.Dispose();
        }
    }

    /// <summary>Answers GETATTR, READ and WRITE at once; anything else is ENOSYS.</summary>
    private sealed class AnsweringFileSystem : IFuseFileSystem
    {
        private const int ENOSYS = 38;
        private static readonly FuseAttr Attr = new(NodeId, 1 << 30, 1 << 21, 0, 0, 0, 0x81A4, 1, 1000, 1000, 0, 4096);

        public ValueTask<(FuseAttr Attr, TimeSpan Timeout)> GetAttrAsync(FuseContext context, ulong nodeId, ulong? fileHandle) => ValueTask.FromResult((Attr, TimeSpan.FromSeconds(1)));

        public ValueTask<int> ReadAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, Memory<byte> destination) => ValueTask.FromResult(destination.Length);

        public ValueTask<int> WriteAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, ReadOnlyMemory<byte> data, uint writeFlags) => ValueTask.FromResult(data.Length);

        public void Forget(ulong nodeId, ulong lookups)
        {
        }

        public void Destroy()
        {
        }

        public ValueTask<FuseEntry> LookupAsync(FuseContext context, ulong parent, string name) => throw new FuseException(ENOSYS);

        public ValueTask<(FuseAttr Attr, TimeSpan Timeout)> SetAttrAsync(FuseContext context, ulong nodeId, FuseSetAttr changes) => throw new FuseException(ENOSYS);

        public ValueTask<string> ReadLinkAsync(FuseContext context, ulong nodeId) => throw new FuseException(ENOSYS);

        public ValueTask<FuseEntry> MknodAsync(FuseContext context, ulong parent, string name, uint mode, uint rdev, uint umask) => throw new FuseException(ENOSYS);

        public ValueTask<FuseEntry> MkdirAsync(FuseContext context, ulong parent, string name, uint mode, uint umask) => throw new FuseException(ENOSYS);

        public ValueTask<FuseEntry> SymlinkAsync(FuseContext context, ulong parent, string name, string target) => throw new FuseException(ENOSYS);

        public ValueTask UnlinkAsync(FuseContext context, ulong parent, string name) => throw new FuseException(ENOSYS);

        public ValueTask RmdirAsync(FuseContext context, ulong parent, string name) => throw new FuseException(ENOSYS);

        public ValueTask RenameAsync(FuseContext context, ulong parent, string name, ulong newParent, string newName, uint flags) => throw new FuseException(ENOSYS);

        public ValueTask<FuseEntry> LinkAsync(FuseContext context, ulong nodeId, ulong newParent, string newName) => throw new FuseException(ENOSYS);

        public ValueTask<FuseOpen> OpenAsync(FuseContext context, ulong nodeId, int flags) => throw new FuseException(ENOSYS);

        public ValueTask<(FuseEntry Entry, FuseOpen Open)> CreateAsync(FuseContext context, ulong parent, string name, uint mode, int flags, uint umask) => throw new FuseException(ENOSYS);

        public ValueTask FlushAsync(FuseContext context, ulong nodeId, ulong fileHandle, ulong lockOwner) => throw new FuseException(ENOSYS);

        public ValueTask ReleaseAsync(FuseContext context, ulong nodeId, ulong fileHandle, int flags) => throw new FuseException(ENOSYS);

        public ValueTask FsyncAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly) => throw new FuseException(ENOSYS);

        public ValueTask<FuseOpen> OpenDirAsync(FuseContext context, ulong nodeId, int flags) => throw new FuseException(ENOSYS);

        public ValueTask ReadDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, FuseDirectoryBuffer buffer, bool plus) => throw new FuseException(ENOSYS);

        public ValueTask ReleaseDirAsync(FuseContext context, ulong nodeId, ulong fileHandle) => throw new FuseException(ENOSYS);

        public ValueTask FsyncDirAsync(FuseContext context, ulong nodeId, ulong fileHandle, bool dataOnly) => throw new FuseException(ENOSYS);

        public ValueTask<FuseStatFs> StatFsAsync(FuseContext context, ulong nodeId) => throw new FuseException(ENOSYS);

        public ValueTask AccessAsync(FuseContext context, ulong nodeId, int mask) => throw new FuseException(ENOSYS);

        public ValueTask SetXattrAsync(FuseContext context, ulong nodeId, string name, ReadOnlyMemory<byte> value, int flags) => throw new FuseException(ENOSYS);

        public ValueTask<int> GetXattrAsync(FuseContext context, ulong nodeId, string name, Memory<byte> destination) => throw new FuseException(ENOSYS);

        public ValueTask<int> ListXattrAsync(FuseContext context, ulong nodeId, Memory<byte> destination) => throw new FuseException(ENOSYS);

        public ValueTask RemoveXattrAsync(FuseContext context, ulong nodeId, string name) => throw new FuseException(ENOSYS);

        public ValueTask FallocateAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, long length, int mode) => throw new FuseException(ENOSYS);

        public ValueTask<long> LseekAsync(FuseContext context, ulong nodeId, ulong fileHandle, long offset, int whence) => throw new FuseException(ENOSYS);
    }
}
