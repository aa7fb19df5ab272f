using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ParaFS.Common;

namespace ParaFS.FuseAdapter;

/// <summary>
/// Puts in the mount's log why an application got an error that points at the cluster rather
/// than at its own call (EIO, ENOSPC, a dead connection...): the application sees only the errno,
/// the MDS or OST said more ("no target is registered in pool 'x'; start an OST with ..."). Each
/// distinct reason is logged at most once per <see cref="Interval"/>, and at most
/// <see cref="MaxPerInterval"/> lines in all per interval (an outage fails many calls with reasons
/// that differ only in an offset); ENOENT and the like, which applications meet as a matter of
/// course, never are.
/// </summary>
internal sealed class ErrorReport(ILogger? logger, Func<long>? clock = null)
{
    /// <summary>How long the same reason stays quiet after it was logged.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    /// <summary>Lines per interval, all reasons together; the next line after a full interval says how many were left out.</summary>
    public const int MaxPerInterval = 20;

    private const int MaxRemembered = 1024;

    private readonly Func<long> _clock = clock ?? (() => Environment.TickCount64);
    private readonly ConcurrentDictionary<string, long> _lastLogged = new();
    private readonly Lock _budgetLock = new();
    private long? _windowStart;
    private int _windowLines;
    private int _leftOut;

    public static bool IsClusterError(Errno errno) => errno is Errno.EIO or Errno.ENOSPC or Errno.EROFS or Errno.ENOTCONN
        or Errno.ECONNRESET or Errno.ECONNREFUSED or Errno.ETIMEDOUT or Errno.EHOSTUNREACH or Errno.EPROTO or Errno.EBADMSG or Errno.EDQUOT;

    /// <summary>Logs the reason (if it is a cluster error not logged within the interval) and returns it as the kernel's error.</summary>
    public Fuse.FuseException Translate(ParaFsException e)
    {
        if (logger is not null && IsClusterError(e.Errno) && Due(e.Message) && InBudget(out var leftOut))
        {
            if (leftOut > 0)
            {
                Log.ErrorsLeftOut(logger, leftOut);
            }

            Log.ErrorToApplication(logger, e.Errno.ToString(), e.Message);
        }

        return new((int)e.Errno, e.Message);
    }

    /// <summary>True while this interval has lines left; <paramref name="leftOut"/>: lines left out before, to be told once.</summary>
    private bool InBudget(out int leftOut)
    {
        lock (_budgetLock)
        {
            var now = _clock();
            if (_windowStart is not { } start || now - start > Interval.TotalMilliseconds)
            {
                _windowStart = now;
                _windowLines = 0;
            }

            leftOut = 0;
            if (_windowLines >= MaxPerInterval)
            {
                _leftOut++;
                return false;
            }

            _windowLines++;
            (leftOut, _leftOut) = (_leftOut, 0);
            return true;
        }
    }

    private bool Due(string reason)
    {
        var now = _clock();
        if (_lastLogged.Count > MaxRemembered)
        {
            _lastLogged.Clear();
        }

        var last = _lastLogged.GetOrAdd(reason, now - (long)Interval.TotalMilliseconds - 1);
        return now - last > Interval.TotalMilliseconds && _lastLogged.TryUpdate(reason, now, last);
    }
}
