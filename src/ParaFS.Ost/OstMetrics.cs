using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ParaFS.Ost;

/// <summary>
/// Per-operation counters and latency histograms (meter "ParaFS.Ost"), and the totals a heartbeat
/// reports: operations completed and requests in flight.
/// </summary>
public sealed class OstMetrics : IDisposable
{
    public const string MeterName = "ParaFS.Ost";

    private readonly Meter _meter;
    private readonly Counter<long> _operations;
    private readonly Counter<long> _failures;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _bytesWritten;
    private readonly Counter<long> _bytesRead;
    private long _completed;
    private int _inFlight;

    public OstMetrics()
    {
        _meter = new Meter(MeterName);
        _operations = _meter.CreateCounter<long>("parafs.ost.operations", "{operation}", "Object operations completed, by op");
        _failures = _meter.CreateCounter<long>("parafs.ost.operation.errors", "{operation}", "Object operations that failed, by op");
        _duration = _meter.CreateHistogram<double>("parafs.ost.operation.duration", "s", "Time to serve an object operation, by op (a large read sent from its file: until the range is found, as the bytes move while the reply is sent)");
        _bytesWritten = _meter.CreateCounter<long>("parafs.ost.bytes_written", "By", "Object bytes written");
        _bytesRead = _meter.CreateCounter<long>("parafs.ost.bytes_read", "By", "Object bytes read");
        _meter.CreateObservableUpDownCounter("parafs.ost.in_flight", () => Volatile.Read(ref _inFlight), "{operation}", "Object operations being served");
    }

    /// <summary>Operations completed since start (failed ones included).</summary>
    public long CompletedOperations => Interlocked.Read(ref _completed);

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Marks an operation started; pass the result to <see cref="End"/>.</summary>
    public long Start()
    {
        Interlocked.Increment(ref _inFlight);
        return Stopwatch.GetTimestamp();
    }

    public void End(string operation, long started, bool failed)
    {
        Interlocked.Decrement(ref _inFlight);
        Interlocked.Increment(ref _completed);
        var tag = new KeyValuePair<string, object?>("op", operation);
        _operations.Add(1, tag);
        if (failed)
        {
            _failures.Add(1, tag);
        }

        _duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, tag);
    }

    public void Written(long bytes) => _bytesWritten.Add(bytes);

    public void Read(long bytes) => _bytesRead.Add(bytes);

    public void Dispose() => _meter.Dispose();
}
