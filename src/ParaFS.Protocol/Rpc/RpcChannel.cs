using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Protocol.Framing;

namespace ParaFS.Protocol.Rpc;

/// <summary>Where the payload of an incoming frame goes, and what the connection needs to finish it.</summary>
public readonly record struct FrameSink(Memory<byte> Payload, object? State);

/// <summary>
/// One connection's frame I/O, shared by the client and server sides: a receive loop over a
/// <see cref="PipeReader"/> (Kestrel's shape: read, parse whole heads, advance in a finally) and a
/// send path over a <see cref="PipeWriter"/> that batches small frames and sends large payloads
/// straight from the caller's memory. Payloads are copied once, from the socket to their owner.
/// </summary>
public abstract class RpcChannel : IAsyncDisposable
{
    /// <summary>Payloads at least this large bypass the pipe on both sides (one copy fewer).</summary>
    private const int DirectPayloadBytes = 64 * 1024;

    /// <summary>Small frames are batched, but never more than this is left unflushed.</summary>
    private const int MaxUnflushedBytes = 256 * 1024;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly CancellationTokenSource _closed = new();
    private readonly TaskCompletionSource _receiveEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _queuedSenders;
    private string? _closeReason;

    protected RpcChannel(Socket socket, FrameLimits limits, ILogger logger, string peer)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = PipeReader.Create(_stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, minimumReadSize: 16 * 1024, leaveOpen: true));
        _writer = PipeWriter.Create(_stream, new StreamPipeWriterOptions(minimumBufferSize: 64 * 1024, leaveOpen: true));
        Limits = limits;
        Logger = logger;
        Peer = peer;
    }

    /// <summary>The other side, for messages: an address and, after the handshake, its name.</summary>
    public string Peer { get; protected set; }

    public FrameLimits Limits { get; }

    public bool IsClosed => Volatile.Read(ref _closeReason) is not null;

    public string? CloseReason => Volatile.Read(ref _closeReason);

    /// <summary>Cancelled when the connection closes, for whatever reason.</summary>
    public CancellationToken Closed => _closed.Token;

    /// <summary>Completes when the connection is closed and its receive loop has ended.</summary>
    public Task Completion => _receiveEnded.Task;

    protected ILogger Logger { get; }

    /// <summary>Called with a complete head; copies what it needs of the message and says where the payload goes.</summary>
    protected abstract ValueTask<FrameSink> OnFrameHeadAsync(FrameHead head);

    /// <summary>Called when the payload is all in the sink.</summary>
    protected abstract void OnFrameComplete(CallHeader header, FrameSink sink);

    /// <summary>Called when the receive loop has ended, with the sink of a frame cut off mid-payload, if any.</summary>
    protected abstract void OnReceiveEnded(FrameSink? unfinished, string reason);

    protected void StartReceiving() => _ = Task.Run(ReceiveLoopAsync);

    /// <summary>Writes one frame. Frames from concurrent callers never interleave.</summary>
    public async ValueTask SendAsync(CallHeader header, IMessage? message, ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > Limits.MaxPayloadBytes)
        {
            throw new RpcException(Errno.EMSGSIZE,
                $"a payload of {payload.Length} bytes is over the frame limit of {Limits.MaxPayloadBytes} bytes for {Peer}");
        }

        Interlocked.Increment(ref _queuedSenders);
        var queued = true;
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            ThrowIfClosed();
            FrameCodec.WriteHead(_writer, header, message, payload.Length);
            if (payload.Length < DirectPayloadBytes)
            {
                _writer.Write(payload.Span);
                queued = false;
                var last = Interlocked.Decrement(ref _queuedSenders) == 0;

                // A sender that sees others queued leaves the flush to the last of them: small
                // frames from many callers go out in one write.
                if (last || _writer.UnflushedBytes >= MaxUnflushedBytes)
                {
                    await _writer.FlushAsync().ConfigureAwait(false);
                }
            }
            else
            {
                await _writer.FlushAsync().ConfigureAwait(false);
                await _stream.WriteAsync(payload).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            var reason = $"send failed: {e.Message}";
            Abort(reason);
            throw new RpcException(Errno.ECONNRESET, $"connection to {Peer} lost: {reason}", e);
        }
        finally
        {
            if (queued)
            {
                Interlocked.Decrement(ref _queuedSenders);
            }

            _sendLock.Release();
        }
    }

    /// <summary>Closes the connection at once; pending work fails with <paramref name="reason"/>.</summary>
    public void Abort(string reason)
    {
        if (Interlocked.CompareExchange(ref _closeReason, reason, null) is not null)
        {
            return;
        }

        try
        {
            _closed.Cancel();
        }
        catch (AggregateException e)
        {
            Log.CallbackFailed(Logger, Peer, e);
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already reset by the peer.
        }
        catch (ObjectDisposedException)
        {
        }

        _socket.Dispose();
        OnClosed(reason);
    }

    /// <summary>Called once, when the connection closes, before the receive loop has necessarily ended.</summary>
    protected virtual void OnClosed(string reason)
    {
    }

    protected void ThrowIfClosed()
    {
        if (CloseReason is { } reason)
        {
            throw new RpcException(Errno.ENOTCONN, $"connection to {Peer} is closed: {reason}");
        }
    }

    public virtual async ValueTask DisposeAsync()
    {
        Abort("closed by this side");
        await Completion.ConfigureAwait(false);
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            await _writer.CompleteAsync().ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }

        await _stream.DisposeAsync().ConfigureAwait(false);
        _closed.Dispose();
        GC.SuppressFinalize(this);
    }

    private async Task ReceiveLoopAsync()
    {
        FrameSink? unfinished = null;
        var reason = "peer closed the connection";
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                var direct = (Sink: default(FrameSink), Header: (CallHeader?)null, Have: 0, Need: 0);
                try
                {
                    while (true)
                    {
                        var status = FrameCodec.TryReadHead(ref buffer, Limits, out var head, out var error);
                        if (status == FrameHeadStatus.NeedMoreData)
                        {
                            break;
                        }

                        if (status == FrameHeadStatus.Invalid)
                        {
                            reason = error!;
                            Log.FrameRejected(Logger, Peer, reason);
                            return;
                        }

                        var sink = await OnFrameHeadAsync(head).ConfigureAwait(false);
                        var need = head.Preamble.PayloadLength;
                        var have = (int)Math.Min(buffer.Length, need);
                        buffer.Slice(0, have).CopyTo(sink.Payload.Span);
                        buffer = buffer.Slice(have);
                        if (have == need)
                        {
                            OnFrameComplete(head.Header, sink);
                            continue;
                        }

                        // The rest of a large payload is read straight from the socket into its
                        // destination once the pipe's buffered bytes are consumed.
                        unfinished = sink;
                        direct = (sink, head.Header, have, need);
                        break;
                    }
                }
                finally
                {
                    _reader.AdvanceTo(buffer.Start, buffer.End);
                }

                if (direct.Header is { } header)
                {
                    await _stream.ReadExactlyAsync(direct.Sink.Payload[direct.Have..direct.Need]).ConfigureAwait(false);
                    unfinished = null;
                    OnFrameComplete(header, direct.Sink);
                    continue;
                }

                if (result.IsCompleted)
                {
                    if (!buffer.IsEmpty)
                    {
                        reason = $"connection closed in the middle of a frame ({buffer.Length} bytes of it received)";
                        Log.FrameRejected(Logger, Peer, reason);
                    }

                    return;
                }
            }
        }
        catch (EndOfStreamException)
        {
            reason = "connection closed in the middle of a frame payload";
            Log.FrameRejected(Logger, Peer, reason);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            reason = CloseReason ?? $"receive failed: {e.Message}";
        }
        catch (Exception e)
        {
            reason = $"receive loop failed: {e.Message}";
            Log.ReceiveLoopFailed(Logger, Peer, e);
        }
        finally
        {
            Abort(CloseReason ?? reason);
            await _reader.CompleteAsync().ConfigureAwait(false);
            OnReceiveEnded(unfinished, CloseReason ?? reason);
            _receiveEnded.TrySetResult();
        }
    }
}
