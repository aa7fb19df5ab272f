using ParaFS.FuseAdapter;

namespace ParaFS.Mount.Tests;

/// <summary>The read-over-write pacing of a mount, on a clock the test moves (microsecond ticks).</summary>
public sealed class ReadPriorityThrottleTests
{
    private const long Frequency = 1_000_000;
    private const int MiB = 1 << 20;

    private long _now;
    private readonly ReadPriorityThrottle _throttle;
    private readonly EventLog _log = new();

    public ReadPriorityThrottleTests() => _throttle = new ReadPriorityThrottle(() => _now, Frequency, _log);

    [Fact]
    public void Writes_alone_are_never_held_back()
    {
        for (var i = 0; i < 5_000; i++)
        {
            Assert.Equal(TimeSpan.Zero, _throttle.ReserveWrite(MiB));
            _now += 100;
        }

        Assert.Equal(0, _throttle.LimitBytesPerSecond);
    }

    [Fact]
    public void Slow_reads_beside_large_writes_halve_the_write_rate_and_pace_the_writer()
    {
        Window(reads: 200, readMicros: 20, writes: 0);
        Assert.InRange(_throttle.Baseline.TotalMicroseconds, 15, 26);

        // 1 MiB every 100 us is about 10 GB/s; a tenth of the reads take 20 times the baseline.
        Window(reads: 200, readMicros: 20, writes: 1000, slowEvery: 10);
        Window(reads: 10, readMicros: 20, writes: 0);
        var limit = _throttle.LimitBytesPerSecond;
        Assert.InRange(limit, 4_000_000_000L, 6_000_000_000L);

        // Paced: a run of megabyte writes is spread at the limit.
        var waits = Enumerable.Range(0, 10).Select(_ => _throttle.ReserveWrite(MiB)).ToList();
        Assert.Equal(TimeSpan.Zero, waits[0]);
        Assert.Equal(9 * (double)MiB / limit, waits[9].TotalSeconds, 3);
    }

    [Fact]
    public void The_limit_rises_again_while_reads_stay_fast_and_goes_at_the_ceiling()
    {
        Window(reads: 200, readMicros: 20, writes: 0);
        for (var i = 0; i < 12 && _throttle.LimitBytesPerSecond != ReadPriorityThrottle.FloorBytesPerSecond; i++)
        {
            Window(reads: 200, readMicros: 20, writes: 50, slowEvery: 5);
        }

        var low = _throttle.LimitBytesPerSecond;
        Assert.Equal(ReadPriorityThrottle.FloorBytesPerSecond, low);

        Window(reads: 200, readMicros: 20, writes: 10);
        Window(reads: 10, readMicros: 20, writes: 0);
        Assert.Equal(low + (low / 8), _throttle.LimitBytesPerSecond);

        for (var i = 0; i < 100 && _throttle.LimitBytesPerSecond != 0; i++)
        {
            Window(reads: 200, readMicros: 20, writes: 10);
        }

        Assert.Equal(0, _throttle.LimitBytesPerSecond);

        // One line when pacing starts and one when it ends, not one per window.
        Assert.Equal([600, 601], _log.Events);
        Assert.All(_log.Messages, m => Assert.Contains("read priority", m, StringComparison.Ordinal));
    }

    [Fact]
    public void Reads_still_slow_with_the_writes_at_the_floor_become_the_baseline()
    {
        Window(reads: 200, readMicros: 20, writes: 0);
        for (var i = 0; i < 12 && _throttle.LimitBytesPerSecond != ReadPriorityThrottle.FloorBytesPerSecond; i++)
        {
            Window(reads: 200, readMicros: 400, writes: 50);
        }

        Assert.Equal(ReadPriorityThrottle.FloorBytesPerSecond, _throttle.LimitBytesPerSecond);
        Window(reads: 200, readMicros: 400, writes: 50);
        Assert.InRange(_throttle.Baseline.TotalMicroseconds, 350, 450);

        // Judged against reads like these, the writes no longer slow them: the limit rises.
        Window(reads: 200, readMicros: 400, writes: 50);
        Window(reads: 10, readMicros: 400, writes: 0);
        Assert.True(_throttle.LimitBytesPerSecond > ReadPriorityThrottle.FloorBytesPerSecond);
        Assert.Equal([600, 602], _log.Events);
        Assert.All(_log.Messages, m => Assert.Contains("read priority", m, StringComparison.Ordinal));
    }

