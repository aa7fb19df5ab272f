using System.Buffers;
using BenchmarkDotNet.Attributes;
using ParaFS.Common;
using ParaFS.Ost.Backends.Dir;
using ParaFS.Protocol.Framing;
using ParaFS.Protocol.Ost;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Microbench;

/// <summary>Splitting a request into per-object pieces: done for every read and write.</summary>
[MemoryDiagnoser]
public class StripeMapBenchmarks
{
    private readonly StripeMap _map = new(1024 * 1024, 4);

    [Benchmark(Description = "split a 1 MiB aligned write")]
    public int SplitAligned()
    {
        var n = 0;
        foreach (var e in _map.Split(7L * 1024 * 1024, 1024 * 1024))
        {
            n += e.Length;
        }

        return n;
    }

    [Benchmark(Description = "split a 4 MiB unaligned read over 4 stripes")]
    public int SplitUnaligned()
    {
        var n = 0;
        foreach (var e in _map.Split(12345, 4 * 1024 * 1024))
        {
            n += e.Length;
        }

        return n;
    }

    [Benchmark(Description = "locate one byte")]
    public long Locate() => _map.Locate(987654321).ObjectOffset;
}

/// <summary>Encoding and decoding a frame head: once per RPC on each side.</summary>
[MemoryDiagnoser]
public class FrameBenchmarks
{
    private readonly ArrayBufferWriter<byte> _writer = new(4096);
    private readonly CallHeader _header = new() { Kind = FrameKind.Request, CallId = 123456, Method = 300, TimeoutMs = 10000 };
    private readonly WriteRequest _message = new() { ObjectId = 42, Offset = 1 << 30 };
    private ReadOnlySequence<byte> _encoded;

    [GlobalSetup]
    public void Setup()
    {
        FrameCodec.WriteHead(_writer, _header, _message, 1024 * 1024);
        _encoded = new ReadOnlySequence<byte>(_writer.WrittenMemory.ToArray());
    }

    [Benchmark(Description = "encode a write request head")]
    public int Encode()
    {
        _writer.ResetWrittenCount();
        FrameCodec.WriteHead(_writer, _header, _message, 1024 * 1024);
        return _writer.WrittenCount;
    }

    [Benchmark(Description = "decode a write request head")]
    public ulong Decode()
    {
        var buffer = _encoded;
        FrameCodec.TryReadHead(ref buffer, FrameLimits.Default, out var head, out _);
        return head.Header.CallId;
    }
}

/// <summary>The OST's write path below RPC: one 1 MiB write into an object file on this disk.</summary>
[MemoryDiagnoser]
public class OstWriteBenchmarks
{
    private readonly byte[] _data = new byte[1024 * 1024];
    private string _directory = "";
    private DirBackend _backend = null!;
    private long _offset;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), $"parafs-micro-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_directory);
        _backend = DirBackend.Open(_directory, "micro");
        Random.Shared.NextBytes(_data);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _backend.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(Description = "OST backend: 1 MiB write (page cache)")]
    public async Task<long> Write()
    {
        // 256 MiB of object space, written round and round.
        _offset = (_offset + _data.Length) % (256L * 1024 * 1024);
        return await _backend.WriteAsync(7, _offset, _data, CancellationToken.None);
    }
}
