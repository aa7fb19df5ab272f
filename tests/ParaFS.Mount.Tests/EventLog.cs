using Microsoft.Extensions.Logging;

namespace ParaFS.Mount.Tests;

/// <summary>A logger that keeps what it was given: event ids, levels and the formatted lines.</summary>
internal sealed class EventLog : ILogger
{
    public List<int> Events { get; } = [];

    public List<LogLevel> Levels { get; } = [];

    public List<string> Messages { get; } = [];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        Events.Add(eventId.Id);
        Levels.Add(logLevel);
        Messages.Add(formatter(state, exception));
    }
}
