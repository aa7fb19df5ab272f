using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ParaFS.Fuse.Interop;
using ParaFS.Fuse.Mounting;
using ParaFS.Fuse.Protocol;
using ParaFS.Fuse.Session;
using ParaFS.Fuse.Transport;

namespace ParaFS.Fuse;

/// <summary>The reader threads, request ownership, interrupts and the orderly end of a session.</summary>
public sealed partial class FuseSession
{
    /// <summary>How long an INTERRUPT for a request not (yet) known waits before it is answered EAGAIN (reference 1.9).</summary>
    private static readonly TimeSpan InterruptRetryDelay = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// How long an interrupted request may still finish before it is cancelled. The kernel sends
    /// INTERRUPT for any signal to the caller, also one it handles and goes on after (SIGCHLD when
    /// a child exits, a runtime's own signals): a lookup or getattr that answers within this time
    /// answers as if nothing happened, where cancelling it at once would fail a stat(2) with EINTR,
    /// which few programs retry. A request that is still waiting (an MDS or OST that does not
    /// answer) is cancelled after it and answered EINTR, so Ctrl-C still ends it.
    /// </summary>
    internal static readonly TimeSpan DefaultInterruptGrace = TimeSpan.FromSeconds(1);

    /// <summary><see cref="DefaultInterruptGrace"/>; a test that must not depend on how soon the thread pool runs a continuation widens it.</summary>
    internal TimeSpan InterruptGrace { get; set; } = DefaultInterruptGrace;

    private readonly ConcurrentDictionary<ulong, CancellationTokenSource> _inFlight = new();
    private readonly TaskCompletionSource _readersDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IFuseFileSystem _fileSystem = null!;
    private int _readersRunning;
    private int _destroyed;

    // 1 for the readers, plus 1 per request (or deferred interrupt answer) in flight; 0 = drained.
    private int _pending = 1;
    private Exception? _fatal;

    private async Task RunCoreAsync(CancellationToken cancellationToken)
    {
        var channels = new List<IFuseChannel> { _channel };
        for (var i = 1; i < _readerCount; i++)
        {
            try
            {
                var clone = _channel.Clone();
                _clones.Add(clone);
                channels.Add(clone);
            }
            catch (IOException e)
            {
                Log.CloneFailed(_logger, e.Message);
                channels.Add(_channel);
            }
        }

        _readersRunning = channels.Count;
        for (var i = 0; i < channels.Count; i++)
        {
            new Thread(ReaderLoop) { IsBackground = true, Name = $"fuse-reader-{i}" }.Start(channels[i]);
        }

        StartNotifier();

        var stopRequested = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (cancellationToken.Register(() => stopRequested.TrySetResult()))
        using (_stop.Token.Register(() => stopRequested.TrySetResult()))
        {
            await Task.WhenAny(_readersDone.Task, stopRequested.Task).ConfigureAwait(false);
        }

        if (_readersDone.Task.IsCompleted && _fatal is null)
        {
            // The kernel ended the session (read returned ENODEV): unmounted, or aborted through
            // fusectl, which leaves a dead mount behind that only an unmount clears.
            if (MountPoint is not null && KernelMount.FindMount(MountPoint) == FileSystemType(_options))
            {
                await Task.Run(() => UnmountQuietly(lazy: true), CancellationToken.None).ConfigureAwait(false);
            }

            _mounted = false;
        }
        else
        {
            // Asked to stop, or a reader failed: unmount while the readers still serve what the
            // unmount itself sends, then wake the readers that still wait.
            await Task.Run(() => UnmountQuietly(lazy: false), CancellationToken.None).ConfigureAwait(false);
            _channel.Shutdown();
            await _readersDone.Task.ConfigureAwait(false);
        }

        foreach (var cancellation in _inFlight.Values)
        {
            await CancelQuietlyAsync(cancellation).ConfigureAwait(false);
        }

        if (Interlocked.Decrement(ref _pending) == 0)
        {
            _drained.TrySetResult();
        }

        await _drained.Task.ConfigureAwait(false);
        StopNotifier();
        DestroyOnce();

        if (_fatal is { } fatal)
        {
            throw new IOException($"the FUSE session at {MountPoint ?? "(channel)"} failed: {fatal.Message}", fatal);
        }
    }

