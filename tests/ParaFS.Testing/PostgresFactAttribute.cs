using Xunit;

namespace ParaFS.Testing;

/// <summary>A test that needs a PostgreSQL server (PARAFS_TEST_PG; scripts/test starts one) and says so when it skips.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (TestPostgres.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
