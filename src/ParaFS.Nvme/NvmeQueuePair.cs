using ParaFS.Common.Storage;
using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using ParaFS.Common;

namespace ParaFS.Nvme;

/// <summary>What one queue connection needs to be set up (reference section 6, steps 1-2 and 8).</summary>
public sealed record NvmeQueueParameters(
    string Host,
    int Port,
    string SubsystemNqn,
    ushort QueueId,
    int Depth,
    ushort ControllerId,
    NvmeTcpOptions Options,
    uint KeepAliveMs = 0);

/// <summary>
/// One NVMe queue pair on its own TCP connection: ICReq/ICResp, Fabrics Connect, then any number
/// of commands in flight up to the depth. A receive loop matches completions by CID; data moves
/// in-capsule when it fits, otherwise through R2T/H2CData; reads land straight in the caller's
/// memory from C2HData (no copy through a staging buffer beyond the socket reader's).
/// A closed or broken connection, a malformed or truncated PDU, a header digest mismatch and a
/// command timeout are fatal for the connection: every command in flight on it fails with
/// <see cref="NvmeTransportException"/> and the queue is unusable afterwards (the controller
/// reconnects). A data digest mismatch fails only its command.
/// </summary>
public sealed class NvmeQueuePair : IAsyncDisposable
{
    /// <summary>The admin queue's capsule: 8 KiB of in-capsule data (TCP binding; Linux NVME_TCP_ADMIN_CCSZ).</summary>
    public const int AdminInCapsuleBytes = 8192;

    private const int ReceiveHeaderCapacity = 256;

    private readonly Socket _socket;
    private readonly SocketReader _reader;
    private readonly Slot[] _slots;
    private readonly int[] _freeSlots;
    private readonly SemaphoreSlim _depth;
    private readonly SendQueue _sendQueue;
    private readonly byte[] _receiveHeader = new byte[ReceiveHeaderCapacity];
    private readonly byte[] _digestScratch = new byte[Pdu.DigestLength];
    private readonly bool _headerDigest;
    private readonly bool _dataDigest;
    private readonly long _commandTimeoutMs;
    private int _freeCount;
    private int _cpda;
    private Exception? _fault;
    private Task _receiveLoop = Task.CompletedTask;
    private Timer? _timeoutTimer;
    private long _commandsCompleted;

    private NvmeQueuePair(Socket socket, NvmeQueueParameters parameters)
    {
        _socket = socket;
        Parameters = parameters;
        QueueId = parameters.QueueId;
        Label = $"nvme-tcp {parameters.Host}:{parameters.Port} {parameters.SubsystemNqn} qid {parameters.QueueId}";
        _reader = new SocketReader(socket, Label);
        _sendQueue = new SendQueue(socket, e => FailConnection(new NvmeTransportException(Errno.EIO, $"{Label}: sending failed: {e.Message}", e)));
        _headerDigest = parameters.Options.HeaderDigest;
        _dataDigest = parameters.Options.DataDigest;
        _commandTimeoutMs = (long)parameters.Options.CommandTimeout.TotalMilliseconds;
        Depth = parameters.Depth;
        _slots = new Slot[Depth];
        _freeSlots = new int[Depth];
        for (var i = 0; i < Depth; i++)
        {
            _slots[i] = new Slot((ushort)i);
            _freeSlots[i] = Depth - 1 - i;
        }
        _freeCount = Depth;
        _depth = new SemaphoreSlim(Depth, Depth);
        InCapsuleCapacity = parameters.QueueId == 0 ? AdminInCapsuleBytes : 0;
    }

    public NvmeQueueParameters Parameters { get; }

    public ushort QueueId { get; }

    /// <summary>"nvme-tcp 127.0.0.1:4420 nqn... qid 1": names the queue in every error.</summary>
    public string Label { get; }

    /// <summary>Commands this queue keeps in flight at most (Connect SQSIZE is this, 0's based, so one entry stays free).</summary>
    public int Depth { get; }

    /// <summary>The CNTLID the Connect returned (CQE DW0[15:0]).</summary>
    public ushort ControllerId { get; private set; }

    /// <summary>MAXH2CDATA from the ICResp: the most data bytes in one H2CData.</summary>
    public int MaxH2CData { get; private set; }

    /// <summary>Host-to-controller data up to this many bytes travels in-capsule (must, on nvmet).
    /// 8 KiB on the admin queue; IOCCSZ*16-64 on I/O queues, set by the controller from Identify.</summary>
    public int InCapsuleCapacity { get; internal set; }

    /// <summary>Whether Connect disabled SQ flow control (SQHD 0xFFFF): reads may end with SUCCESS.</summary>
    public bool SqFlowControlDisabled { get; private set; }

