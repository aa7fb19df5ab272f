using Npgsql;

namespace ParaFS.Testing;

/// <summary>
/// The PostgreSQL server the tests use: PARAFS_TEST_PG, a connection string to a server where
/// the user may create databases (scripts/test starts a throwaway one on loopback). Each test
/// gets a database of its own, dropped afterwards.
/// </summary>
public static class TestPostgres
{
    public static string? Server => Environment.GetEnvironmentVariable("PARAFS_TEST_PG") is { Length: > 0 } s ? s : null;

    /// <summary>Why PostgreSQL tests skip here, or null when they can run.</summary>
    public static string? SkipReason => Server is null
        ? "needs a PostgreSQL server: PARAFS_TEST_PG=\"Host=...;Username=...\" (scripts/test starts a throwaway one; CI runs them)"
        : null;

    public static async Task<TestDatabase> CreateDatabaseAsync()
    {
        var server = Server ?? throw new InvalidOperationException(SkipReason);
        var name = $"parafs_test_{Guid.NewGuid():N}";
        await using (var connection = new NpgsqlConnection(server))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }

        var builder = new NpgsqlConnectionStringBuilder(server) { Database = name };
        return new TestDatabase(server, name, builder.ConnectionString);
    }
}

/// <summary>A database for one test; disposing drops it (and ends any session still on it).</summary>
public sealed class TestDatabase(string server, string name, string connectionString) : IAsyncDisposable
{
    public string Name { get; } = name;

    public string ConnectionString { get; } = connectionString;

    /// <summary>Runs SQL on this database (to break it on purpose, or look inside).</summary>
    public async Task<object?> ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(server);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }
}
