using Npgsql;
using ParaFS.Common;
using ParaFS.Protocol.Rpc;

namespace ParaFS.Mds.Tests;

/// <summary>What an MDS says when its PostgreSQL store is not usable, and what a leader does when it loses its lock.</summary>
public sealed class PostgresStartupTests
{
    [PostgresFact]
    public async Task An_unreachable_server_is_one_line_naming_the_store()
    {
        var store = $"Host=127.0.0.1;Port={ParafsProcess.FreePort()};Database=parafs;Username=parafs;Password=secret;Timeout=3";
        await using var mds = ParafsProcess.Start("mds", "--store", store, "--listen", $"127.0.0.1:{ParafsProcess.FreePort()}");
        Assert.Equal(1, await mds.WaitForExitAsync());
        var line = Assert.Single(mds.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"cannot open the metadata store postgres://parafs@127.0.0.1:", line, StringComparison.Ordinal);
        Assert.Contains("is PostgreSQL running", line, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", line, StringComparison.Ordinal);
    }

    [PostgresFact]
    public async Task An_unknown_user_or_database_says_what_to_check()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        var noUser = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Username = "nobody_here" }.ConnectionString;
        var error = await Assert.ThrowsAsync<StartupException>(() => MdsServer.StartAsync(MdsFixture.Options("", "127.0.0.1:0", store: noUser)));
        Assert.Contains("check the user name and password", error.Message, StringComparison.Ordinal);

        var noDatabase = new NpgsqlConnectionStringBuilder(database.ConnectionString) { Database = database.Name + "_missing" }.ConnectionString;
        error = await Assert.ThrowsAsync<StartupException>(() => MdsServer.StartAsync(MdsFixture.Options("", "127.0.0.1:0", store: noDatabase)));
        Assert.Contains("createdb", error.Message, StringComparison.Ordinal);
    }

    [PostgresFact]
    public async Task A_database_holding_other_tables_is_refused()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        await database.ExecuteAsync("CREATE TABLE invoices (id int)");
        var error = await Assert.ThrowsAsync<StartupException>(() => MdsServer.StartAsync(MdsFixture.Options("", "127.0.0.1:0", store: database.ConnectionString)));
        Assert.Contains("not a ParaFS schema", error.Message, StringComparison.Ordinal);
    }

    [PostgresFact]
    public async Task A_database_of_another_file_system_is_refused_when_the_name_is_given()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        await (await MdsServer.StartAsync(MdsFixture.Options("", "127.0.0.1:0", store: database.ConnectionString) with { FileSystemName = "lab" })).DisposeAsync();
        var error = await Assert.ThrowsAsync<StartupException>(() => MdsServer.StartAsync(
            MdsFixture.Options("", "127.0.0.1:0", store: database.ConnectionString) with { FileSystemName = "prod", RequireFileSystemName = true }));
        Assert.Contains("holds file system lab", error.Message, StringComparison.Ordinal);
        Assert.Contains("--fsname lab", error.Message, StringComparison.Ordinal);
    }

    [PostgresFact]
    public async Task A_leader_whose_lock_session_ends_stops_serving()
    {
        await using var database = await TestPostgres.CreateDatabaseAsync();
        await using var mds = await MdsServer.StartAsync(MdsFixture.Options("", "127.0.0.1:0", store: database.ConnectionString) with { LeaderPoll = TimeSpan.FromMilliseconds(200) });
        await using var client = await TestClient.ConnectAsync(mds.Endpoint, new Protocol.Mds.Caller(), null);
        await client.MkdirAsync(1, "before");

        await database.ExecuteAsync("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'parafs-mds-leader' AND datname = current_database()");
        var reason = await mds.Deposed.WaitAsync(Eventually.Patience);
        Assert.Contains("leader lock", reason, StringComparison.Ordinal);
        await Assert.ThrowsAsync<RpcException>(() => TestClient.ConnectAsync(mds.Endpoint, new Protocol.Mds.Caller(), null));
    }
}
