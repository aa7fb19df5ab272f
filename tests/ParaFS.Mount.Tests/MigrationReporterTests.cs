using ParaFS.Cli.Tools;
using ParaFS.Client;

namespace ParaFS.Mount.Tests;

/// <summary>What the migrate and drain progress line says while files wait before they copy or cut over.</summary>
public sealed class MigrationReporterTests
{
    [Fact]
    public void Nothing_is_added_while_no_file_waits() => Assert.Equal("", MigrationReporter.WaitText([]));

    [Fact]
    public void Open_holders_that_have_not_switched_are_counted_over_the_files()
    {
        var text = MigrationReporter.WaitText([new HolderWait(7, 2, TimeSpan.Zero), new HolderWait(9, 1, TimeSpan.Zero)]);
        Assert.Equal("; 2 files wait for 3 open holders to switch layouts", text);
        Assert.Equal("; 1 file waits for 1 open holder to switch layouts", MigrationReporter.WaitText([new HolderWait(7, 1, TimeSpan.Zero)]));
    }

    [Fact]
    public void The_MDS_recovery_window_is_shown_with_the_seconds_it_has_left()
    {
        var text = MigrationReporter.WaitText([new HolderWait(7, 0, TimeSpan.FromMilliseconds(11_200)), new HolderWait(9, 0, TimeSpan.FromSeconds(3))]);
        Assert.Equal("; the MDS restarted recently: cut-overs wait 12s more for its clients to come back", text);
    }

    [Fact]
    public void A_wait_that_ended_leaves_the_line()
    {
        using var reporter = new MigrationReporter("migrate", json: false);
        reporter.Waiting(new HolderWait(7, 1, TimeSpan.Zero));
        Assert.True(new HolderWait(7, 0, TimeSpan.Zero).Over);
        Assert.False(new HolderWait(7, 0, TimeSpan.FromSeconds(1)).Over);
        reporter.Waiting(new HolderWait(7, 0, TimeSpan.Zero));
        Assert.Equal("", MigrationReporter.WaitText(reporter.CurrentWaits));
    }
}
