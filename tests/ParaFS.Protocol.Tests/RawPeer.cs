using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Google.Protobuf;
using ParaFS.Protocol.Framing;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Protocol.Tests;

/// <summary>A hand-driven TCP peer: sends whatever bytes a test wants and reads frames back.</summary>
public sealed class RawPeer : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;

    private RawPeer(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = PipeReader.Create(_stream);
    }

    public static async Task<RawPeer> ConnectAsync(RpcEndpoint endpoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(await endpoint.ResolveAsync(default));
        return new RawPeer(socket);
    }

    public static byte[] Frame(CallHeader header, IMessage? message, ReadOnlySpan<byte> payload = default)
    {
        var writer = new ArrayBufferWriter<byte>();
        FrameCodec.WriteHead(writer, header, message, payload.Length);
        writer.Write(payload);
        return writer.WrittenSpan.ToArray();
    }

    public static byte[] Request(ulong callId, uint method, IMessage? message) =>
        Frame(new CallHeader { Kind = FrameKind.Request, CallId = callId, Method = method }, message);

    public static Hello GoodHello() => new()
    {
        ProtocolVersion = ProtocolVersion.Current,
        MinProtocolVersion = ProtocolVersion.MinimumSupported,
        Role = PeerRole.Tool,
        PeerName = "raw test peer",
    };

    public Task SendAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    /// <summary>Performs a correct handshake so the bytes that follow reach the dispatcher.</summary>
    public async Task HandshakeAsync()
    {
        await SendAsync(Request(1, Methods.Handshake, GoodHello()));
        var (header, _) = await ReadFrameAsync();
        if (header?.Error is { } error)
        {
            throw new InvalidOperationException($"handshake refused: {error.Message}");
        }
    }

    /// <summary>Reads one frame; null header when the server closed the connection first.</summary>
    public async Task<(CallHeader? Header, byte[] Message)> ReadFrameAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var result = await _reader.ReadAsync(timeout.Token);
            var buffer = result.Buffer;
            if (FrameCodec.TryReadHead(ref buffer, FrameLimits.Default, out var head, out var error) == FrameHeadStatus.Complete
                && buffer.Length >= head.Preamble.PayloadLength)
            {
                var message = head.Message.ToArray();
                _reader.AdvanceTo(buffer.GetPosition(head.Preamble.PayloadLength));
                return (head.Header, message);
            }

            if (error is not null)
            {
                throw new InvalidDataException(error);
            }

            _reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            if (result.IsCompleted)
            {
                return (null, []);
            }
        }
    }

    /// <summary>True when the server closes the connection (reads end) within the timeout.</summary>
    public async Task<bool> ClosedByServerAsync()
    {
        try
        {
            while (true)
            {
                var (header, _) = await ReadFrameAsync();
                if (header is null)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _reader.CompleteAsync();
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}
