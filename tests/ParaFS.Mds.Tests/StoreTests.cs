namespace ParaFS.Mds.Tests;

/// <summary>
/// Which metadata store a test class runs its MDS on. The store suite's tests ([SuiteFact]) run
/// once per store, in the concrete classes named ...OnSqlite and ...OnPostgres; the PostgreSQL
/// ones skip, saying why, when no server is configured (their SkipReason).
/// </summary>
public enum TestStore
{
    Sqlite,
    Postgres,
}
