using Microsoft.Extensions.Logging;
using ParaFS.Common;
using ParaFS.FuseAdapter;

namespace ParaFS.Mount.Tests;

/// <summary>Why an application got EIO or ENOSPC goes to the mount's log, once a minute per reason.</summary>
public sealed class ErrorReportTests
{
    private long _now = 1_000_000;
    private readonly EventLog _log = new();

    [Fact]
    public void A_cluster_error_is_logged_with_its_reason_once_a_minute()
    {
        var report = new ErrorReport(_log, () => _now);
        var full = new ParaFsException(Errno.ENOSPC, "cannot place a new file: no target is registered in pool 'x'; start an OST with --pool x");

        Assert.Equal((int)Errno.ENOSPC, report.Translate(full).Errno);
        Assert.Equal((int)Errno.ENOSPC, report.Translate(full).Errno);
        Assert.Equal(["an application got ENOSPC: cannot place a new file: no target is registered in pool 'x'; start an OST with --pool x (the same reason is logged at most once a minute)"], _log.Messages);

        report.Translate(new ParaFsException(Errno.EIO, "target 3 at 10.0.0.3:7003 did not answer"));
        Assert.Equal(2, _log.Messages.Count);

        _now += (long)ErrorReport.Interval.TotalMilliseconds + 1;
        report.Translate(full);
        Assert.Equal(3, _log.Messages.Count);
        Assert.Equal([603, 603, 603], _log.Events);
        Assert.All(_log.Levels, l => Assert.Equal(LogLevel.Warning, l));
    }

    [Fact]
    public void An_outage_logs_a_bounded_number_of_lines_then_says_how_many_it_left_out()
    {
        var report = new ErrorReport(_log, () => _now);
        for (var i = 0; i < 50; i++)
        {
            report.Translate(new ParaFsException(Errno.EIO, $"target 2 did not answer: inode 7 at offset {i << 20}"));
        }

        Assert.Equal(ErrorReport.MaxPerInterval, _log.Messages.Count);
        _now += (long)ErrorReport.Interval.TotalMilliseconds + 1;
        report.Translate(new ParaFsException(Errno.EIO, "target 2 did not answer: inode 7 at offset 0"));
        Assert.Equal("30 more errors to applications were not logged in the last minute (at most 20 lines a minute)", _log.Messages[^2]);
        Assert.Contains("inode 7 at offset 0", _log.Messages[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void Errors_applications_meet_as_a_matter_of_course_are_not_logged()
    {
        var report = new ErrorReport(_log, () => _now);
        Assert.Equal((int)Errno.ENOENT, report.Translate(new ParaFsException(Errno.ENOENT, "no entry 'a' in directory 1")).Errno);
        report.Translate(new ParaFsException(Errno.EEXIST, "'a' exists"));
        report.Translate(new ParaFsException(Errno.EACCES, "permission denied"));
        Assert.Empty(_log.Messages);
        Assert.True(ErrorReport.IsClusterError(Errno.ENOTCONN));
        Assert.False(ErrorReport.IsClusterError(Errno.ENOTEMPTY));
    }
}