    private void ReaderLoop(object? state)
    {
        var channel = (IFuseChannel)state!;
        try
        {
            while (true)
            {
                var request = RentRequest();
                int length;
                try
                {
                    length = channel.Read(request.Buffer);
                }
                catch
                {
                    ReturnRequest(request);
                    throw;
                }

                if (length == 0)
                {
                    ReturnRequest(request);
                    break;
                }

                Receive(channel, request, length);
            }
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _fatal, e, null);
            Log.ReaderFailed(_logger, e.Message);
            _stop.Cancel();
        }
        finally
        {
            if (Interlocked.Decrement(ref _readersRunning) == 0)
            {
                _readersDone.TrySetResult();
            }
        }
    }

    /// <summary>Takes ownership of <paramref name="request"/>: it is returned once answered.</summary>
    private void Receive(IFuseChannel channel, Request request, int length)
    {
        if (length < Request.InHeaderSize)
        {
            Log.Malformed(_logger, length);
            ReturnRequest(request);
            return;
        }

        request.Header = MemoryMarshal.Read<FuseInHeader>(request.Buffer);
        request.Length = length;
        request.Channel = channel;
        request.Cancellation = null;

        switch (request.Opcode)
        {
            case FuseOpcode.Forget:
            case FuseOpcode.BatchForget:
                DeliverForgets(request);
                ReturnRequest(request);
                return;
            case FuseOpcode.Interrupt:
                Interrupt(request);
                ReturnRequest(request);
                return;
            case FuseOpcode.Init:
                Initialize(request);
                ReturnRequest(request);
                return;
            case FuseOpcode.NotifyReply:
                // The kernel's answer to NOTIFY_RETRIEVE, which this library never sends; not answered.
                ReturnRequest(request);
                return;
        }

        Interlocked.Increment(ref _pending);
        var cancellation = new CancellationTokenSource();
        request.Cancellation = cancellation;
        _inFlight[request.Header.Unique] = cancellation;
        request.Begin();
        _ = ExecuteAsync(request);
    }

    private async Task ExecuteAsync(Request request)
    {
        try
        {
            await DispatchAsync(request).ConfigureAwait(false);
        }
        catch (FuseException e)
        {
            ReplyError(request, e.Errno is > 0 and < 512 ? e.Errno : Errno.EIO);
        }
        catch (OperationCanceledException) when (request.Cancellation!.IsCancellationRequested)
        {
            ReplyError(request, Errno.EINTR);
        }
        catch (Exception e)
        {
            Log.HandlerFailed(_logger, request.Opcode.ToString(), request.Header.NodeId, e.GetType().Name, e.Message);
            ReplyError(request, Errno.EIO);
        }
        finally
        {
            var cancellation = request.Cancellation!;
            _inFlight.TryRemove(request.Header.Unique, out _);
            cancellation.Dispose();
            request.Cancellation = null;

            // Back to the pool now, or when the handler's last retained lease goes.
            request.Release();
            CompletePending();
        }
    }

    private void CompletePending()
    {
        if (Interlocked.Decrement(ref _pending) == 0)
        {
            _drained.TrySetResult();
        }
    }

    /// <summary>
    /// FUSE_INTERRUPT (reference 1.9): cancel the named request's token; its handler's
    /// OperationCanceledException is answered EINTR. If that request is not known yet (another
    /// reader has it but not registered it) wait a moment and answer the INTERRUPT with EAGAIN,
    /// which makes the kernel queue it again.
    /// </summary>
    private void Interrupt(Request request)
    {
        ulong target;
        try
        {
            target = request.Arg<FuseInterruptIn>().Unique;
        }
        catch (FuseException)
        {
            Log.Malformed(_logger, request.Length);
            return;
        }

        if (TryCancel(target))
        {
            return;
        }

        Interlocked.Increment(ref _pending);
        _ = AnswerInterruptLaterAsync(request.Channel, request.Header.Unique, target);
    }

    private async Task AnswerInterruptLaterAsync(IFuseChannel channel, ulong interruptUnique, ulong target)
    {
        try
        {
            await Task.Delay(InterruptRetryDelay).ConfigureAwait(false);
            if (!TryCancel(target))
            {
                Send(channel, interruptUnique, -Errno.EAGAIN, [], FuseOpcode.Interrupt);
            }
        }
        finally
        {
            CompletePending();
        }
    }

    private bool TryCancel(ulong unique)
    {
        if (!_inFlight.TryGetValue(unique, out var cancellation))
        {
            return false;
        }

        // After the grace, from a timer: the handler's continuations do not run on this reader.
        try
        {
            cancellation.CancelAfter(InterruptGrace);
        }
        catch (ObjectDisposedException)
        {
            // The request finished meanwhile.
        }

        return true;
    }

    private static async Task CancelQuietlyAsync(CancellationTokenSource cancellation)
    {
        try
        {
            await cancellation.CancelAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException)
        {
            // The request finished meanwhile.
        }
    }

    /// <summary>FORGET / BATCH_FORGET: handed to the file system with exact counts and never answered.</summary>
    private void DeliverForgets(Request request)
    {
        try
        {
            if (request.Opcode == FuseOpcode.Forget)
            {
                _fileSystem.Forget(request.Header.NodeId, request.Arg<FuseForgetIn>().NLookup);
                return;
            }

            var count = request.Arg<FuseBatchForgetIn>().Count;
            var offset = Unsafe.SizeOf<FuseBatchForgetIn>();
            var size = Unsafe.SizeOf<FuseForgetOne>();
            for (var i = 0; i < count; i++)
            {
                var one = request.Arg<FuseForgetOne>(offset + (i * size));
                _fileSystem.Forget(one.NodeId, one.NLookup);
            }
        }
        catch (Exception e)
        {
            Log.CallbackFailed(_logger, "Forget", e.GetType().Name, e.Message);
        }
    }

    private void DestroyOnce()
    {
        if (!_initialized || Interlocked.Exchange(ref _destroyed, 1) != 0)
        {
            return;
        }

        try
        {
            _fileSystem.Destroy();
        }
        catch (Exception e)
        {
            Log.CallbackFailed(_logger, "Destroy", e.GetType().Name, e.Message);
        }
    }

    private Request RentRequest()
    {
        if (_freeRequests.TryPop(out var request))
        {
            Interlocked.Decrement(ref _freeCount);
            return request;
        }

        return new Request(_bufferSize, ReturnRequest);
    }

    /// <summary>Keeps a few spare buffers (two per reader, plus some) and frees the rest.</summary>
    private void ReturnRequest(Request request)
    {
        if (Interlocked.Increment(ref _freeCount) <= (_readerCount * 2) + 8 && _disposed == 0)
        {
            _freeRequests.Push(request);
            return;
        }

        Interlocked.Decrement(ref _freeCount);
        ((IDisposable)request).Dispose();
    }
}
