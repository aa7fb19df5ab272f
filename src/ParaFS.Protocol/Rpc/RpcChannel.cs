using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.Common.Interop;
using ParaFS.Protocol.Framing;

namespace ParaFS.Protocol.Rpc;

/// <summary>Where the payload of an incoming frame goes, and what the connection needs to finish it.</summary>
public readonly record struct FrameSink(Memory<byte> Payload, object? State);

/// <summary>
/// One connection's frame I/O, shared by the client and server sides: a receive loop over a
/// <see cref="PipeReader"/> (Kestrel's shape: read, parse whole heads, advance in a finally) and a
/// send path over a <see cref="PipeWriter"/> that batches small frames and sends large payloads
/// straight from the caller's memory. Payloads are copied once, from the socket to their owner.
/// <para>
/// A bulk connection (<see cref="UseDedicatedThreads"/>) runs instead on threads of its own, one
/// receiving and (when anything but that thread sends) one sending, with blocking socket calls:
/// a megabyte payload then costs a few system calls on one thread, where the asynchronous path
/// wakes the runtime's socket thread and a thread-pool thread for every chunk that arrives.
/// </para>
/// </summary>
public abstract class RpcChannel : IAsyncDisposable
{
    /// <summary>Payloads at least this large bypass the pipe on both sides (one copy fewer).</summary>
    private const int DirectPayloadBytes = 64 * 1024;

    /// <summary>
    /// A bulk connection's threads move at most this much per socket call: a kernel built without
    /// preemption (the usual server build) switches threads only between calls, so one megabyte
    /// copy would keep a woken small call waiting for a CPU the whole time.
    /// </summary>
    private const int BlockingPieceBytes = 256 * 1024;

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

    /// <summary>The channel whose dedicated I/O thread this is (its sends go out inline).</summary>
    [ThreadStatic]
    private static RpcChannel? t_ioThreadOf;

    private readonly Lock _blockingSendGate = new();
    private WaitingQueue<OutgoingFrame>? _outgoing;
    private BulkThreadBudget? _threadPlace;
    private int _senderStarted;

    /// <summary>Set when sendfile(2) to this socket failed as unsupported: file payloads go through a buffer.</summary>
    private int _sendfileUnsupported;

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

    /// <summary>Whether this connection runs on dedicated threads (see the class summary).</summary>
    public bool IsDedicated => _outgoing is not null;

    protected void StartReceiving()
    {
        if (IsDedicated)
        {
            StartThread(ReceiveLoopBlocking, "rpc-bulk-recv");
        }
        else
        {
            _ = Task.Run(ReceiveLoopAsync);
        }
    }

    /// <summary>
    /// Makes this a bulk connection: from now on its frames are written with blocking calls (by
    /// its own threads, or a sending thread started for the others), and the receive loop started
    /// next (or the thread already receiving, on a server) reads with blocking calls. The socket
    /// must not have had an asynchronous operation yet: those leave its descriptor non-blocking.
    /// <paramref name="place"/> is the budget whose place the connection took for its threads, if
    /// any: given back when the receive side ends, however the connection goes.
    /// </summary>
    protected void UseDedicatedThreads(BulkThreadBudget? place)
    {
        _threadPlace = place;
        _outgoing = new WaitingQueue<OutgoingFrame>();
    }

