using ParaFS.Common;
using ParaFS.Protocol.Mds;

namespace ParaFS.Client;

/// <summary>
/// An open file: its MDS handle, layout and what this client has done to it that the MDS does
/// not know yet (size extension, mtime). Writes and reads through it run in parallel.
/// </summary>
public sealed class FileHandle
{
    private readonly object _lock = new();
    private long _size;
    private long _reportedSize;
    private long _mtimeNs;
    private bool _dirty;
    private long _lastReadEnd = -1;
    private int _sequentialReads;

    internal FileHandle(ulong handle, Attr attr, Layout layout, uint flags, int perFileRequests)
    {
        Handle = handle;
        Ino = attr.Ino;
        Flags = flags;
        OpenedMtimeNs = attr.MtimeNs;
        _size = (long)attr.Size;
        _reportedSize = _size;
        SetLayout(layout);
        Window = new SemaphoreSlim(perFileRequests);
    }

    /// <summary>Budget of write-behind bytes, in units of <see cref="ParaFsClient.WriteBudgetUnit"/>.</summary>
    internal SemaphoreSlim? WriteBudget { get; set; }

    public ulong Handle { get; }

    public ulong Ino { get; }

    public uint Flags { get; }

    /// <summary>The file's mtime as the MDS had it when this handle was opened.</summary>
    public long OpenedMtimeNs { get; }

    /// <summary>The layout I/O goes to, with a migration's pending layout when there is one; replaced whole, read once per request.</summary>
    internal LayoutView View { get; private set; } = null!;

    public Layout Layout => View.Layout;

    internal StripeMap Map => View.Map;

    internal SemaphoreSlim Window { get; }

    /// <summary>Set by a layout-changed callback: the layout is fetched again before the next I/O.</summary>
    internal bool LayoutStale { get; set; }

    internal ReadAheadWindows ReadAhead { get; } = new();

    /// <summary>The size as this client sees it: what the MDS said, extended by this client's writes.</summary>
    public long Size
    {
        get
        {
            lock (_lock)
            {
                return _size;
            }
        }
    }

    internal bool IsAppend => (Flags & 0x400) != 0;

    internal bool IsWritable => (Flags & 3) != 0;

    internal void SetLayout(Layout layout)
    {
        View = new LayoutView(layout);
        LayoutStale = false;
    }

    internal void Wrote(long end, long mtimeNs)
    {
        lock (_lock)
        {
            if (end > _size)
            {
                _size = end;
            }

            _mtimeNs = Math.Max(_mtimeNs, mtimeNs);
            _dirty = true;
        }
    }

    /// <summary>What the MDS has not been told yet; null when nothing.</summary>
    internal SizeReport? PendingReport()
    {
        lock (_lock)
        {
            return _dirty ? new SizeReport { Ino = Ino, Size = (ulong)_size, MtimeNs = _mtimeNs } : null;
        }
    }

    internal void Reported(SizeReport report)
    {
        lock (_lock)
        {
            _reportedSize = Math.Max(_reportedSize, (long)report.Size);
            if (_size <= _reportedSize && _mtimeNs <= report.MtimeNs)
            {
                _dirty = false;
            }
        }
    }

    /// <summary>After a truncate or a fresh getattr: the MDS's size is the truth again.</summary>
    internal void ResetSize(long size)
    {
        lock (_lock)
        {
            _size = size;
            _reportedSize = size;
            _dirty = false;
        }
    }

    internal void LearnSize(long size)
    {
        lock (_lock)
        {
            if (size > _size)
            {
                _size = size;
            }
        }
    }

    /// <summary>Tracks whether reads go forward in order; returns how many sequential reads in a row.</summary>
    internal int NoteRead(long offset, int length)
    {
        lock (_lock)
        {
            _sequentialReads = offset == _lastReadEnd ? _sequentialReads + 1 : 0;
            _lastReadEnd = offset + length;
            return _sequentialReads;
        }
    }

    internal OpenHandle ToOpenHandle() => new() { Handle = Handle, Ino = Ino, Flags = Flags, LayoutGeneration = View.Layout.Generation };
}

/// <summary>A layout and its stripe map, and those of the layout a migration is filling (writes go to both).</summary>
internal sealed class LayoutView
{
    public LayoutView(Layout layout)
    {
        Layout = layout;
        Map = MapOf(layout);
        Pending = layout.Pending;
        PendingMap = Pending is null ? default : MapOf(Pending);
    }

    public Layout Layout { get; }

    public StripeMap Map { get; }

    public Layout? Pending { get; }

    public StripeMap PendingMap { get; }

    public static StripeMap MapOf(Layout layout) => layout.StripeCount == 0 ? default : new StripeMap((int)layout.StripeSize, (int)layout.StripeCount);
}
