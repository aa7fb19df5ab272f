using Microsoft.Data.Sqlite;
using ParaFS.Common;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Tests;

/// <summary>
/// The SQLite store under concurrent calls. Group commit: writes that arrive while one commits
/// share the next commit, each keeps its own outcome, and what was committed is on disk (read
/// back after reopening); a first write is held inside its work so that the others queue up
/// behind it. Reads run side by side, on connections of their own.
/// </summary>
public sealed class SqliteConcurrencyTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"parafs-group-{Guid.NewGuid():N}");
    private SqliteMetadataStore _store = null!;

    private string DatabasePath => Path.Combine(_directory, "mds.db");

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        _store = SqliteMetadataStore.Open(DatabasePath);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Writes_that_wait_share_one_commit_and_each_is_durable()
    {
        var (held, release) = await HoldTheCommitterAsync("held");
        var writes = Enumerable.Range(0, 20).Select(i => _store.WriteAsync(tx =>
        {
            tx.SetMeta($"key{i}", $"value{i}");
            return i;
        })).ToList();
        release();

        Assert.Equal(Enumerable.Range(0, 20), await Task.WhenAll(writes));
        await held;
        Assert.True(_store.LargestGroup >= 20, $"the waiting writes were committed in groups of at most {_store.LargestGroup}");

        await _store.DisposeAsync();
        _store = SqliteMetadataStore.Open(DatabasePath);
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal($"value{i}", await _store.ReadAsync(tx => tx.GetMeta($"key{i}")));
        }
    }

    [Fact]
    public async Task A_work_that_throws_loses_its_own_changes_and_no_one_elses()
    {
        var (held, release) = await HoldTheCommitterAsync("held");
        var before = _store.WriteAsync(tx =>
        {
            tx.SetMeta("before", "kept");
            return 0;
        });
        var failing = _store.WriteAsync<int>(tx =>
        {
            tx.SetMeta("failing", "must not stay");
            throw new ParaFsException(Errno.EEXIST, "the work's own error");
        });
        var after = _store.WriteAsync(tx =>
        {
            tx.SetMeta("after", "kept");
            return 0;
        });
        release();

        await Task.WhenAll(held, before, after);
        var error = await Assert.ThrowsAsync<ParaFsException>(() => failing);
        Assert.Equal("the work's own error", error.Message);
        Assert.True(_store.LargestGroup >= 3, $"the three writes were not grouped (largest group {_store.LargestGroup})");
        Assert.Equal("kept", await _store.ReadAsync(tx => tx.GetMeta("before")));
        Assert.Equal("kept", await _store.ReadAsync(tx => tx.GetMeta("after")));
        Assert.Null(await _store.ReadAsync(tx => tx.GetMeta("failing")));
    }

    /// <summary>A SQLite error may end the whole transaction: the group is run again, each write alone.</summary>
    [Fact]
    public async Task A_sqlite_error_in_a_group_fails_only_its_own_write()
    {
        await _store.WriteAsync(tx =>
        {
            tx.InsertInode(new InodeRecord { Ino = 7, Type = FileType.Regular, Mode = 0x1A4, Nlink = 1, Parent = 1 });
            return 0;
        });

        var runs = 0;
        var (held, release) = await HoldTheCommitterAsync("held");
        var before = _store.WriteAsync(tx =>
        {
            Interlocked.Increment(ref runs);
            tx.SetMeta("before", "kept");
            return 0;
        });
        var duplicate = _store.WriteAsync(tx =>
        {
            tx.InsertInode(new InodeRecord { Ino = 7, Type = FileType.Regular, Mode = 0x1A4, Nlink = 1, Parent = 1 });
            return 0;
        });
        var after = _store.WriteAsync(tx =>
        {
            tx.SetMeta("after", "kept");
            return 0;
        });
        release();

        await Task.WhenAll(held, before, after);
        await Assert.ThrowsAsync<SqliteException>(() => duplicate);
        Assert.Equal(2, runs); // once in the group, once alone
        Assert.Equal("kept", await _store.ReadAsync(tx => tx.GetMeta("before")));
        Assert.Equal("kept", await _store.ReadAsync(tx => tx.GetMeta("after")));
        Assert.NotNull(await _store.ReadAsync(tx => tx.GetInode(7)));
    }

    [Fact]
    public async Task A_write_cancelled_while_it_waits_never_runs()
    {
        var (held, release) = await HoldTheCommitterAsync("held");
        using var cancel = new CancellationTokenSource();
        var ran = false;
        var cancelled = _store.WriteAsync(tx =>
        {
            ran = true;
            tx.SetMeta("cancelled", "must not be");
            return 0;
        }, cancel.Token);
        var other = _store.WriteAsync(tx =>
        {
            tx.SetMeta("other", "kept");
            return 0;
        });
        cancel.Cancel();
        release();

        await Task.WhenAll(held, other);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.False(ran);
        Assert.Null(await _store.ReadAsync(tx => tx.GetMeta("cancelled")));
        Assert.Equal("kept", await _store.ReadAsync(tx => tx.GetMeta("other")));
    }

    [Fact]
    public async Task Reads_run_side_by_side_and_beside_a_write_that_has_not_committed()
    {
        // Two reads that each wait, inside their transactions, for the other to have started.
        using var bothInside = new Barrier(2);
        var reads = Enumerable.Range(0, 2).Select(_ => Task.Run(() => _store.ReadAsync(_ => bothInside.SignalAndWait(TimeSpan.FromSeconds(10)))));
        Assert.All(await Task.WhenAll(reads), met => Assert.True(met, "a read waited for another read to end"));

        await _store.WriteAsync(tx =>
        {
            tx.SetMeta("held", "committed");
            return 0;
        });
        var (held, release) = await HoldTheCommitterAsync("held");
        Assert.Equal("committed", await _store.ReadAsync(tx => tx.GetMeta("held")).WaitAsync(TimeSpan.FromSeconds(10)));
        release();
        await held;
        Assert.Equal("held", await _store.ReadAsync(tx => tx.GetMeta("held")));
    }

    /// <summary>Starts a write whose work waits, inside the store's transaction, until the returned action is called.</summary>
    private async Task<(Task Held, Action Release)> HoldTheCommitterAsync(string key)
    {
        using var started = new SemaphoreSlim(0);
        var go = new ManualResetEventSlim();
        var held = Task.Run(() => _store.WriteAsync(tx =>
        {
            tx.SetMeta(key, "held");
            started.Release();
            go.Wait(TimeSpan.FromSeconds(30));
            return 0;
        }));
        Assert.True(await started.WaitAsync(TimeSpan.FromSeconds(30)), "the held write never started");
        return (held, go.Set);
    }
}