    [Fact]
    public void Slow_reads_the_workload_has_anyway_do_not_hold_writes_back()
    {
        // A fifth of the reads miss a cache, with or without writes.
        Window(reads: 200, readMicros: 20, writes: 0, slowEvery: 5);
        Window(reads: 200, readMicros: 20, writes: 0, slowEvery: 5);
        for (var i = 0; i < 10; i++)
        {
            Window(reads: 200, readMicros: 20, writes: 1000, slowEvery: 5);
        }

        Assert.Equal(0, _throttle.LimitBytesPerSecond);

        // Twice as many slow reads with the writes on: those are the writes' doing.
        Window(reads: 200, readMicros: 20, writes: 1000, slowEvery: 2);
        Window(reads: 10, readMicros: 20, writes: 0);
        Assert.NotEqual(0, _throttle.LimitBytesPerSecond);
    }

    [Fact]
    public void A_limit_holds_only_while_small_reads_go_on()
    {
        Window(reads: 200, readMicros: 20, writes: 0);
        Window(reads: 200, readMicros: 20, writes: 1000, slowEvery: 2);
        Window(reads: 10, readMicros: 20, writes: 0);
        Assert.NotEqual(0, _throttle.LimitBytesPerSecond);

        _now += (long)(ReadPriorityThrottle.ReadsActive.TotalSeconds * Frequency) + 1;
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(TimeSpan.Zero, _throttle.ReserveWrite(MiB));
        }

        // A second without small reads forgets the limit altogether.
        _now += 2 * Frequency;
        _throttle.ReserveWrite(MiB);
        Assert.Equal(0, _throttle.LimitBytesPerSecond);
    }

    [Fact]
    public void Without_a_baseline_nothing_is_held_back()
    {
        Window(reads: 200, readMicros: 20, writes: 1000, slowEvery: 1);
        Window(reads: 200, readMicros: 500, writes: 1000);
        Assert.Equal(0, _throttle.LimitBytesPerSecond);
        Assert.Equal(TimeSpan.Zero, _throttle.Baseline);
    }

    [Fact]
    public void Large_reads_and_small_writes_are_not_watched()
    {
        Window(reads: 200, readMicros: 20, writes: 0);
        for (var i = 0; i < 1_000; i++)
        {
            var started = _throttle.ReadStarted();
            _now += 5_000;
            _throttle.ReadFinished(started, MiB);
            Assert.Equal(TimeSpan.Zero, _throttle.ReserveWrite(4096));
        }

        Assert.Equal(0, _throttle.LimitBytesPerSecond);
    }

    /// <summary>
    /// One window of <see cref="ReadPriorityThrottle.Window"/>: the reads (every <paramref name="slowEvery"/>th
    /// one twenty times slower) interleaved with megabyte writes, then the clock moves to its end.
    /// </summary>
    private void Window(int reads, int readMicros, int writes, int slowEvery = 0)
    {
        var end = _now + (long)(ReadPriorityThrottle.Window.TotalSeconds * Frequency);
        var steps = Math.Max(reads, writes);
        var step = (end - _now) / (steps + 1);
        for (var i = 0; i < steps; i++)
        {
            if (i < reads)
            {
                var started = _throttle.ReadStarted();
                _now += slowEvery > 0 && i % slowEvery == 0 ? readMicros * 20 : readMicros;
                _throttle.ReadFinished(started, 4096);
            }

            if (i < writes)
            {
                _throttle.ReserveWrite(MiB);
            }

            _now = Math.Max(_now, end - ((steps - i) * step));
        }

        _now = end;
    }
}

/// <summary>Mount options (parafs mount -o, parafs up -o): the pacing's switch and the bulk threads.</summary>
public sealed class MountOptionTests
{
    [Fact]
    public void Read_priority_is_on_unless_the_mount_says_off()
    {
        Assert.True(ParaFS.Cli.MountCommand.Settings("").ReadPriority);
        Assert.True(ParaFS.Cli.MountCommand.Settings("rw,readprio=on").ReadPriority);
        Assert.False(ParaFS.Cli.MountCommand.Settings("readers=2,readprio=off").ReadPriority);
        var e = Assert.Throws<ParaFS.Cli.UsageException>(() => ParaFS.Cli.MountCommand.Settings("readprio=later"));
        Assert.Contains("readprio=later", e.Message);
    }

    [Fact]
    public void Bulkthreads_sets_how_many_ost_connections_get_threads_of_their_own()
    {
        Assert.Equal(256, ParaFS.Cli.MountCommand.Settings("").Client.BulkThreadConnections);
        var none = ParaFS.Cli.MountCommand.Settings("readprio=off,bulkthreads=0");
        Assert.Equal(0, none.Client.BulkThreadConnections);
        Assert.Equal(0, none.Client.ReadAheadRows); // the mount's other client settings stay
        Assert.False(none.ReadPriority);
        Assert.Equal(1024, ParaFS.Cli.MountCommand.Settings("bulkthreads=1024").Client.BulkThreadConnections);
        var e = Assert.Throws<ParaFS.Cli.UsageException>(() => ParaFS.Cli.MountCommand.Settings("bulkthreads=-2"));
        Assert.Contains("bulkthreads=-2: a number from 0 to 65536", e.Message);
    }
}
