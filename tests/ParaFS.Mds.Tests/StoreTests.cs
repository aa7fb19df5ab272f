using Xunit.Abstractions;
using Xunit.Sdk;

namespace ParaFS.Mds.Tests;

/// <summary>Which metadata store a test class runs its MDS on.</summary>
public enum TestStore
{
    Sqlite,
    Postgres,
}

/// <summary>
/// A test of the store suite: it runs once per store, in the concrete classes named ...OnSqlite
/// and ...OnPostgres. On PostgreSQL it skips, saying why, when no server is configured.
/// </summary>
[XunitTestCaseDiscoverer("ParaFS.Mds.Tests.StoreTestDiscoverer", "ParaFS.Mds.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class StoreFactAttribute : FactAttribute;

/// <inheritdoc cref="StoreFactAttribute"/>
[XunitTestCaseDiscoverer("ParaFS.Mds.Tests.StoreTestDiscoverer", "ParaFS.Mds.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class StoreTheoryAttribute : TheoryAttribute;

public sealed class StoreTestDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        if (testMethod.TestClass.Class.Name.EndsWith("OnPostgres", StringComparison.Ordinal) && TestPostgres.SkipReason is { } reason)
        {
            return [new XunitSkippedDataRowTestCase(diagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod, reason)];
        }

        IXunitTestCaseDiscoverer inner = testMethod.Method.GetCustomAttributes(typeof(TheoryAttribute)).Any()
            ? new TheoryDiscoverer(diagnosticMessageSink)
            : new FactDiscoverer(diagnosticMessageSink);
        return inner.Discover(discoveryOptions, testMethod, factAttribute);
    }
}
