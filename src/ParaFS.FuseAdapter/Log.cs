using Microsoft.Extensions.Logging;

namespace ParaFS.FuseAdapter;

/// <summary>The FUSE adapter's log lines, with fixed event ids (600-699).</summary>
internal static partial class Log
{
    [LoggerMessage(600, LogLevel.Information, "read priority: large writes slow small reads down ({SlowPercent:F1}% over {ThresholdMicros:F0} us, {BaselinePercent:F1}% without writes); writes are paced to {LimitMiBs} MiB/s while the reads go on (-o readprio=off turns this off)")]
    public static partial void PacingStarted(ILogger logger, double slowPercent, double thresholdMicros, double baselinePercent, long limitMiBs);

    [LoggerMessage(601, LogLevel.Information, "read priority: large writes are no longer paced ({Reason})")]
    public static partial void PacingEnded(ILogger logger, string reason);

    [LoggerMessage(602, LogLevel.Information, "read priority: small reads stay slow with writes paced to the floor, so the writes are not the cause; their median of {MedianMicros:F0} us is the new baseline")]
    public static partial void Rebaselined(ILogger logger, double medianMicros);

    [LoggerMessage(603, LogLevel.Warning, "an application got {Errno}: {Reason} (the same reason is logged at most once a minute)")]
    public static partial void ErrorToApplication(ILogger logger, string errno, string reason);

    [LoggerMessage(604, LogLevel.Warning, "{Count} more errors to applications were not logged in the last minute (at most 20 lines a minute)")]
    public static partial void ErrorsLeftOut(ILogger logger, int count);
}