    public bool IsFaulted => Volatile.Read(ref _fault) is not null;

    public Exception? Fault => Volatile.Read(ref _fault);

    public int InFlight => Depth - _depth.CurrentCount;

    public long CommandsCompleted => Interlocked.Read(ref _commandsCompleted);

    /// <summary>Called once, from whichever thread noticed, when the connection fails.</summary>
    internal Action<NvmeQueuePair, Exception>? Faulted { get; set; }

    /// <summary>TCP connect, ICReq/ICResp (checked), Connect (in-capsule, 1024 bytes). Throws
    /// <see cref="NvmeTransportException"/> or <see cref="NvmeStatusException"/> with the reason.</summary>
    public static async Task<NvmeQueuePair> ConnectAsync(NvmeQueueParameters parameters, CancellationToken cancellationToken)
    {
        var options = parameters.Options;
        var label = $"nvme-tcp {parameters.Host}:{parameters.Port} qid {parameters.QueueId}";
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        NvmeQueuePair? queue = null;
        try
        {
            try
            {
                await socket.ConnectAsync(parameters.Host, parameters.Port, timeout.Token).ConfigureAwait(false);
            }
            catch (SocketException e)
            {
                throw new NvmeTransportException(Errno.EIO, $"{label}: cannot connect: {e.Message}", e);
            }
            queue = new NvmeQueuePair(socket, parameters);
            await queue.ExchangeICReqAsync(timeout.Token).ConfigureAwait(false);
            queue._receiveLoop = Task.Run(queue.ReceiveLoopAsync, CancellationToken.None);
            var period = Math.Clamp(queue._commandTimeoutMs / 4, 20, 1000);
            queue._timeoutTimer = new Timer(static state => ((NvmeQueuePair)state!).CheckTimeouts(), queue, period, period);

            var connectData = ArrayPool<byte>.Shared.Rent(1024);
            try
            {
                NvmeCommand.WriteConnectData(connectData, options.EffectiveHostId, parameters.ControllerId,
                    parameters.SubsystemNqn, options.EffectiveHostNqn);
                var disableSqFlow = options.DisableSqFlowControl && parameters.QueueId != 0;
                var command = NvmeCommand.Connect(parameters.QueueId, (ushort)parameters.Depth, disableSqFlow, parameters.KeepAliveMs);
                var completion = await queue.ExecuteAsync(command, connectData.AsMemory(0, 1024), default, cancellationToken, forceInCapsule: true,
                    timeout: options.ConnectTimeout).ConfigureAwait(false);
                if (!completion.IsSuccess)
                {
                    throw new NvmeStatusException(
                        $"{queue.Label}: Connect refused: {completion.DescribeStatus()}" +
                        (completion.StatusCodeType == 1 && completion.StatusCode == 0x82 ? $", invalid parameter 0x{completion.Dw0:x8}" : ""),
                        completion);
                }
                queue.ControllerId = (ushort)completion.Dw0;
                queue.SqFlowControlDisabled = completion.SqHead == 0xFFFF;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(connectData);
            }
            return queue;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await DisposeQuietly(queue, socket).ConfigureAwait(false);
            throw new NvmeTransportException(Errno.ETIMEDOUT,
                $"{label}: no answer within {options.ConnectTimeout.TotalSeconds:0.#} s while connecting (ICReq and Fabrics Connect; is a target listening there?)");
        }
        catch
        {
            await DisposeQuietly(queue, socket).ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask DisposeQuietly(NvmeQueuePair? queue, Socket socket)
    {
        if (queue is not null)
        {
            await queue.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            socket.Dispose();
        }
    }

    private async Task ExchangeICReqAsync(CancellationToken cancellationToken)
    {
        var icreq = new byte[Pdu.ICReqLength];
        Pdu.WriteICReq(icreq, _headerDigest, _dataDigest);
        await SendAllAsync(icreq, cancellationToken).ConfigureAwait(false);
        var icresp = new byte[Pdu.ICReqLength];
        await _reader.ReadExactAsync(icresp, atPduStart: true, cancellationToken).ConfigureAwait(false);
        var plen = BinaryPrimitives.ReadUInt32LittleEndian(icresp.AsSpan(4));
        if (icresp[0] == (byte)PduType.C2HTermReq)
        {
            throw new NvmeTransportException(Errno.EIO,
                $"{Label}: the target refused the ICReq: {Pdu.DescribeFatalErrorStatus(BinaryPrimitives.ReadUInt16LittleEndian(icresp.AsSpan(8)))}");
        }
        if (icresp[0] != (byte)PduType.ICResp || icresp[2] != Pdu.ICReqLength || plen != Pdu.ICReqLength)
        {
            throw new NvmeTransportException(Errno.EPROTO,
                $"{Label}: expected an ICResp (type 1, HLEN 128, PLEN 128), got type {icresp[0]} HLEN {icresp[2]} PLEN {plen}");
        }
        var resp = ICResp.Parse(icresp);
        if (resp.Pfv != 0)
        {
            throw new NvmeTransportException(Errno.EPROTO, $"{Label}: the target speaks PDU format version {resp.Pfv}, not 0");
        }
        if (resp.HeaderDigest != _headerDigest || resp.DataDigest != _dataDigest)
        {
            throw new NvmeTransportException(Errno.EPROTO,
                $"{Label}: digests asked header={_headerDigest} data={_dataDigest}, the target enabled header={resp.HeaderDigest} data={resp.DataDigest}");
        }
        if (resp.Cpda > 31)
        {
            throw new NvmeTransportException(Errno.EPROTO, $"{Label}: CPDA {resp.Cpda} out of range");
        }
        if (resp.MaxH2CData < 4096 || resp.MaxH2CData % 4 != 0)
        {
            throw new NvmeTransportException(Errno.EPROTO, $"{Label}: MAXH2CDATA {resp.MaxH2CData} is not a multiple of 4 of at least 4096");
        }
        _cpda = resp.Cpda;
        MaxH2CData = resp.MaxH2CData;
    }

    /// <summary>
    /// Sends one command and waits for its completion (a CQE, or a C2HData with SUCCESS). A status
    /// error is returned in the completion, not thrown; transport failures and timeouts throw
    /// <see cref="NvmeTransportException"/>. <paramref name="cancellationToken"/> only cancels the
    /// wait for a free slot: once sent, a command runs until it completes or times out, because the
    /// controller may still write into <paramref name="dataIn"/>.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<NvmeCompletion> ExecuteAsync(NvmeCommand command, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn,
        CancellationToken cancellationToken, bool forceInCapsule = false, TimeSpan? timeout = null)
    {
        ThrowIfFaulted();
        if (!dataOut.IsEmpty && !dataIn.IsEmpty)
        {
            throw new ArgumentException("a command moves data one way only");
        }
        await _depth.WaitAsync(cancellationToken).ConfigureAwait(false);
        var slot = RentSlot();
        try
        {
            var timeoutMs = timeout is { } t ? (long)t.TotalMilliseconds : _commandTimeoutMs;
            slot.Start(command, dataOut, dataIn, Environment.TickCount64 + timeoutMs, timeoutMs);
            if (Volatile.Read(ref _fault) is { } fault)
            {
                slot.TryFail(fault);
            }
            else
            {
                QueueCommand(slot, forceInCapsule);
            }
            NvmeCompletion completion;
            try
            {
                completion = await new ValueTask<NvmeCompletion>(slot, slot.Version).ConfigureAwait(false);
            }
            catch (NvmeTransportException) when (IsFaulted)
            {
                // The caller may reuse its buffer as soon as this returns: wait until the receive
                // loop, which may have been reading into it, has stopped.
                await _receiveLoop.ConfigureAwait(false);
                throw;
            }
            finally
            {
                // A write's data may still be in an H2CData send when an error completion races it.
                if (slot.DataSend is { IsCompleted: false } send)
                {
                    await send.ConfigureAwait(false);
                }
            }
            Interlocked.Increment(ref _commandsCompleted);
            return completion;
        }
        finally
        {
            slot.Release();
            ReturnSlot(slot);
            _depth.Release();
        }
    }

    private void ThrowIfFaulted()
    {
        if (Volatile.Read(ref _fault) is { } fault)
        {
            throw fault as NvmeTransportException
                ?? new NvmeTransportException(Errno.EIO, $"{Label}: the connection is down: {fault.Message}", fault);
        }
    }

    private Slot RentSlot()
    {
        lock (_freeSlots)
        {
            return _slots[_freeSlots[--_freeCount]];
        }
    }

    private void ReturnSlot(Slot slot)
    {
        lock (_freeSlots)
        {
            _freeSlots[_freeCount++] = slot.Cid;
        }
    }

    // ---------------------------------------------------------------- sending

    /// <summary>Builds the CapsuleCmd (CH + SQE, header digest, padding to CPDA, in-capsule data,
    /// data digest; section 3) in a pooled buffer and queues it.</summary>
    private void QueueCommand(Slot slot, bool forceInCapsule)
    {
        var dataLength = slot.DataOut.Length + slot.DataIn.Length;
        var inCapsule = !slot.DataOut.IsEmpty && (forceInCapsule || slot.DataOut.Length <= InCapsuleCapacity);
        var hlen = Pdu.CapsuleCmdHeaderLength;
        var pdo = inCapsule ? Pdu.DataOffset(hlen, _headerDigest, _cpda) : 0;
        var headerEnd = hlen + (_headerDigest ? Pdu.DigestLength : 0);
        var inlineLength = inCapsule ? slot.DataOut.Length : 0;
        var dataDigest = inCapsule && _dataDigest;
        var plen = (inCapsule ? pdo : headerEnd) + inlineLength + (dataDigest ? Pdu.DigestLength : 0);
        var flags = (_headerDigest ? PduFlags.HeaderDigest : 0) | (dataDigest ? PduFlags.DataDigest : 0);

        var buffer = ArrayPool<byte>.Shared.Rent(plen);
        var pdu = buffer.AsSpan(0, plen);
        pdu[..(inCapsule ? pdo : headerEnd)].Clear();
        Pdu.WriteCommonHeader(pdu, PduType.CapsuleCmd, flags, hlen, pdo, plen);
        slot.Command.WriteTo(pdu[8..], slot.Cid, dataLength, inCapsule);
        if (_headerDigest)
        {
            Pdu.WriteDigest(pdu[hlen..], pdu[..hlen]);
        }
        if (inCapsule)
        {
            var data = pdu.Slice(pdo, inlineLength);
            slot.DataOut.Span.CopyTo(data);
            if (dataDigest)
            {
                Pdu.WriteDigest(pdu[(pdo + inlineLength)..], data);
            }
        }
        _sendQueue.Enqueue(buffer, plen);
    }

    /// <summary>Answers one R2T: H2CData PDUs of at most MAXH2CDATA bytes each, LAST_PDU on the
    /// final one. With a data digest nvmet 6.1 needs exactly one H2CData per R2T (pitfall 3);
    /// MAXH2CDATA is 4 MiB there, so splitting at MAXH2CDATA keeps it whole. Small chunks are
    /// copied into the PDU buffer; large ones go from the caller's memory, and the returned task
    /// completes once the socket no longer needs it.</summary>
    private Task? QueueH2CData(ReadOnlyMemory<byte> data, R2T r2t)
    {
        var hlen = Pdu.DataHeaderLength;
        var pdo = Pdu.DataOffset(hlen, _headerDigest, _cpda);
        var digest = _dataDigest ? Pdu.DigestLength : 0;
        TaskCompletionSource? done = null;
        var sent = 0;
        while (sent < r2t.Length)
        {
            var chunk = Math.Min(r2t.Length - sent, MaxH2CData);
            var last = sent + chunk == r2t.Length;
            var plen = pdo + chunk + digest;
            var flags = (_headerDigest ? PduFlags.HeaderDigest : 0) | (_dataDigest ? PduFlags.DataDigest : 0) | (last ? PduFlags.LastPdu : 0);
            var payload = data.Slice(r2t.Offset + sent, chunk);
            var copy = chunk <= SendQueue.CopyLimit || !MemoryMarshal.TryGetArray(payload, out _);
            var buffer = ArrayPool<byte>.Shared.Rent(copy ? plen : pdo + digest);
            var header = buffer.AsSpan(0, pdo);
            header.Clear();
            Pdu.WriteH2CData(header, flags, pdo, plen, r2t.Cid, r2t.Ttag, r2t.Offset + sent, chunk);
            if (_headerDigest)
            {
                Pdu.WriteDigest(header[hlen..], header[..hlen]);
            }
            if (copy)
            {
                payload.Span.CopyTo(buffer.AsSpan(pdo));
                if (_dataDigest)
                {
                    Pdu.WriteDigest(buffer.AsSpan(pdo + chunk), payload.Span);
                }
                _sendQueue.Enqueue(buffer, plen, last ? done : null);
            }
            else
            {
                if (_dataDigest)
                {
                    Pdu.WriteDigest(buffer.AsSpan(pdo), payload.Span);
                }
                MemoryMarshal.TryGetArray(payload, out var borrowed);
                done ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _sendQueue.Enqueue(buffer, pdo, borrowed, digest, last ? done : null);
            }
            sent += chunk;
        }
        return done?.Task;
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var sent = await _socket.SendAsync(data, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>
    /// The PDUs waiting for the socket, sent by whichever caller finds no send running: under load
    /// many PDUs leave in one sendmsg, when idle each leaves at once. Nobody waits for a send to
    /// finish (a failed send fails the connection, and with it every command in flight), except a
    /// write whose data is sent from the caller's memory.
    /// </summary>
    private sealed class SendQueue
    {
        /// <summary>Data chunks up to this size are copied into the PDU buffer; larger ones are sent from the caller's memory.</summary>
        public const int CopyLimit = 16384 + 128;

        private readonly Socket _socket;
        private readonly Action<Exception> _fail;
        private readonly object _gate = new();
        private List<ArraySegment<byte>> _queued = [];
        private List<ArraySegment<byte>> _batch = [];
        private List<byte[]> _queuedOwned = [];
        private List<byte[]> _batchOwned = [];
        private List<TaskCompletionSource> _queuedDone = [];
        private List<TaskCompletionSource> _batchDone = [];
        private bool _sending;
        private bool _failed;

        public SendQueue(Socket socket, Action<Exception> fail)
        {
            _socket = socket;
            _fail = fail;
        }

        /// <summary>Queues a whole PDU built in a pooled array, returned to the pool once sent;
        /// <paramref name="done"/> completes then (or on failure).</summary>
        public void Enqueue(byte[] owned, int length, TaskCompletionSource? done = null) =>
            Enqueue(owned, done, new ArraySegment<byte>(owned, 0, length), default, default);

        /// <summary>Queues a PDU whose data is borrowed: header (and data digest after
        /// <paramref name="headerLength"/>) in a pooled array, the data from the caller's memory.</summary>
        public void Enqueue(byte[] owned, int headerLength, ArraySegment<byte> data, int digestLength, TaskCompletionSource? done) =>
            Enqueue(owned, done, new ArraySegment<byte>(owned, 0, headerLength), data,
                digestLength > 0 ? new ArraySegment<byte>(owned, headerLength, digestLength) : default);

        /// <summary>Queues up to three pieces of one PDU (a default segment is left out) and starts the pump if idle.</summary>
        private void Enqueue(byte[] owned, TaskCompletionSource? done, ArraySegment<byte> first, ArraySegment<byte> second, ArraySegment<byte> third)
        {
            bool start;
            lock (_gate)
            {
                if (_failed)
                {
                    ArrayPool<byte>.Shared.Return(owned);
                    done?.TrySetResult();
                    return;
                }
                _queued.Add(first);
                if (second.Array is not null)
                {
                    _queued.Add(second);
                }
                if (third.Array is not null)
                {
                    _queued.Add(third);
                }
                _queuedOwned.Add(owned);
                if (done is not null)
                {
                    _queuedDone.Add(done);
                }
                start = !_sending;
                _sending = true;
            }
            if (start)
            {
                _ = PumpAsync();
            }
        }

        /// <summary>Sends batches until the queue is empty. Only one pump runs at a time (<c>_sending</c>),
        /// and only it touches the batch lists.</summary>
        private async Task PumpAsync()
        {
            while (true)
            {
                lock (_gate)
                {
                    if (_failed)
                    {
                        ReleaseQueuedLocked();
                    }
                    if (_failed || _queued.Count == 0)
                    {
                        _sending = false;
                        return;
                    }
                    (_queued, _batch) = (_batch, _queued);
                    (_queuedOwned, _batchOwned) = (_batchOwned, _queuedOwned);
                    (_queuedDone, _batchDone) = (_batchDone, _queuedDone);
                }
                try
                {
                    await SendBatchAsync(_batch).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    lock (_gate)
                    {
                        _failed = true;
                    }
                    _fail(e);
                }
                finally
                {
                    foreach (var owned in _batchOwned)
                    {
                        ArrayPool<byte>.Shared.Return(owned);
                    }
                    foreach (var done in _batchDone)
                    {
                        done.TrySetResult();
                    }
                    _batch.Clear();
                    _batchOwned.Clear();
                    _batchDone.Clear();
                }
            }
        }

        private void ReleaseQueuedLocked()
        {
            foreach (var owned in _queuedOwned)
            {
                ArrayPool<byte>.Shared.Return(owned);
            }
            foreach (var done in _queuedDone)
            {
                done.TrySetResult();
            }
            _queued.Clear();
            _queuedOwned.Clear();
            _queuedDone.Clear();
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        private async ValueTask SendBatchAsync(List<ArraySegment<byte>> batch)
        {
            var total = 0L;
            foreach (var segment in batch)
            {
                total += segment.Count;
            }
            var sent = (long)await _socket.SendAsync(batch, SocketFlags.None).ConfigureAwait(false);
            if (sent == total)
            {
                return;
            }
            // A partial send: the rest, segment by segment.
            foreach (var segment in batch)
            {
                if (sent >= segment.Count)
                {
                    sent -= segment.Count;
                    continue;
                }
                var rest = segment.AsMemory((int)sent);
                sent = 0;
                while (!rest.IsEmpty)
                {
                    var n = await _socket.SendAsync(rest, SocketFlags.None).ConfigureAwait(false);
                    rest = rest[n..];
                }
            }
        }

        /// <summary>After a failure: nothing more is sent; queued buffers go back to the pool now,
        /// or when the running pump comes back.</summary>
        public void Fail()
        {
            lock (_gate)
            {
                _failed = true;
                if (!_sending)
                {
                    ReleaseQueuedLocked();
                }
            }
        }
    }

    // ---------------------------------------------------------------- receiving

    private async Task ReceiveLoopAsync()
    {
        try
        {
            while (true)
            {
                await ReceivePduAsync().ConfigureAwait(false);
            }
        }
        catch (NvmeTransportException e)
        {
            FailConnection(e);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            FailConnection(new NvmeTransportException(Errno.EIO, $"{Label}: the connection broke: {e.Message}", e));
        }
        catch (Exception e)
        {
            FailConnection(new NvmeTransportException(Errno.EIO, $"{Label}: receive loop failed: {e.Message}", e));
        }
    }

    private async ValueTask ReceivePduAsync()
    {
        var header = _receiveHeader;
        await _reader.ReadExactAsync(header.AsMemory(0, Pdu.CommonHeaderLength), atPduStart: true, CancellationToken.None).ConfigureAwait(false);
        var type = (PduType)header[0];
        var flags = (PduFlags)header[1];
        var hlen = header[2];
        var pdo = header[3];
        var plen = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4));
        var expectedHlen = Pdu.HeaderLength(type);
        if (type is not (PduType.CapsuleResp or PduType.C2HData or PduType.R2T or PduType.C2HTermReq))
        {
            throw Protocol($"unexpected PDU type 0x{(byte)type:x2} from the target");
        }
        if (hlen != expectedHlen)
        {
            throw Protocol($"{type} PDU with HLEN {hlen}, expected {expectedHlen}");
        }
        if (type == PduType.C2HTermReq)
        {
            await ReceiveTermReqAsync(plen).ConfigureAwait(false);
            return;
        }
        var headerDigest = _headerDigest;
        if (((flags & PduFlags.HeaderDigest) != 0) != headerDigest)
        {
            throw Protocol($"{type} PDU header digest flag does not match what was negotiated ({headerDigest})");
        }
        var headerEnd = hlen + (headerDigest ? Pdu.DigestLength : 0);
        await _reader.ReadExactAsync(header.AsMemory(Pdu.CommonHeaderLength, headerEnd - Pdu.CommonHeaderLength), atPduStart: false, CancellationToken.None)
            .ConfigureAwait(false);
        if (headerDigest && !Pdu.DigestMatches(header.AsSpan(hlen, Pdu.DigestLength), header.AsSpan(0, hlen)))
        {
            throw new NvmeTransportException(Errno.EIO,
                $"{Label}: header digest mismatch on a {type} PDU (got 0x{BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(hlen)):x8}, computed 0x{Crc32C.Compute(header.AsSpan(0, hlen)):x8})");
        }
        switch (type)
        {
            case PduType.CapsuleResp:
                if (plen != headerEnd)
                {
                    throw Protocol($"CapsuleResp with PLEN {plen}, expected {headerEnd}");
                }
                OnCapsuleResp(NvmeCompletion.Parse(header.AsSpan(Pdu.CommonHeaderLength, NvmeCompletion.Size)));
                break;
            case PduType.R2T:
                if (plen != headerEnd)
                {
                    throw Protocol($"R2T with PLEN {plen}, expected {headerEnd}");
                }
                OnR2T(R2T.Parse(header));
                break;
            case PduType.C2HData:
                await ReceiveC2HDataAsync(flags, pdo, plen, headerEnd, C2HData.Parse(header)).ConfigureAwait(false);
                break;
        }
    }

    private NvmeTransportException Protocol(string message) =>
        new(Errno.EPROTO, $"{Label}: protocol error: {message}");

    private async ValueTask ReceiveTermReqAsync(uint plen)
    {
        if (plen < Pdu.TermReqHeaderLength || plen > Pdu.MaxTermReqLength)
        {
            throw Protocol($"C2HTermReq with PLEN {plen}");
        }
        await _reader.ReadExactAsync(_receiveHeader.AsMemory(Pdu.CommonHeaderLength, (int)plen - Pdu.CommonHeaderLength), atPduStart: false,
            CancellationToken.None).ConfigureAwait(false);
        var fes = BinaryPrimitives.ReadUInt16LittleEndian(_receiveHeader.AsSpan(8));
        var fei = BinaryPrimitives.ReadUInt32LittleEndian(_receiveHeader.AsSpan(10));
        throw new NvmeTransportException(Errno.EIO,
            $"{Label}: the target terminated the connection (C2HTermReq): {Pdu.DescribeFatalErrorStatus(fes)}, field info 0x{fei:x}");
    }

    private Slot FindInFlight(ushort cid, string what)
    {
        if (cid >= _slots.Length || !_slots[cid].InFlight)
        {
            throw Protocol($"{what} for cid {cid}, which is not in flight");
        }
        return _slots[cid];
    }

    private void OnCapsuleResp(NvmeCompletion completion)
    {
        var slot = FindInFlight(completion.Cid, "CapsuleResp");
        if (slot.DataDigestError is { } digestError)
        {
            slot.TryFail(digestError);
            return;
        }
        if (completion.IsSuccess && !slot.DataIn.IsEmpty && slot.BytesReceived != slot.DataIn.Length)
        {
            slot.TryFail(new NvmeTransportException(Errno.EIO,
                $"{Label}: {slot.Command.Name} (cid {slot.Cid}) completed with {slot.BytesReceived} of {slot.DataIn.Length} bytes of data"));
            return;
        }
        slot.TryComplete(completion);
    }

    private void OnR2T(R2T r2t)
    {
        var slot = FindInFlight(r2t.Cid, "R2T");
        if (slot.DataOut.IsEmpty || r2t.Length == 0 || (long)r2t.Offset + r2t.Length > slot.DataOut.Length)
        {
            throw Protocol($"R2T for cid {r2t.Cid} asks for bytes {r2t.Offset}+{r2t.Length} of a {slot.DataOut.Length}-byte transfer");
        }
        // The command waits for a borrowed-data send to finish before it returns.
        slot.DataSend = QueueH2CData(slot.DataOut, r2t);
    }

    private async ValueTask ReceiveC2HDataAsync(PduFlags flags, int pdo, uint plen, int headerEnd, C2HData c2h)
    {
        var slot = FindInFlight(c2h.Cid, "C2HData");
        var digest = (flags & PduFlags.DataDigest) != 0;
        if (digest != _dataDigest)
        {
            throw Protocol($"C2HData data digest flag does not match what was negotiated ({_dataDigest})");
        }
        if (pdo < headerEnd || plen != (long)pdo + c2h.Length + (digest ? Pdu.DigestLength : 0))
        {
            throw Protocol($"C2HData with PDO {pdo}, PLEN {plen} and DATAL {c2h.Length} do not add up");
        }
        if ((long)c2h.Offset + c2h.Length > slot.DataIn.Length)
        {
            throw Protocol($"C2HData for cid {c2h.Cid} carries bytes {c2h.Offset}+{c2h.Length} of a {slot.DataIn.Length}-byte read");
        }
        if (pdo > headerEnd)
        {
            await _reader.SkipAsync(pdo - headerEnd).ConfigureAwait(false);
        }
        var destination = slot.DataIn.Slice(c2h.Offset, c2h.Length);
        await _reader.ReadExactAsync(destination, atPduStart: false, CancellationToken.None).ConfigureAwait(false);
        slot.BytesReceived += c2h.Length;
        if (digest)
        {
            await _reader.ReadExactAsync(_digestScratch, atPduStart: false, CancellationToken.None).ConfigureAwait(false);
            if (!Pdu.DigestMatches(_digestScratch, destination.Span))
            {
                // Non-fatal in the spec: the command fails, the connection stays (section 10).
                slot.DataDigestError ??= new NvmeTransportException(Errno.EIO,
                    $"{Label}: data digest mismatch on {slot.Command.Name} (cid {slot.Cid}) bytes {c2h.Offset}+{c2h.Length}: " +
                    $"got 0x{BinaryPrimitives.ReadUInt32LittleEndian(_digestScratch):x8}, computed 0x{Crc32C.Compute(destination.Span):x8}");
            }
        }
        if ((flags & PduFlags.Success) != 0)
        {
            if ((flags & PduFlags.LastPdu) == 0)
            {
                throw Protocol("C2HData with SUCCESS but without LAST_PDU");
            }
            OnCapsuleResp(NvmeCompletion.ImpliedSuccess(c2h.Cid));
        }
    }

    // ---------------------------------------------------------------- failure

    private void CheckTimeouts()
    {
        if (Volatile.Read(ref _fault) is not null)
        {
            return;
        }
        var now = Environment.TickCount64;
        foreach (var slot in _slots)
        {
            if (slot.InFlight && now > slot.Deadline)
            {
                var timeout = new NvmeTransportException(Errno.ETIMEDOUT,
                    $"{Label}: {slot.Command.Name} (cid {slot.Cid}) got no completion within {slot.TimeoutMs / 1000.0:0.###} s; the connection is dropped");
                FailConnection(timeout);
                return;
            }
        }
    }

    /// <summary>Makes the queue unusable: closes the socket and fails every command in flight with <paramref name="cause"/>.</summary>
    public void FailConnection(Exception cause)
    {
        if (Interlocked.CompareExchange(ref _fault, cause, null) is not null)
        {
            return;
        }
        _timeoutTimer?.Dispose();
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        _socket.Dispose();
        _sendQueue.Fail();
        foreach (var slot in _slots)
        {
            slot.TryFail(cause);
        }
        Faulted?.Invoke(this, cause);
    }

    /// <summary>Closes the connection (no Disconnect command: nvmet, like the Linux host, just closes).</summary>
    public async ValueTask DisposeAsync()
    {
        FailConnection(new NvmeTransportException(Errno.EIO, $"{Label}: the queue was closed"));
        try
        {
            await _receiveLoop.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The loop reports through FailConnection; nothing more to do here.
        }
    }

    /// <summary>One command slot; its index is the CID. Reused, so a command allocates no completion object.</summary>
    private sealed class Slot : IValueTaskSource<NvmeCompletion>
    {
        private ManualResetValueTaskSourceCore<NvmeCompletion> _core = new() { RunContinuationsAsynchronously = true };
        private int _state; // 0 free, 1 in flight, 2 completed

        public Slot(ushort cid) => Cid = cid;

        public ushort Cid { get; }

        public NvmeCommand Command;
        public ReadOnlyMemory<byte> DataOut;
        public Memory<byte> DataIn;
        public long Deadline;
        public long TimeoutMs;
        public int BytesReceived;
        public NvmeTransportException? DataDigestError;
        public Task? DataSend;

        public short Version => _core.Version;

        public bool InFlight => Volatile.Read(ref _state) == 1;

        public void Start(NvmeCommand command, ReadOnlyMemory<byte> dataOut, Memory<byte> dataIn, long deadline, long timeoutMs)
        {
            TimeoutMs = timeoutMs;
            Command = command;
            DataOut = dataOut;
            DataIn = dataIn;
            Deadline = deadline;
            BytesReceived = 0;
            DataDigestError = null;
            DataSend = null;
            Volatile.Write(ref _state, 1);
        }

        public void TryComplete(NvmeCompletion completion)
        {
            if (Interlocked.CompareExchange(ref _state, 2, 1) == 1)
            {
                _core.SetResult(completion);
            }
        }

        public void TryFail(Exception error)
        {
            if (Interlocked.CompareExchange(ref _state, 2, 1) == 1)
            {
                _core.SetException(error);
            }
        }

        public void Release()
        {
            DataOut = default;
            DataIn = default;
            _core.Reset();
            Volatile.Write(ref _state, 0);
        }

        public NvmeCompletion GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>Buffered socket reads: small headers come out of a 64 KiB buffer; large payloads
    /// go straight from the socket into their destination.</summary>
    private sealed class SocketReader
    {
        private readonly Socket _socket;
        private readonly string _label;
        private readonly byte[] _buffer = new byte[64 * 1024];
        private readonly byte[] _skip = new byte[128];
        private int _start;
        private int _end;

        public SocketReader(Socket socket, string label)
        {
            _socket = socket;
            _label = label;
        }

        public async ValueTask ReadExactAsync(Memory<byte> destination, bool atPduStart, CancellationToken cancellationToken)
        {
            var total = destination.Length;
            var available = _end - _start;
            if (available > 0)
            {
                var n = Math.Min(available, destination.Length);
                _buffer.AsSpan(_start, n).CopyTo(destination.Span);
                _start += n;
                destination = destination[n..];
            }
            while (!destination.IsEmpty)
            {
                int received;
                if (destination.Length >= _buffer.Length / 2)
                {
                    received = await _socket.ReceiveAsync(destination, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    destination = destination[received..];
                }
                else
                {
                    received = await _socket.ReceiveAsync(_buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    var n = Math.Min(received, destination.Length);
                    _buffer.AsSpan(0, n).CopyTo(destination.Span);
                    _start = n;
                    _end = received;
                    destination = destination[n..];
                }
                if (received == 0)
                {
                    var got = total - destination.Length;
                    throw new NvmeTransportException(Errno.EIO, atPduStart && got == 0
                        ? $"{_label}: the target closed the connection"
                        : $"{_label}: the target closed the connection in the middle of a PDU (truncated: {got} of {total} bytes of a read)");
                }
            }
        }

        /// <summary>Skips PDU padding (CPDA/HPDA alignment: under 128 bytes).</summary>
        public async ValueTask SkipAsync(int count)
        {
            while (count > 0)
            {
                var n = Math.Min(count, _skip.Length);
                await ReadExactAsync(_skip.AsMemory(0, n), atPduStart: false, CancellationToken.None).ConfigureAwait(false);
                count -= n;
            }
        }
    }
}
