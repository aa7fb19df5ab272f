using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using ParaFS.Fuse.Protocol;
using ParaFS.Fuse.Transport;

namespace ParaFS.Fuse.Tests;

/// <summary>
/// A FUSE device in memory, as EdenFS's fake channel: the test writes requests as the kernel's
/// bytes and reads back exactly what the session wrote. Clones share the queue and tag what
/// they write with their id, so a test can check a reply went to the descriptor its request came from.
/// </summary>
internal sealed class FakeFuseChannel : IFuseChannel
{
    private readonly Shared _shared;

    public FakeFuseChannel()
        : this(new Shared(), 0)
    {
    }

    private FakeFuseChannel(Shared shared, int id)
    {
        _shared = shared;
        Id = id;
    }

    public int Id { get; }

    /// <summary>Which channel read each request (by unique).</summary>
    public ConcurrentDictionary<ulong, int> ReadBy => _shared.ReadBy;

    public int Read(Span<byte> buffer)
    {
        byte[] request;
        try
        {
            request = _shared.Requests.Take(_shared.Stop.Token);
        }
        catch (OperationCanceledException)
        {
            return 0;
        }
        catch (InvalidOperationException)
        {
            return 0; // completed: the kernel's ENODEV
        }

        _shared.ReadBy[MemoryMarshal.Read<ulong>(request.AsSpan(8))] = Id;
        request.CopyTo(buffer);
        return request.Length;
    }

    public int Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        _shared.Written.Add(new Written(Id, [.. header, .. payload]));
        return 0;
    }

    public IFuseChannel Clone() => new FakeFuseChannel(_shared, Interlocked.Increment(ref _shared.NextId));

    public void Shutdown() => _shared.Stop.Cancel();

    public void Dispose()
    {
        if (Id == 0)
        {
            _shared.Dispose();
        }
    }

    /// <summary>Queues one request, as the kernel would.</summary>
    public void Send(byte[] request) => _shared.Requests.Add(request);

    /// <summary>Ends the session as an unmount does: every read returns ENODEV.</summary>
    public void EndSession() => _shared.Requests.CompleteAdding();

    /// <summary>The next message the session wrote, or null after <paramref name="timeout"/>.</summary>
    public Written? NextWrite(TimeSpan timeout) => _shared.Written.TryTake(out var written, timeout) ? written : null;

    private sealed class Shared : IDisposable
    {
        public readonly BlockingCollection<byte[]> Requests = [];
        public readonly BlockingCollection<Written> Written = [];
        public readonly CancellationTokenSource Stop = new();
        public readonly ConcurrentDictionary<ulong, int> ReadBy = new();
        public int NextId;

        public void Dispose()
        {
            Stop.Dispose();
            Requests.Dispose();
            Written.Dispose();
        }
    }
}

/// <summary>One message the session wrote: fuse_out_header then payload.</summary>
internal sealed record Written(int Channel, byte[] Bytes)
{
    public FuseOutHeader Header => MemoryMarshal.Read<FuseOutHeader>(Bytes);

    public ulong Unique => Header.Unique;

    public int Error => Header.Error;

    public ReadOnlySpan<byte> Payload => Bytes.AsSpan(16);

    public T Read<T>(int offset = 0)
        where T : unmanaged => MemoryMarshal.Read<T>(Bytes.AsSpan(16 + offset));
}

/// <summary>Builds requests in the kernel's byte format.</summary>
internal static class KernelRequest
{
    public static byte[] Build(FuseOpcode opcode, ulong unique, ulong nodeId, params byte[][] body)
    {
        var length = Unsafe.SizeOf<FuseInHeader>() + body.Sum(b => b.Length);
        var header = new FuseInHeader
        {
            Len = (uint)length,
            Opcode = (uint)opcode,
            Unique = unique,
            NodeId = nodeId,
            Uid = 1000,
            Gid = 1000,
            Pid = 4242,
        };
        var bytes = new List<byte>(length);
        bytes.AddRange(Bytes(header));
        foreach (var part in body)
        {
            bytes.AddRange(part);
        }

        return [.. bytes];
    }

    public static byte[] Bytes<T>(T value)
        where T : unmanaged => MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)).ToArray();

    public static byte[] Name(string name) => [.. Encoding.UTF8.GetBytes(name), 0];
}
