namespace ParaFS.Client;

/// <summary>
/// A handle's read-ahead: at most two windows that continue each other, so that a sequential
/// reader always finds the rest of the current window while the next one fills. A window goes
/// once the reader is past it; a read elsewhere drops both.
/// </summary>
internal sealed class ReadAheadWindows
{
    private readonly Lock _lock = new();
    private ReadAheadBuffer? _older;
    private ReadAheadBuffer? _newer;
    private int _served;

    /// <summary>How many reads were served from read-ahead.</summary>
    public int Served => Volatile.Read(ref _served);

    public void NoteServed() => Interlocked.Increment(ref _served);

    /// <summary>The window that holds all of [offset, offset + length), with a reference the caller releases; null when none does.</summary>
    public ReadAheadBuffer? Find(long offset, int length)
    {
        lock (_lock)
        {
            foreach (var window in (ReadOnlySpan<ReadAheadBuffer?>)[_older, _newer])
            {
                if (window is not null && window.Covers(offset, length) && window.TryAddReference())
                {
                    return window;
                }
            }

            return null;
        }
    }

    /// <summary>
    /// Called with where the reader goes next: drops windows behind it (or both, when it left
    /// them), and returns where the next window should start when less than half a window
    /// remains ahead of it, or -1 when enough is ahead.
    /// </summary>
    public long NextStart(long from, int windowBytes)
    {
        lock (_lock)
        {
            if (_older is { } older && older.End <= from)
            {
                older.Release();
                _older = _newer;
                _newer = null;
            }

            var last = _newer ?? _older;
            if (last is null)
            {
                return from;
            }

            if (from < (_older?.Start ?? last.Start) || from > last.End)
            {
                DropLocked();
                return from;
            }

            if (from < last.End - (windowBytes / 2) || _newer is not null)
            {
                // Enough ahead, or two windows already: the older one goes once the reader is past it.
                return -1;
            }

            return last.End;
        }
    }

    /// <summary>Adds a window that starts where the last one ends (or the first one).</summary>
    public void Add(ReadAheadBuffer window)
    {
        lock (_lock)
        {
            if (_older is null)
            {
                _older = window;
            }
            else if (_newer is null && window.Start == _older.End)
            {
                _newer = window;
            }
            else
            {
                // Another read moved the windows meanwhile: this one is not needed.
                window.Release();
            }
        }
    }

    public void Drop()
    {
        lock (_lock)
        {
            DropLocked();
        }
    }

    private void DropLocked()
    {
        _older?.Release();
        _newer?.Release();
        _older = null;
        _newer = null;
    }
}