    /// <summary>
    /// Reads exactly one frame with blocking calls (no more bytes than it holds), waiting at most
    /// <paramref name="timeout"/>, and hands it to <see cref="OnFrameHeadAsync"/> and
    /// <see cref="OnFrameComplete"/> on the calling thread. For the first frame of a server
    /// connection, before it is known whether the connection is bulk. Returns false, with the
    /// connection aborted and its receive side ended, when no acceptable frame came.
    /// </summary>
    private bool ReceiveFirstFrameBlocking(TimeSpan timeout)
    {
        var reason = "peer closed the connection";
        FrameSink? unfinished = null;

        // The whole frame has to be in by the deadline, however slowly its bytes trickle in.
        using var deadline = new Timer(
            static s =>
            {
                var (channel, late) = ((RpcChannel, string))s!;
                if (!channel.IsClosed)
                {
                    Log.FrameRejected(channel.Logger, channel.Peer, late);
                    channel.Abort(late);
                }
            },
            (this, $"no first frame within {timeout.TotalSeconds:0.#} s"),
            timeout,
            Timeout.InfiniteTimeSpan);
        try
        {
            Span<byte> fixedPart = stackalloc byte[FramePreamble.Size];
            if (ReceiveExactly(fixedPart, allowCleanEnd: true))
            {
                var preamble = FramePreamble.TryRead(fixedPart, Limits, out var error) ?? throw new InvalidDataException(error);
                var head = new byte[FramePreamble.Size + preamble.HeaderLength + preamble.MessageLength];
                fixedPart.CopyTo(head);
                ReceiveExactly(head.AsSpan(FramePreamble.Size), allowCleanEnd: false);
                var sequence = new ReadOnlySequence<byte>(head);
                if (FrameCodec.TryReadHead(ref sequence, Limits, out var frame, out error) != FrameHeadStatus.Complete)
                {
                    throw new InvalidDataException(error);
                }

                var sink = Wait(OnFrameHeadAsync(frame));
                unfinished = sink;
                ReceiveExactly(sink.Payload.Span[..preamble.PayloadLength], allowCleanEnd: false);
                unfinished = null;
                deadline.Dispose();
                OnFrameComplete(frame.Header, sink);
                return true;
            }
        }
        catch (Exception e)
        {
            reason = EndedBy(e, "connection closed in the middle of the first frame");
        }

        EndReceiveSide(unfinished, reason);
        return false;
    }

    /// <summary>
    /// Starts a server connection: a thread of its own reads the first frame (the handshake) with
    /// <see cref="ReceiveFirstFrameBlocking"/>, then goes on as the receiving thread of a bulk
    /// connection, or hands the receiving to the thread pool and ends.
    /// </summary>
    protected void StartReceivingFromFirstFrame(TimeSpan timeout) =>
        StartThread(() =>
        {
            if (ReceiveFirstFrameBlocking(timeout))
            {
                ContinueReceiving();
            }
        }, "rpc-serve");

    /// <summary>Goes on receiving after <see cref="ReceiveFirstFrameBlocking"/>: on this thread for a bulk connection, else on the thread pool.</summary>
    private void ContinueReceiving()
    {
        if (IsDedicated)
        {
            ReceiveLoopBlocking();
        }
        else
        {
            _ = Task.Run(ReceiveLoopAsync);
        }
    }

