using System.Runtime.InteropServices;

namespace ParaFS.Cli;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM turned into a cancellation, so a foreground command unmounts and
/// stops cleanly instead of dying. (A job started with &amp; from a script ignores SIGINT, as POSIX
/// shells arrange; SIGTERM still works there.)
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly PosixSignalRegistration _interrupt;
    private readonly PosixSignalRegistration _terminate;

    public StopSignals()
    {
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
    }

    public CancellationToken Token => _stop.Token;

    public bool Requested => _stop.IsCancellationRequested;

    /// <summary>Completes when a stop signal arrives.</summary>
    public Task WhenRequested => Task.Delay(Timeout.Infinite, _stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);

    public void Dispose()
    {
        _interrupt.Dispose();
        _terminate.Dispose();
        _stop.Dispose();
    }

    private void Stop(PosixSignalContext context)
    {
        context.Cancel = true;
        _stop.Cancel();
    }
}
