using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ParaFS.Client;

namespace ParaFS.Cli.Tools;

/// <summary>
/// Progress of a migrate or drain run: for people, one line to stderr per second (files, bytes,
/// rate, ETA, and what the run waits for when it waits); with --json, JSON lines to stdout
/// (progress, one per file, and a summary).
/// </summary>
internal sealed class MigrationReporter : IDisposable
{
    private readonly string _verb;
    private readonly bool _json;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Timer _timer;
    private readonly object _lock = new();
    private long _bytesDone;
    private long _bytesTotal;
    private int _filesDone;
    private int _filesTotal;
    private int _failed;
    private TimeSpan _longestCommit;
    private TimeSpan _longestAckWait;
    private readonly ConcurrentDictionary<ulong, HolderWait> _waits = new();

    public MigrationReporter(string verb, bool json)
    {
        _verb = verb;
        _json = json;
        _timer = new Timer(_ => Progress(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public int Failed => Volatile.Read(ref _failed);

    public int FilesDone => Volatile.Read(ref _filesDone);

    public void AddWork(int files, long bytes)
    {
        Interlocked.Add(ref _filesTotal, files);
        Interlocked.Add(ref _bytesTotal, bytes);
    }

    public void Copied(long bytes) => Interlocked.Add(ref _bytesDone, bytes);

    /// <summary>A file waits for its open holders to switch layouts (or for the MDS's recovery window), or stopped waiting.</summary>
    public void Waiting(HolderWait wait)
    {
        if (wait.Over)
        {
            _waits.TryRemove(wait.Ino, out _);
        }
        else
        {
            _waits[wait.Ino] = wait;
        }
    }

    /// <summary>The files waiting now.</summary>
    internal IReadOnlyCollection<HolderWait> CurrentWaits => [.. _waits.Values];

    /// <summary>What the progress line adds while files wait: empty when none does.</summary>
    internal static string WaitText(IReadOnlyCollection<HolderWait> waits)
    {
        if (waits.Count == 0)
        {
            return "";
        }

        var text = new System.Text.StringBuilder();
        var holders = waits.Sum(w => w.Holders);
        if (holders > 0)
        {
            var files = waits.Count(w => w.Holders > 0);
            text.Append(CultureInfo.InvariantCulture, $"; {files} {(files == 1 ? "file waits" : "files wait")} for {holders} open {(holders == 1 ? "holder" : "holders")} to switch layouts");
        }

        var recovery = waits.Max(w => w.RecoveryLeft);
        if (recovery > TimeSpan.Zero)
        {
            text.Append(CultureInfo.InvariantCulture, $"; the MDS restarted recently: cut-overs wait {Math.Ceiling(recovery.TotalSeconds):0}s more for its clients to come back");
        }

        return text.ToString();
    }

    public void FileDone(string name, ulong ino, MigrationResult result)
    {
        Interlocked.Increment(ref _filesDone);
        lock (_lock)
        {
            _longestCommit = result.CommitTime > _longestCommit ? result.CommitTime : _longestCommit;
            _longestAckWait = result.AcknowledgementWait > _longestAckWait ? result.AcknowledgementWait : _longestAckWait;
            if (_json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    Event = "file",
                    Path = name,
                    Ino = ino,
                    Outcome = result.Outcome == MigrationOutcome.Migrated ? "migrated" : "already-there",
                    Pool = result.Layout.Pool,
                    Targets = result.Layout.Objects.Select(o => o.TargetId),
                    result.Bytes,
                    result.Recopied,
                    result.Restarts,
                    AckWaitMs = result.AcknowledgementWait.TotalMilliseconds,
                    CommitMs = result.CommitTime.TotalMilliseconds,
                }, Compact));
            }
        }
    }

    public void FileFailed(string name, string reason)
    {
        Interlocked.Increment(ref _failed);
        Interlocked.Increment(ref _filesDone);
        lock (_lock)
        {
            if (_json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new { Event = "error", Path = name, Reason = reason }, Compact));
            }
            else
            {
                Console.Error.WriteLine($"parafs {_verb}: {name}: {reason}");
            }
        }
    }

    /// <summary>The summary line (or JSON object) at the end of a run.</summary>
    public void Finish(bool interrupted)
    {
        _timer.Dispose();
        var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        lock (_lock)
        {
            if (_json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    Event = interrupted ? "interrupted" : "done",
                    FilesDone = _filesDone - _failed,
                    FilesFailed = _failed,
                    FilesTotal = _filesTotal,
                    BytesCopied = _bytesDone,
                    Seconds = seconds,
                    RateBytesPerSecond = _bytesDone / seconds,
                    LongestCommitMs = _longestCommit.TotalMilliseconds,
                    LongestAckWaitMs = _longestAckWait.TotalMilliseconds,
                }, Compact));
                return;
            }

            var what = interrupted ? "interrupted" : "done";
            Console.Error.WriteLine(
                $"{_verb} {what}: {_filesDone - _failed}/{_filesTotal} files, {Sizes.Human(_bytesDone)} copied in {seconds:0.0}s " +
                $"({Sizes.Human((long)(_bytesDone / seconds))}/s), {_failed} failed; longest cut-over {_longestCommit.TotalMilliseconds:0.0} ms, " +
                $"longest wait for open holders {_longestAckWait.TotalMilliseconds:0.0} ms");
            if (interrupted)
            {
                Console.Error.WriteLine($"every file is whole on its old or its new layout; run the same command again to resume, or parafs migrate --abort PATH to roll back");
            }
        }
    }

    public void Dispose() => _timer.Dispose();

    private static readonly JsonSerializerOptions Compact = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private void Progress()
    {
        var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        var done = Volatile.Read(ref _bytesDone);
        var total = Volatile.Read(ref _bytesTotal);
        var rate = done / seconds;
        var eta = rate > 0 && total > done ? (total - done) / rate : 0;
        var waits = CurrentWaits;
        lock (_lock)
        {
            if (_json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new
                {
                    Event = "progress",
                    FilesDone = _filesDone,
                    FilesTotal = _filesTotal,
                    BytesDone = done,
                    BytesTotal = total,
                    RateBytesPerSecond = rate,
                    EtaSeconds = eta,
                    WaitingFiles = waits.Count,
                    WaitingHolders = waits.Sum(w => w.Holders),
                    MdsRecoverySecondsLeft = waits.Count == 0 ? 0 : waits.Max(w => w.RecoveryLeft).TotalSeconds,
                }, Compact));
            }
            else
            {
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{_verb}: {_filesDone}/{_filesTotal} files, {Sizes.Human(done)}/{Sizes.Human(total)}, {Sizes.Human((long)rate)}/s, ETA {eta:0}s{WaitText(waits)}"));
            }
        }
    }
}