    /// <summary>Writes one frame. Frames from concurrent callers never interleave.</summary>
    public async ValueTask SendAsync(CallHeader header, IMessage? message, ReadOnlyMemory<byte> payload)
    {
        if (payload.Length > Limits.MaxPayloadBytes)
        {
            throw new RpcException(Errno.EMSGSIZE,
                $"a payload of {payload.Length} bytes is over the frame limit of {Limits.MaxPayloadBytes} bytes for {Peer}");
        }

        if (_outgoing is { } outgoing)
        {
            await SendBlockingAsync(outgoing, header, message, payload).ConfigureAwait(false);
            return;
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
            throw SendFailed(e);
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

    /// <summary>
    /// Writes one frame whose payload is a range of a file (see <see cref="FilePayload"/>). A bulk
    /// connection sends it with sendfile(2); any other reads it into a buffer and sends that.
    /// </summary>
    public async ValueTask SendFileAsync(CallHeader header, IMessage? message, FilePayload payload)
    {
        if (payload.Length > Limits.MaxPayloadBytes)
        {
            throw new RpcException(Errno.EMSGSIZE,
                $"a payload of {payload.Length} bytes is over the frame limit of {Limits.MaxPayloadBytes} bytes for {Peer}");
        }

        if (_outgoing is not { } outgoing || Volatile.Read(ref _sendfileUnsupported) != 0)
        {
            using var buffer = RpcBuffer.Rent(payload.Length);
            try
            {
                ReadFileFully(payload, 0, buffer.Memory.Span[..payload.Length]);
            }
            catch (IOException e)
            {
                // Nothing is sent yet: the caller gets the error instead of the bytes.
                header.Error = new RpcError { Errno = (int)Errno.EIO, Message = $"reading {payload.Length} bytes at {payload.Offset} for the reply failed: {e.Message}" };
                await SendAsync(header, null, default).ConfigureAwait(false);
                return;
            }

            await SendAsync(header, message, buffer.Memory[..payload.Length]).ConfigureAwait(false);
            return;
        }

        var head = new ArrayBufferWriter<byte>(256);
        FrameCodec.WriteHead(head, header, message, payload.Length);
        if (t_ioThreadOf == this)
        {
            SendNow(head.WrittenMemory, payload);
            return;
        }

        await EnqueueAsync(outgoing, new OutgoingFrame(head.WrittenMemory, default) { File = payload }).ConfigureAwait(false);
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
        _outgoing?.Complete();
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
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // A send that the abort cut off left bytes in the writer, and completing it tries to
            // flush them to the socket the abort disposed: nothing more can go out anyway.
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
        catch (Exception e)
        {
            reason = EndedBy(e, "connection closed in the middle of a frame payload");
        }
        finally
        {
            Abort(CloseReason ?? reason);
            await _reader.CompleteAsync().ConfigureAwait(false);
            OnReceiveEnded(unfinished, CloseReason ?? reason);
            _receiveEnded.TrySetResult();
        }
    }

    /// <summary>Closes the connection after a failed send and returns what the sender throws.</summary>
    private RpcException SendFailed(Exception e)
    {
        var reason = $"send failed: {e.Message}";
        Abort(reason);
        return new RpcException(Errno.ECONNRESET, $"connection to {Peer} lost: {reason}", e);
    }

    private static T Wait<T>(ValueTask<T> pending) =>
        pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();

    private void StartThread(Action body, string name)
    {
        var thread = new Thread(() =>
        {
            t_ioThreadOf = this;
            body();
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
    }

    /// <summary>Sends one frame on a bulk connection: inline on its own threads, else through its sending thread.</summary>
    private async ValueTask SendBlockingAsync(WaitingQueue<OutgoingFrame> outgoing, CallHeader header, IMessage? message, ReadOnlyMemory<byte> payload)
    {
        var head = new ArrayBufferWriter<byte>(256);
        FrameCodec.WriteHead(head, header, message, payload.Length);
        if (t_ioThreadOf == this)
        {
            SendNow(head.WrittenMemory, payload);
            return;
        }

        await EnqueueAsync(outgoing, new OutgoingFrame(head.WrittenMemory, payload)).ConfigureAwait(false);
    }

    /// <summary>Hands a frame to the sending thread (started on first use) and waits until it is sent.</summary>
    private async ValueTask EnqueueAsync(WaitingQueue<OutgoingFrame> outgoing, OutgoingFrame frame)
    {
        if (Volatile.Read(ref _senderStarted) == 0 && Interlocked.Exchange(ref _senderStarted, 1) == 0)
        {
            // A server's bulk connection answers on its receiving thread, so most never need one.
            StartThread(SendLoopBlocking, "rpc-bulk-send");
        }

        if (!outgoing.TryAdd(frame))
        {
            ThrowIfClosed();
            throw new RpcException(Errno.ENOTCONN, $"connection to {Peer} is closed");
        }

        await frame.Sent.Task.ConfigureAwait(false);
    }

    private void SendLoopBlocking()
    {
        while (_outgoing!.Take() is { } frame)
        {
            try
            {
                if (frame.File is { } file)
                {
                    SendNow(frame.Head, file);
                }
                else
                {
                    SendNow(frame.Head, frame.Payload);
                }

                frame.Sent.TrySetResult();
            }
            catch (Exception e)
            {
                frame.Sent.TrySetException(e);
            }
        }
    }

    private void SendNow(ReadOnlyMemory<byte> head, ReadOnlyMemory<byte> payload)
    {
        lock (_blockingSendGate)
        {
            ThrowIfClosed();
            try
            {
                SendAll(head.Span);
                SendAll(payload.Span);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                throw SendFailed(e);
            }
        }
    }

    /// <summary>
    /// Sends a head and then a file range with sendfile(2), in pieces of at most
    /// <see cref="BlockingPieceBytes"/> like every blocking send. Where the kernel cannot sendfile
    /// to this socket, the rest goes through a buffer (and later frames do too); should the file
    /// have shrunk since the range was taken, zeros stand in for its missing end.
    /// </summary>
    private void SendNow(ReadOnlyMemory<byte> head, FilePayload payload)
    {
        lock (_blockingSendGate)
        {
            ThrowIfClosed();
            try
            {
                SendAll(head.Span);
                var offset = payload.Offset;
                var sent = 0;
                while (sent < payload.Length)
                {
                    var n = Libc.Sendfile(_socket.SafeHandle, payload.File, ref offset, (nuint)Math.Min(payload.Length - sent, BlockingPieceBytes));
                    if (n > 0)
                    {
                        sent += (int)n;
                        continue;
                    }

                    if (n == 0)
                    {
                        SendZeros(payload.Length - sent);
                        return;
                    }

                    var errno = Libc.LastErrno;
                    if (errno == Errno.EINTR)
                    {
                        continue;
                    }

                    if (errno is Errno.EINVAL or Errno.ENOSYS or Errno.EOPNOTSUPP && sent == 0)
                    {
                        // Neither side has moved yet: the frame can still go out through a buffer.
                        Volatile.Write(ref _sendfileUnsupported, 1);
                        SendFileThroughBuffer(payload);
                        return;
                    }

                    // The head promised bytes the connection cannot deliver now: it has to close,
                    // and the caller's retry will meet the error again if it lasts.
                    var failure = Libc.Failure(errno, $"sendfile of {payload.Length} bytes at {payload.Offset} to {Peer}");
                    Log.SendfileFailed(Logger, Peer, failure.Message);
                    throw SendFailed(failure);
                }
            }
            catch (IOException e)
            {
                // Reading the file through a buffer failed after the head went out.
                Log.SendfileFailed(Logger, Peer, e.Message);
                throw SendFailed(e);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                throw SendFailed(e);
            }
        }
    }

    private void SendFileThroughBuffer(FilePayload payload)
    {
        using var buffer = RpcBuffer.Rent(Math.Min(payload.Length, BlockingPieceBytes));
        var span = buffer.Memory.Span;
        for (var done = 0; done < payload.Length;)
        {
            var piece = span[..Math.Min(span.Length, payload.Length - done)];
            ReadFileFully(payload, done, piece);
            SendAll(piece);
            done += piece.Length;
        }
    }

    /// <summary>Reads <paramref name="destination"/>.Length bytes of the payload from <paramref name="skip"/> on; zeros past the file's end.</summary>
    private static void ReadFileFully(FilePayload payload, int skip, Span<byte> destination)
    {
        var done = 0;
        while (done < destination.Length)
        {
            var n = RandomAccess.Read(payload.File, destination[done..], payload.Offset + skip + done);
            if (n == 0)
            {
                destination[done..].Clear();
                return;
            }

            done += n;
        }
    }

    private void SendZeros(int count)
    {
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        while (count > 0)
        {
            var piece = Math.Min(count, zeros.Length);
            SendAll(zeros[..piece]);
            count -= piece;
        }
    }

    private void SendAll(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[_socket.Send(bytes[..Math.Min(bytes.Length, BlockingPieceBytes)])..];
        }
    }

    /// <summary>Fills <paramref name="destination"/> from the socket; false if the peer closed before its first byte and that is allowed.</summary>
    private bool ReceiveExactly(Span<byte> destination, bool allowCleanEnd)
    {
        var done = 0;
        while (done < destination.Length)
        {
            var n = _socket.Receive(destination.Slice(done, Math.Min(destination.Length - done, BlockingPieceBytes)));
            if (n == 0)
            {
                return done == 0 && allowCleanEnd ? false : throw new EndOfStreamException();
            }

            done += n;
        }

        return true;
    }

    /// <summary>The receive loop of a bulk connection, on its own thread: the same frames as <see cref="ReceiveLoopAsync"/>, read with blocking calls.</summary>
    private void ReceiveLoopBlocking()
    {
        FrameSink? unfinished = null;
        var reason = "peer closed the connection";
        var buffer = new byte[64 * 1024];
        int start = 0, end = 0;
        try
        {
            while (true)
            {
                var pending = new ReadOnlySequence<byte>(buffer, start, end - start);
                var status = FrameCodec.TryReadHead(ref pending, Limits, out var head, out var error);
                if (status == FrameHeadStatus.Invalid)
                {
                    throw new InvalidDataException(error);
                }

                if (status == FrameHeadStatus.NeedMoreData)
                {
                    // Keep the partial head at the front of the buffer (grown for a large message) and read more.
                    var held = end - start;
                    if (start > 0)
                    {
                        Buffer.BlockCopy(buffer, start, buffer, 0, held);
                        (start, end) = (0, held);
                    }

                    if (end == buffer.Length)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    var n = _socket.Receive(buffer, end, buffer.Length - end, SocketFlags.None);
                    if (n == 0)
                    {
                        if (held > 0)
                        {
                            reason = $"connection closed in the middle of a frame ({held} bytes of it received)";
                            Log.FrameRejected(Logger, Peer, reason);
                        }

                        return;
                    }

                    end += n;
                    continue;
                }

                var sink = Wait(OnFrameHeadAsync(head));
                start = end - (int)pending.Length;
                var need = head.Preamble.PayloadLength;
                var have = Math.Min(end - start, need);
                buffer.AsSpan(start, have).CopyTo(sink.Payload.Span);
                start += have;
                if (have < need)
                {
                    unfinished = sink;
                    ReceiveExactly(sink.Payload.Span[have..need], allowCleanEnd: false);
                    unfinished = null;
                }

                OnFrameComplete(head.Header, sink);
            }
        }
        catch (Exception e)
        {
            reason = EndedBy(e, "connection closed in the middle of a frame payload");
        }
        finally
        {
            EndReceiveSide(unfinished, reason);
        }
    }

    /// <summary>Why a receive loop ended on <paramref name="e"/>, logged as that cause is; <paramref name="cutOff"/> names a frame the peer's close cut short.</summary>
    private string EndedBy(Exception e, string cutOff)
    {
        switch (e)
        {
            case EndOfStreamException:
                if (!IsClosed)
                {
                    Log.FrameRejected(Logger, Peer, cutOff);
                }

                return cutOff;

            case InvalidDataException:
                // A frame that does not parse or is over a limit, or of a kind this side does not take.
                Log.FrameRejected(Logger, Peer, e.Message);
                return e.Message;

            case IOException or SocketException or ObjectDisposedException or OperationCanceledException:
                return CloseReason ?? $"receive failed: {e.Message}";

            default:
                Log.ReceiveLoopFailed(Logger, Peer, e);
                return $"receive loop failed: {e.Message}";
        }
    }

    private void EndReceiveSide(FrameSink? unfinished, string reason)
    {
        Abort(CloseReason ?? reason);
        Interlocked.Exchange(ref _threadPlace, null)?.Return();
        OnReceiveEnded(unfinished, CloseReason ?? reason);
        _receiveEnded.TrySetResult();
    }

    /// <summary>A frame waiting for a bulk connection's sending thread: its encoded head, its payload, and who waits.</summary>
    private sealed record OutgoingFrame(ReadOnlyMemory<byte> Head, ReadOnlyMemory<byte> Payload)
    {
        /// <summary>Set instead of <see cref="Payload"/> for a payload sent from a file.</summary>
        public FilePayload? File { get; init; }

        public TaskCompletionSource Sent { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
