using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace ParaFS.Testing;

/// <summary>
/// A test of a suite that runs once per implementation: the base class holds the tests, a sealed
/// class per implementation runs them. When the concrete class has a public static string
/// property <c>SkipReason</c> that is not null (its implementation is not available here: no
/// server, no target), every test of that class reports a skip with that reason.
/// </summary>
[XunitTestCaseDiscoverer("ParaFS.Testing.SuiteTestDiscoverer", "ParaFS.Testing")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class SuiteFactAttribute : FactAttribute;

/// <inheritdoc cref="SuiteFactAttribute"/>
[XunitTestCaseDiscoverer("ParaFS.Testing.SuiteTestDiscoverer", "ParaFS.Testing")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class SuiteTheoryAttribute : TheoryAttribute;

public sealed class SuiteTestDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        var type = testMethod.TestClass.Class.ToRuntimeType();
        if (type?.GetProperty("SkipReason", System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)?.GetValue(null) is string reason)
        {
            return [new XunitSkippedDataRowTestCase(diagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(), discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod, reason)];
        }

        IXunitTestCaseDiscoverer inner = testMethod.Method.GetCustomAttributes(typeof(TheoryAttribute)).Any()
            ? new TheoryDiscoverer(diagnosticMessageSink)
            : new FactDiscoverer(diagnosticMessageSink);
        return inner.Discover(discoveryOptions, testMethod, factAttribute);
    }
}
