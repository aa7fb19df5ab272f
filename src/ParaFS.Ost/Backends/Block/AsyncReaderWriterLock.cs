namespace ParaFS.Ost.Backends.Block;

/// <summary>
/// Many holders in shared mode or one in exclusive mode, awaited without blocking a thread.
/// Writers waiting keep new shared holders out, so a delete is not starved by a stream of writes.
/// </summary>
internal sealed class AsyncReaderWriterLock
{
    private readonly object _gate = new();
    private readonly Queue<TaskCompletionSource> _exclusiveWaiters = new();
    private readonly List<TaskCompletionSource> _sharedWaiters = [];
    private int _shared;
    private bool _exclusive;

    public Task EnterSharedAsync()
    {
        lock (_gate)
        {
            if (!_exclusive && _exclusiveWaiters.Count == 0)
            {
                _shared++;
                return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _sharedWaiters.Add(waiter);
            return waiter.Task;
        }
    }

    public void ExitShared()
    {
        lock (_gate)
        {
            if (--_shared == 0 && _exclusiveWaiters.Count > 0)
            {
                _exclusive = true;
                _exclusiveWaiters.Dequeue().SetResult();
            }
        }
    }

    public Task EnterExclusiveAsync()
    {
        lock (_gate)
        {
            if (!_exclusive && _shared == 0)
            {
                _exclusive = true;
                return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _exclusiveWaiters.Enqueue(waiter);
            return waiter.Task;
        }
    }

    public void ExitExclusive()
    {
        lock (_gate)
        {
            if (_exclusiveWaiters.Count > 0)
            {
                _exclusiveWaiters.Dequeue().SetResult();
                return;
            }

            _exclusive = false;
            _shared += _sharedWaiters.Count;
            _sharedWaiters.ForEach(w => w.SetResult());
            _sharedWaiters.Clear();
        }
    }
}
