namespace ParaFS.Common;

/// <summary>
/// A daemon that cannot start: a data directory of another file system, a port in use, a store it
/// cannot open. The message says what and what to do; it is printed without a stack trace.
/// </summary>
public sealed class StartupException : Exception
{
    public StartupException(string message)
        : base(message)
    {
    }

    public StartupException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public StartupException()
    {
    }
}
