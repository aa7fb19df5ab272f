using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ParaFS.FuseAdapter;

/// <summary>
/// Keeps small reads fast while large writes stream into the mount: the idea of the kernel's
/// writeback throttling, applied where a FUSE mount takes writes in. (The kernel throttles
/// buffered writeback for the sake of reads; a FUSE write is not writeback, so nothing holds
/// a checkpoint writer back, and on a busy node its copies and its direct writes on the OSTs
/// take the CPUs and the disks from a data loader's reads.)
/// <para>
/// The latency of small reads (at most <see cref="SmallReadBytes"/>) is taken in windows of
/// <see cref="Window"/>. A window without large writes sets the baseline: the reads' median, and
/// the share of them that take longer than <see cref="SlowFactor"/> times it (a workload that
/// misses a cache now and then has such reads of its own). In a window with large writes, a share
/// of slow reads over the baseline's by more than <see cref="SlowShare"/> halves the rate at which
/// large writes are answered (a writer waits for its reply, so it writes less); a window without
/// that raises the rate by an eighth, until there is no limit again. Reads still slow with the
/// writes held to the floor are not slowed by the writes: that window becomes the baseline, and
/// the limit rises again (a change of workload must not hold a checkpoint at a trickle). The
/// limit holds only while small reads are going on: writes alone always run at full speed, and
/// nothing is held back before a baseline exists. Write data is never delayed on its way to the
/// OSTs, only the next write's intake. The start and the end of pacing are logged (Information).
/// </para>
/// </summary>
internal sealed class ReadPriorityThrottle
{
    /// <summary>Reads up to this size are the ones protected (a data loader's random reads).</summary>
    public const int SmallReadBytes = 128 * 1024;

    /// <summary>Writes from this size on are the ones paced (a checkpoint's streaming writes).</summary>
    public const int LargeWriteBytes = 128 * 1024;

    /// <summary>A read slower than this many times the baseline median counts as slow.</summary>
    public const double SlowFactor = 6;

    /// <summary>A share of slow reads over the baseline's by more than this means the writes are in the way.</summary>
    public const double SlowShare = 0.01;

    /// <summary>The lowest write rate the throttle sets, in bytes per second: writers always progress.</summary>
    public const long FloorBytesPerSecond = 32L << 20;

    /// <summary>A limit raised past this (bytes per second) is dropped.</summary>
    public const long CeilingBytesPerSecond = 64L << 30;

    /// <summary>A window with fewer small reads than this says nothing about them.</summary>
    public const int MinimumReads = 50;

    /// <summary>How long the reads of one judgement are gathered.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMilliseconds(100);

    /// <summary>Small reads count as going on for this long after the last one finished.</summary>
    public static readonly TimeSpan ReadsActive = TimeSpan.FromMilliseconds(20);

    /// <summary>Waits shorter than this are not slept (a timer is that coarse); they stay owed.</summary>
    private static readonly TimeSpan ShortestWait = TimeSpan.FromMilliseconds(1);

    private const int BucketsPerOctave = 8;
    private const int Buckets = BucketsPerOctave * 25; // up to 2^25 us, about half a minute

    private readonly Func<long> _clock;
    private readonly ILogger _logger;
    private readonly long _frequency;
    private readonly long _windowTicks;
    private readonly long _activeTicks;
    private readonly Lock _lock = new();
    private readonly int[] _histogram = new int[Buckets];

    private long _windowStart;
    private int _reads;
    private long _writeBytes;
    private long _lastRead = long.MinValue / 2;
    private double _baselineTicks;
    private double _baselineSlowShare;
    private long _limit;
    private long _nextSlot;

    /// <summary>A throttle on the monotonic clock that logs to <paramref name="logger"/>.</summary>
    public ReadPriorityThrottle(ILogger? logger = null)
        : this(Stopwatch.GetTimestamp, Stopwatch.Frequency, logger)
    {
    }

    /// <summary>A throttle on <paramref name="clock"/>, which ticks <paramref name="frequency"/> times a second (tests drive it).</summary>
    public ReadPriorityThrottle(Func<long> clock, long frequency, ILogger? logger = null)
    {
        _clock = clock;
        _logger = logger ?? NullLogger.Instance;
        _frequency = frequency;
        _windowTicks = (long)(Window.TotalSeconds * frequency);
        _activeTicks = (long)(ReadsActive.TotalSeconds * frequency);
        _windowStart = clock();
    }

    /// <summary>The limit on large writes in bytes per second as of now (a window that is over is judged first); 0 when there is none.</summary>
    public long LimitBytesPerSecond
    {
        get
        {
            lock (_lock)
            {
                Roll(_clock());
                return _limit;
            }
        }
    }

    /// <summary>The baseline median of small reads as of now, or zero before a window without writes set it.</summary>
    public TimeSpan Baseline
    {
        get
        {
            lock (_lock)
            {
                Roll(_clock());
                return TimeSpan.FromSeconds(_baselineTicks / _frequency);
            }
        }
    }

    /// <summary>Marks the start of a read; pass the result to <see cref="ReadFinished"/>.</summary>
    public long ReadStarted() => _clock();

