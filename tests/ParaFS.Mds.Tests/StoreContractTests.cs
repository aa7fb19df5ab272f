using Microsoft.Data.Sqlite;
using ParaFS.Common;
using ParaFS.Mds.Namespace;
using ParaFS.Mds.Store;
using ParaFS.Protocol.Mds;

namespace ParaFS.Mds.Tests;

/// <summary>What every metadata store promises (IMetadataStore), checked on SQLite and on PostgreSQL alike.</summary>
public abstract class StoreContractTests(TestStore kind) : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"parafs-store-{Guid.NewGuid():N}");
    private TestDatabase? _database;
    private IMetadataStore _store = null!;
    private bool _closed;

    public async Task InitializeAsync()
    {
        _database = kind == TestStore.Postgres ? await TestPostgres.CreateDatabaseAsync() : null;
        _store = await OpenAsync();
    }

    public async Task DisposeAsync()
    {
        if (!_closed)
        {
            await _store.DisposeAsync();
        }

        if (_database is not null)
        {
            await _database.DisposeAsync();
        }

        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [SuiteFact]
    public async Task Concurrent_transactions_never_get_the_same_id_twice()
    {
        var ids = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            var mine = new List<long>();
            for (var i = 0; i < 100; i++)
            {
                mine.Add(await _store.WriteAsync(tx => tx.NextId("inode", 2)));
            }

            return mine;
        })));
        var all = ids.SelectMany(x => x).ToList();
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.True(all.Min() >= 2);
    }

    [SuiteFact]
    public async Task Concurrent_inserts_of_one_name_leave_one_entry_and_the_others_see_it()
    {
        await _store.WriteAsync(tx =>
        {
            tx.InsertInode(Inode(1, FileType.Directory));
            return 0;
        });
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(c => Task.Run(() => _store.WriteAsync(tx =>
        {
            if (tx.LookupEntry(1, "same") is not null)
            {
                return false;
            }

            var ino = tx.NextId("inode", 2);
            tx.InsertInode(Inode(ino, FileType.Regular));
            tx.InsertEntry(1, "same", ino);
            return true;
        }))));
        Assert.Single(outcomes, created => created);
        var entries = await _store.ReadAsync(tx => tx.ListEntries(1, 0, 100));
        Assert.Single(entries);
    }

    [SuiteFact]
    public async Task Cookies_only_grow_and_a_replaced_entry_gets_a_new_one()
    {
        var cookies = await _store.WriteAsync(tx =>
        {
            tx.InsertInode(Inode(1, FileType.Directory));
            tx.InsertInode(Inode(2, FileType.Regular));
            tx.InsertInode(Inode(3, FileType.Regular));
            tx.InsertEntry(1, "a", 2);
            tx.InsertEntry(1, "b", 3);
            var before = tx.ListEntries(1, 0, 10);
            tx.ReplaceEntry(1, "a", 3);
            return (before, after: tx.ListEntries(1, 0, 10));
        });
        Assert.Equal(["a", "b"], cookies.before.Select(e => e.Name));
        Assert.Equal(["b", "a"], cookies.after.Select(e => e.Name));
        Assert.True(cookies.after[1].Cookie > cookies.before[1].Cookie);
        Assert.Empty(await _store.ReadAsync(tx => tx.ListEntries(1, cookies.after[1].Cookie, 10)));
    }

    [SuiteFact]
    public async Task Work_that_throws_leaves_nothing_behind()
    {
        await Assert.ThrowsAsync<ParaFsException>(() => _store.WriteAsync<int>(tx =>
        {
            tx.InsertInode(Inode(7, FileType.Regular));
            tx.SetMeta("half", "done");
            throw new ParaFsException(Errno.EIO, "changed my mind");
        }));
        Assert.Null(await _store.ReadAsync(tx => tx.GetInode(7)));
        Assert.Null(await _store.ReadAsync(tx => tx.GetMeta("half")));
    }

    [SuiteFact]
    public async Task Names_and_values_are_kept_byte_for_byte_and_listed_in_byte_order()
    {
        var value = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        await _store.WriteAsync(tx =>
        {
            tx.InsertInode(Inode(5, FileType.Regular, layout: new Layout { StripeSize = 1 << 20, Generation = 3 }));
            tx.SetXattr(5, "user.é", value);
            tx.SetXattr(5, "user.Z", [1]);
            tx.SetXattr(5, "user.a", []);
            return 0;
        });
        var (names, read, inode) = await _store.ReadAsync(tx => (tx.ListXattrs(5), tx.GetXattr(5, "user.é"), tx.GetInode(5)));
        Assert.Equal(["user.Z", "user.a", "user.é"], names);
        Assert.Equal(value, read);
        Assert.Equal(3ul, inode!.Layout!.Generation);
    }

    [SuiteFact]
    public async Task Reply_records_keep_the_last_reply_per_client_slot_commit_with_their_transaction_and_age_out()
    {
        const ulong client = 0xFEDCBA9876543210; // the high bit set: kept as a signed 64-bit column
        await _store.WriteAsync(tx =>
        {
            tx.RecordReply(client, 1, 7, [1, 2, 3]);
            tx.RecordReply(client, 2, 8, []);
            tx.RecordReply(client, 1, ulong.MaxValue, [4]);
            return 0;
        });
        await Assert.ThrowsAsync<ParaFsException>(() => _store.WriteAsync<int>(tx =>
        {
            tx.RecordReply(client, 3, 9, [5]);
            throw new ParaFsException(Errno.EIO, "the call failed: its reply is not recorded");
        }));

        await _store.DisposeAsync();
        _store = await OpenAsync();
        var (one, two, three, other) = await _store.ReadAsync(tx => (tx.FindReply(client, 1), tx.FindReply(client, 2), tx.FindReply(client, 3), tx.FindReply(client + 1, 1)));
        Assert.Equal(ulong.MaxValue, one!.Xid);
        Assert.Equal([4], one.Reply);
        Assert.Equal(8ul, two!.Xid);
        Assert.Empty(two.Reply);
        Assert.Null(three);
        Assert.Null(other);

        Assert.Equal(0, await _store.WriteAsync(tx => tx.ForgetReplies(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 60_000)));
        Assert.Equal(2, await _store.WriteAsync(tx => tx.ForgetReplies(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 1)));
        Assert.Null(await _store.ReadAsync(tx => tx.FindReply(client, 1)));
    }

    [SuiteFact]
    public async Task A_store_of_schema_version_1_gets_the_reply_table_and_keeps_its_data()
    {
        await _store.WriteAsync(tx =>
        {
            tx.InsertInode(Inode(9, FileType.Regular));
            return 0;
        });
        await _store.DisposeAsync();
        await AlterAsync(postgres: "DROP TABLE replies; DROP TABLE leader; UPDATE parafs_schema SET version = 1", sqlite: "DROP TABLE replies; PRAGMA user_version = 1");

        _store = await OpenAsync();
        await _store.WriteAsync(tx =>
        {
            tx.RecordReply(1, 1, 1, [6]);
            return 0;
        });
        var (inode, reply) = await _store.ReadAsync(tx => (tx.GetInode(9), tx.FindReply(1, 1)));
        Assert.NotNull(inode);
        Assert.Equal([6], reply!.Reply);
    }

    [SuiteFact]
    public async Task A_store_with_a_newer_schema_is_refused_saying_what_to_do()
    {
        await _store.DisposeAsync();
        await AlterAsync(postgres: "UPDATE parafs_schema SET version = 99", sqlite: "PRAGMA user_version = 99");

        var error = await Assert.ThrowsAsync<StartupException>(OpenAsync);
        Assert.Contains("schema version 99, newer than this parafs understands", error.Message, StringComparison.Ordinal);
        Assert.Contains("run a newer parafs", error.Message, StringComparison.Ordinal);
        _closed = true;
    }

    /// <summary>Changes the closed store behind its back, as an older or newer parafs would have left it.</summary>
    private async Task AlterAsync(string postgres, string sqlite)
    {
        if (_database is { } database)
        {
            await database.ExecuteAsync(postgres);
            return;
        }

        using var connection = new SqliteConnection($"Data Source={Path.Combine(_directory, "mds.db")};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sqlite;
        command.ExecuteNonQuery();
    }

    [SuiteFact]
    public async Task The_namespace_check_finds_what_the_names_do_not_bear_out_and_repairs_link_counts_and_parents()
    {
        await _store.WriteAsync(tx =>
        {
            tx.InsertInode(Inode(1, FileType.Directory, nlink: 3));
            tx.InsertInode(Inode(2, FileType.Directory, nlink: 3));
            tx.InsertInode(Inode(3, FileType.Directory, nlink: 2, parent: 2));
            tx.InsertInode(Inode(4, FileType.Regular, nlink: 2));
            tx.InsertInode(Inode(5, FileType.Symlink));
            tx.InsertInode(Inode(6, FileType.Regular, nlink: 0)); // an orphan kept open: fine
            tx.InsertEntry(1, "a", 2);
            tx.InsertEntry(2, "b", 3);
            tx.InsertEntry(2, "f", 4);
            tx.InsertEntry(1, "g", 4);
            tx.InsertEntry(1, "s", 5);
            return 0;
        });
        var clean = await _store.ReadAsync(tx => NamespaceCheck.Run(tx, repair: false, 100));
        Assert.Empty(clean.Problems);
        Assert.Equal((6ul, 3ul), (clean.Inodes, clean.Directories));

        await _store.WriteAsync(tx =>
        {
            Change(tx, 4, i => i.Nlink = 5);
            Change(tx, 2, i => i.Nlink = 9);
            Change(tx, 3, i => i.Parent = 1);
            tx.InsertEntry(1, "ghost", 99);
            tx.InsertInode(Inode(8, FileType.Regular));
            tx.InsertEntry(4, "inside", 8);
            tx.InsertInode(Inode(10, FileType.Directory, nlink: 3, parent: 11)); // 10 and 11 name each other, and nothing names either
            tx.InsertInode(Inode(11, FileType.Directory, nlink: 3, parent: 10));
            tx.InsertEntry(10, "x", 11);
            tx.InsertEntry(11, "y", 10);
            tx.InsertInode(Inode(12, FileType.Regular));
            tx.InsertInode(Inode(13, FileType.Directory, nlink: 3));
            tx.InsertInode(Inode(14, FileType.Directory, nlink: 2, parent: 13));
            tx.InsertEntry(13, "c", 14);
            return 0;
        });

        var found = await _store.ReadAsync(tx => NamespaceCheck.Run(tx, repair: false, 100));
        (string, ulong)[] expected =
        [
            ("link-count", 2), ("parent", 3), ("link-count", 4), ("no-name", 12), ("no-name", 13),
            ("dangling-entry", 99), ("entry-outside-directory", 8), ("unreachable", 10), ("unreachable", 11), ("unreachable", 14),
        ];
        Assert.Equal(expected.Order(), found.Problems.Select(p => (p.Kind, p.Ino)).Order());
        Assert.DoesNotContain(found.Problems, p => p.Repaired);
        Assert.Equal((1ul, "ghost"), found.Problems.Where(p => p.Kind == "dangling-entry").Select(p => (p.Parent, p.Name)).Single());
        Assert.Contains("link count 5 but 2 names", found.Problems.Single(p => p.Ino == 4).Detail, StringComparison.Ordinal);

        var repaired = await _store.WriteAsync(tx => NamespaceCheck.Run(tx, repair: true, 100));
        Assert.Equal([2ul, 3ul, 4ul], repaired.Problems.Where(p => p.Repaired).Select(p => p.Ino).Order());
        var (a, b, f) = await _store.ReadAsync(tx => (tx.GetInode(2)!, tx.GetInode(3)!, tx.GetInode(4)!));
        Assert.Equal((3u, 2L, 2u), (a.Nlink, b.Parent, f.Nlink));
        var after = await _store.ReadAsync(tx => NamespaceCheck.Run(tx, repair: false, 100));
        Assert.Equal(expected.Where(e => e.Item2 is not (2 or 3 or 4)).Order(), after.Problems.Select(p => (p.Kind, p.Ino)).Order());

        // The limit bounds each list, and says more were there.
        var limited = await _store.ReadAsync(tx => NamespaceCheck.Run(tx, repair: false, 1));
        Assert.True(limited.More);
    }

    private static void Change(IStoreTransaction tx, long ino, Action<InodeRecord> change)
    {
        var inode = tx.GetInode(ino)!;
        change(inode);
        tx.UpdateInode(inode);
    }

    private async Task<IMetadataStore> OpenAsync()
    {
        if (_database is { } database)
        {
            return await PostgresMetadataStore.OpenAsync(database.ConnectionString);
        }

        Directory.CreateDirectory(_directory);
        return SqliteMetadataStore.Open(Path.Combine(_directory, "mds.db"));
    }

    private static InodeRecord Inode(long ino, FileType type, Layout? layout = null, uint nlink = 1, long parent = 1) => new()
    {
        Ino = ino,
        Type = type,
        Mode = 0x1A4,
        Nlink = nlink,
        Parent = parent,
        Layout = layout,
    };
}

public sealed class StoreContractTestsOnSqlite() : StoreContractTests(TestStore.Sqlite);

public sealed class StoreContractTestsOnPostgres() : StoreContractTests(TestStore.Postgres)
{
    public static string? SkipReason => TestPostgres.SkipReason;
}
