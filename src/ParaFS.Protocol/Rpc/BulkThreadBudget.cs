namespace ParaFS.Protocol.Rpc;

/// <summary>
/// How many bulk connections may run on threads of their own at once, shared by the servers or
/// clients handed it (a client's pools to every OST share one). A bulk connection that finds no
/// place left runs the asynchronous way, like any other connection.
/// </summary>
public sealed class BulkThreadBudget(int limit)
{
    private int _inUse;

    public int Limit { get; } = limit;

    /// <summary>Connections holding a place right now.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>Takes a place; false when all are taken.</summary>
    public bool TryTake()
    {
        if (Interlocked.Increment(ref _inUse) <= Limit)
        {
            return true;
        }

        Interlocked.Decrement(ref _inUse);
        return false;
    }

    /// <summary>Gives back a place taken with <see cref="TryTake"/>.</summary>
    public void Return() => Interlocked.Decrement(ref _inUse);
}
