using Microsoft.Extensions.Logging;

namespace ParaFS.Fuse;

/// <summary>The logger used when <see cref="FuseMountOptions.Logger"/> is null: one line per message on standard error.</summary>
internal sealed class StderrLogger : ILogger
{
    public static readonly StderrLogger Instance = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (IsEnabled(logLevel))
        {
            Console.Error.WriteLine($"fuse: {logLevel.ToString().ToLowerInvariant()}: {formatter(state, exception)}");
        }
    }
}