    /// <summary>A read of <paramref name="bytes"/> that started at <paramref name="started"/> has its answer.</summary>
    public void ReadFinished(long started, int bytes)
    {
        if (bytes > SmallReadBytes)
        {
            return;
        }

        var now = _clock();
        var took = Math.Max(0, now - started);
        lock (_lock)
        {
            Roll(now);
            _lastRead = now;
            _reads++;
            _histogram[Bucket(took)]++;
        }
    }

    /// <summary>
    /// Books a write of <paramref name="bytes"/> and says how long its reply should wait: zero
    /// unless the write is large, small reads are going on and the windows set a limit.
    /// </summary>
    public TimeSpan ReserveWrite(int bytes)
    {
        if (bytes < LargeWriteBytes)
        {
            return TimeSpan.Zero;
        }

        var now = _clock();
        long wait;
        lock (_lock)
        {
            Roll(now);
            _writeBytes += bytes;
            if (_limit == 0 || now - _lastRead > _activeTicks)
            {
                _nextSlot = now;
                return TimeSpan.Zero;
            }

            var slot = Math.Max(_nextSlot, now);
            _nextSlot = slot + (long)((double)bytes * _frequency / _limit);
            wait = slot - now;
        }

        return TimeSpan.FromSeconds((double)wait / _frequency);
    }

    /// <summary>Waits as long as <see cref="ReserveWrite"/> says (not at all for waits under a millisecond: they stay owed).</summary>
    public ValueTask BeforeWriteReplyAsync(int bytes)
    {
        var wait = ReserveWrite(bytes);
        return wait < ShortestWait ? ValueTask.CompletedTask : new ValueTask(Task.Delay(wait));
    }

    /// <summary>Closes the window if it is over: learns the baseline or moves the limit.</summary>
    private void Roll(long now)
    {
        if (now - _windowStart < _windowTicks)
        {
            return;
        }

        var seconds = (double)Math.Max(now - _windowStart, _windowTicks) / _frequency;
        Judge(seconds, now);
        _windowStart = now;
        _reads = 0;
        _writeBytes = 0;
        Array.Clear(_histogram);
    }

    private void Judge(double seconds, long now)
    {
        if (_reads < MinimumReads)
        {
            if (now - _lastRead > _frequency && _limit != 0)
            {
                // No reads for a second: whatever limit there was belongs to a past workload.
                _limit = 0;
                Log.PacingEnded(_logger, "no small reads for a second");
            }

            return;
        }

        if (_writeBytes == 0)
        {
            Learn(_baselineTicks == 0 ? 1 : 0.25);
            return;
        }

        if (_baselineTicks == 0)
        {
            return;
        }

        var threshold = _baselineTicks * SlowFactor;
        var slowShare = ShareAbove(threshold);
        var congested = slowShare > _baselineSlowShare + SlowShare;
        if (congested && _limit == FloorBytesPerSecond)
        {
            // Still slow with the writes held to a trickle: the writes are not what slows these
            // reads (they may come from the disk now, not from a cache). They are the new normal.
            Learn(1);
            Log.Rebaselined(_logger, _baselineTicks * 1_000_000 / _frequency);
        }
        else if (congested)
        {
            var observed = (long)(_writeBytes / seconds);
            var halved = Math.Max(FloorBytesPerSecond, (_limit == 0 ? observed : Math.Min(_limit, observed)) / 2);
            if (_limit == 0)
            {
                Log.PacingStarted(_logger, slowShare * 100, threshold * 1_000_000 / _frequency, _baselineSlowShare * 100, halved >> 20);
            }

            _limit = halved;
        }
        else if (_limit != 0)
        {
            _limit += _limit / 8;
            if (_limit >= CeilingBytesPerSecond)
            {
                _limit = 0;
                Log.PacingEnded(_logger, "the reads stayed fast as the limit rose");
            }
        }
    }

    /// <summary>Moves the baseline toward this window's reads by <paramref name="weight"/> (1: this window alone).</summary>
    private void Learn(double weight)
    {
        var median = Median();
        var share = ShareAbove(median * SlowFactor);
        _baselineTicks = (_baselineTicks * (1 - weight)) + (median * weight);
        _baselineSlowShare = (_baselineSlowShare * (1 - weight)) + (share * weight);
    }

    private int Bucket(long ticks)
    {
        var micros = ticks * 1_000_000.0 / _frequency;
        return (int)Math.Clamp(Math.Log2(micros + 1) * BucketsPerOctave, 0, Buckets - 1);
    }

    /// <summary>The share of the window's reads in buckets wholly above <paramref name="ticks"/>.</summary>
    private double ShareAbove(double ticks)
    {
        var above = 0;
        for (var i = Bucket((long)ticks) + 1; i < Buckets; i++)
        {
            above += _histogram[i];
        }

        return (double)above / _reads;
    }

    /// <summary>The window's median read latency in ticks, at the middle of its bucket.</summary>
    private double Median()
    {
        var half = (_reads + 1) / 2;
        var seen = 0;
        for (var i = 0; i < Buckets; i++)
        {
            seen += _histogram[i];
            if (seen >= half)
            {
                var micros = Math.Pow(2, (i + 0.5) / BucketsPerOctave) - 1;
                return micros * _frequency / 1_000_000.0;
            }
        }

        return 0;
    }
}
