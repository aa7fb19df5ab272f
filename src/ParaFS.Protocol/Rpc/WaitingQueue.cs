namespace ParaFS.Protocol.Rpc;

/// <summary>
/// A first-in, first-out queue whose one consumer sleeps until an item arrives. It never spins:
/// BlockingCollection spins and calls sched_yield before it sleeps, and on a small machine a few
/// idle sending threads doing that take the CPU that a woken small call is waiting for (300,000
/// yields a second measured during a checkpoint write on 2 cores).
/// </summary>
internal sealed class WaitingQueue<T>
    where T : class
{
    private readonly Queue<T> _items = new();
    private bool _completed;

    /// <summary>Queues an item; false once <see cref="Complete"/> has been called.</summary>
    public bool TryAdd(T item)
    {
        lock (_items)
        {
            if (_completed)
            {
                return false;
            }

            _items.Enqueue(item);
            Monitor.Pulse(_items);
            return true;
        }
    }

    /// <summary>Accepts no more items; the consumer still takes those already queued.</summary>
    public void Complete()
    {
        lock (_items)
        {
            _completed = true;
            Monitor.PulseAll(_items);
        }
    }

    /// <summary>The next item, sleeping until there is one; null once completed and drained.</summary>
    public T? Take()
    {
        lock (_items)
        {
            while (_items.Count == 0)
            {
                if (_completed)
                {
                    return null;
                }

                Monitor.Wait(_items);
            }

            return _items.Dequeue();
        }
    }
}
