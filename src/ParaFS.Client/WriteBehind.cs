using ParaFS.Common;

namespace ParaFS.Client;

/// <summary>
/// The writes of one inode that have been accepted but are still on their way to the OSTs.
/// A write that overlaps one in flight waits for it (so overlapping writes land in order);
/// writes to other ranges go in parallel. A failure is kept and returned by the next write,
/// flush, fsync or close of the inode, then cleared (as the kernel reports writeback errors).
/// </summary>
internal sealed class WriteBehind
{
    private readonly object _lock = new();
    private readonly List<(long Start, long End, Task Done)> _inFlight = [];
    private ParaFsException? _failure;

    /// <summary>Registers a write of [start, end) and returns the writes it must wait for.</summary>
    public Task[] Begin(long start, long end, Task done)
    {
        lock (_lock)
        {
            var overlapping = _inFlight.Where(w => w.Start < end && start < w.End).Select(w => w.Done).ToArray();
            _inFlight.Add((start, end, done));
            return overlapping;
        }
    }

    public void End(Task done, ParaFsException? failure)
    {
        lock (_lock)
        {
            _inFlight.RemoveAll(w => w.Done == done);
            if (failure is not null)
            {
                _failure ??= failure;
            }
        }
    }

    public bool IsIdle
    {
        get
        {
            lock (_lock)
            {
                return _inFlight.Count == 0;
            }
        }
    }

    /// <summary>Waits until every write accepted so far is on its OST (or failed).</summary>
    public async Task DrainAsync()
    {
        while (true)
        {
            Task[] pending;
            lock (_lock)
            {
                if (_inFlight.Count == 0)
                {
                    return;
                }

                pending = [.. _inFlight.Select(w => w.Done)];
            }

            await Task.WhenAll(pending).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for the writes in flight now (not for those accepted after this call), ignoring their failures.</summary>
    public async Task WaitForCurrentAsync()
    {
        Task[] pending;
        lock (_lock)
        {
            pending = [.. _inFlight.Select(w => w.Done)];
        }

        try
        {
            await Task.WhenAll(pending).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ParaFsException or OperationCanceledException)
        {
            // A failed write is reported to its writer; here only its end matters.
        }
    }

    /// <summary>Throws (once) the failure of an earlier write-behind.</summary>
    public void ThrowIfFailed(ulong ino)
    {
        ParaFsException? failure;
        lock (_lock)
        {
            failure = _failure;
            _failure = null;
        }

        if (failure is not null)
        {
            throw new ParaFsException(failure.Errno, $"an earlier write to inode {ino} failed: {failure.Message}", failure);
        }
    }
}
