using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using ParaFS.Fuse.Interop;
using ParaFS.Fuse.Protocol;

namespace ParaFS.Fuse;

/// <summary>
/// Cache invalidation sent to the kernel (reference 1.8). A call only queues the notification; a
/// dedicated thread writes the queue in order, with unique = 0, once INIT has been answered. So
/// a handler may call these freely: the kernel's INVAL_ENTRY takes the parent directory's lock,
/// which a request in that directory may hold while its handler runs, and the handler never
/// waits for the write (reference 1.8, deadlock rule).
/// </summary>
public sealed partial class FuseSession
{
    private readonly BlockingCollection<(FuseNotifyCode Code, byte[] Payload)> _notifications = new();
    private readonly ManualResetEventSlim _initDone = new();
    private Thread? _notifier;

    /// <summary>
    /// FUSE_NOTIFY_INVAL_INODE: drop the kernel's cached attributes of <paramref name="nodeId"/>
    /// and its cached data from <paramref name="offset"/> for <paramref name="length"/> bytes
    /// (0 = to the end; a negative offset drops attributes only). Queued, not awaited; a node the
    /// kernel does not cache is not an error.
    /// </summary>
    public void InvalidateInode(ulong nodeId, long offset = 0, long length = 0)
    {
        var payload = new byte[Unsafe.SizeOf<FuseNotifyInvalInodeOut>()];
        var body = new FuseNotifyInvalInodeOut { Ino = nodeId, Off = offset, Len = length };
        MemoryMarshal.Write(payload, in body);
        Enqueue(FuseNotifyCode.InvalInode, payload);
    }

    /// <summary>
    /// FUSE_NOTIFY_INVAL_ENTRY: drop the kernel's cached entry <paramref name="name"/> in
    /// <paramref name="parentNodeId"/> (and its negative entry), so the next access looks it up
    /// again. Queued, not awaited.
    /// </summary>
    public void InvalidateEntry(ulong parentNodeId, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var nameLength = Encoding.UTF8.GetByteCount(name);
        var headerSize = Unsafe.SizeOf<FuseNotifyInvalEntryOut>();

        // The kernel checks the size exactly: struct + name + NUL.
        var payload = new byte[headerSize + nameLength + 1];
        var body = new FuseNotifyInvalEntryOut { Parent = parentNodeId, NameLen = (uint)nameLength };
        MemoryMarshal.Write(payload, in body);
        Encoding.UTF8.GetBytes(name, payload.AsSpan(headerSize));
        Enqueue(FuseNotifyCode.InvalEntry, payload);
    }

    private void Enqueue(FuseNotifyCode code, byte[] payload)
    {
        try
        {
            _notifications.Add((code, payload));
        }
        catch (InvalidOperationException)
        {
            // The session is over: there is no cache left to invalidate.
        }
    }

    private void StartNotifier()
    {
        _notifier = new Thread(NotifierLoop) { IsBackground = true, Name = "fuse-notifier" };
        _notifier.Start();
    }

    private void StopNotifier()
    {
        _notifications.CompleteAdding();
        _initDone.Set();
        _notifier?.Join();
    }

    private void NotifierLoop()
    {
        Span<byte> header = stackalloc byte[16];
        foreach (var (code, payload) in _notifications.GetConsumingEnumerable())
        {
            _initDone.Wait();
            if (!_initialized)
            {
                continue;
            }

            var outHeader = new FuseOutHeader { Len = (uint)(header.Length + payload.Length), Error = (int)code, Unique = 0 };
            MemoryMarshal.Write(header, in outHeader);
            var errno = _channel.Write(header, payload);

            // ENOENT: the kernel does not cache that inode or entry; ENODEV: the session is over.
            if (errno != 0 && errno != Errno.ENOENT && errno != Errno.ENODEV)
            {
                Log.NotifyFailed(_logger, code.ToString(), $"{Libc.Describe(errno)} (errno {errno})");
            }
        }
    }
}
