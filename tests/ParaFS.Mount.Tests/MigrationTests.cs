using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Xunit.Abstractions;

namespace ParaFS.Mount.Tests;

/// <summary>
/// The reason ParaFS exists: moving data between vendors' arrays with the file system mounted and
/// in use. An embedded cluster with pools vendorA:2 and vendorB:2, 200 files of 1 KiB to 256 MiB
/// with known contents; while `parafs migrate -p vendorB -r` runs, three writers append and fsync
/// and a reader reads at random (dropping the page cache so reads reach the OSTs). Then one
/// vendorB target is drained under the same load, and parafs fsck finds no object left behind.
/// </summary>
public sealed class MigrationTests(ITestOutputHelper output)
{
    private const int FileCount = 200;
    private const int AppendBytes = 64 * 1024;
    private static readonly int[] Appended = [20, 21, 22];

    [MountFact]
    public Task Migrate_to_another_pool_and_drain_a_target_under_load_keep_every_byte() => Task.Run(async () =>
    {
        await using var up = await ParafsUp.StartAsync(null, null, "--pools", "vendorA:2,vendorB:2");
        var mnt = up.MountPoint;
        var sizes = Enumerable.Range(0, FileCount).Select(SizeOf).ToArray();
        for (var i = 0; i < FileCount; i++)
        {
            await WriteFileAsync(Path.Combine(mnt, Dir(i), $"f{i}"), i, sizes[i]);
        }

        var targets = await TargetsAsync(mnt);
        Assert.Equal(4, targets.Count);
        var vendorA = targets.Where(t => t.Pool == "vendorA").Select(t => t.Id).ToList();
        var vendorB = targets.Where(t => t.Pool == "vendorB").Select(t => t.Id).ToList();
        Assert.NotEmpty(await Shell.OkAsync($"{Parafs} find '{mnt}' --pool vendorA"));

        using var load = new Load(mnt, sizes);
        load.Start();
        await Task.Delay(500);

        var migrate = await Shell.RunAsync($"{Parafs} migrate -p vendorB -r '{mnt}'", TimeSpan.FromMinutes(10));
        Assert.True(migrate.Code == 0, $"parafs migrate failed ({migrate.Code}):\n{migrate.Output}");
        output.WriteLine($"report: migrate: {migrate.Output.Trim().Split('\n')[^1]}");

        Assert.Equal("", (await Shell.OkAsync($"{Parafs} find '{mnt}' --pool vendorA")).Trim());
        foreach (var id in vendorA)
        {
            Assert.Equal("", (await Shell.OkAsync($"{Parafs} find '{mnt}' --target {id}")).Trim());
        }

        Assert.Equal(FileCount, (await Shell.OkAsync($"{Parafs} find '{mnt}' --pool vendorB")).Trim().Split('\n').Length);
        await Eventually.TrueAsync(() => vendorA.All(id => ObjectFiles(up, id) == 0), "vendorA's data directories hold no objects once the old objects are deleted");
        var afterMigrate = load.Snapshot();

        // Drain one vendorB target under the same load.
        var drained = vendorB[0];
        var drain = await Shell.RunAsync($"{Parafs} drain {drained} '{mnt}'", TimeSpan.FromMinutes(10));
        Assert.True(drain.Code == 0, $"parafs drain failed ({drain.Code}):\n{drain.Output}");
        output.WriteLine($"report: drain: {drain.Output.Trim().Split('\n').FirstOrDefault(l => l.StartsWith("drain done", StringComparison.Ordinal))}");
        Assert.Equal("", (await Shell.OkAsync($"{Parafs} find '{mnt}' --target {drained}")).Trim());
        Assert.Contains("retired", (await TargetsAsync(mnt)).Single(t => t.Id == drained).State, StringComparison.Ordinal);
        Assert.Equal(0, ObjectFiles(up, drained));

        var final = await load.StopAsync();
        output.WriteLine($"report: writers: {final.Appends} appends+fsync, longest stall {final.LongestStall.TotalMilliseconds:0.0} ms (during migrate: {afterMigrate.LongestStall.TotalMilliseconds:0.0} ms); reader: {final.Reads} random reads, {final.WrongReads} wrong");
        Assert.True(final.Errors.Count == 0, "a writer or reader got an error:\n" + string.Join('\n', final.Errors));
        Assert.Equal(0, final.WrongReads);
        Assert.True(final.Appends > 0, "the writers never appended");

        // Nothing leaked: every object left on the targets belongs to a file or waits in the queue.
        var fsck = await Shell.RunAsync($"{Parafs} fsck '{mnt}'", TimeSpan.FromMinutes(5));
        Assert.True(fsck.Code == 0, $"parafs fsck after migrate and drain exited {fsck.Code}:\n{fsck.Output}");
        output.WriteLine($"report: fsck: {fsck.Output.Trim().Split('\n').FirstOrDefault(l => l.StartsWith("clean", StringComparison.Ordinal))}");

        // Every file from the OSTs (not the page cache), against the contents it must have.
        await File.WriteAllTextAsync("/proc/sys/vm/drop_caches", "3");
        for (var i = 0; i < FileCount; i++)
        {
            var path = Path.Combine(mnt, Dir(i), $"f{i}");
            var expected = Appended.Contains(i) ? final.Sizes[i] : sizes[i];
            Assert.Equal(expected, new FileInfo(path).Length);
            var actual = await Sha256Async(path);
            Assert.True(Expected(i, expected).AsSpan().SequenceEqual(actual), $"{path}: checksum differs after migrate and drain");
        }
    });

    private static string Parafs => $"dotnet '{ParafsUp.ParafsDll}'";

    private static string Dir(int i) => $"d{i % 5}";

    /// <summary>1 KiB to 256 MiB: one of 256 MiB, one of 64, four of 16, ten of 4, 24 of 1 MiB, the rest up to 256 KiB.</summary>
    private static long SizeOf(int i) => i switch
    {
        0 => 256L << 20,
        1 => 64L << 20,
        < 6 => 16L << 20,
        < 16 => 4L << 20,
        < 40 => 1L << 20,
        _ => 1024 + (i * 7919L % (255 * 1024)),
    };

    /// <summary>Known contents: 8-byte blocks of a counter-based hash of (file, block), so any range can be checked alone.</summary>
    private static void Fill(int file, long offset, Span<byte> destination)
    {
        for (var i = 0; i < destination.Length;)
        {
            var position = offset + i;
            var block = Mix(((ulong)file << 48) ^ (ulong)(position / 8));
            var within = (int)(position % 8);
            for (; within < 8 && i < destination.Length; within++, i++)
            {
                destination[i] = (byte)(block >> (within * 8));
            }
        }
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    private static byte[] Expected(int file, long size)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        for (long offset = 0; offset < size; offset += buffer.Length)
        {
            var length = (int)Math.Min(buffer.Length, size - offset);
            Fill(file, offset, buffer.AsSpan(0, length));
            hash.AppendData(buffer, 0, length);
        }

        return hash.GetHashAndReset();
    }

    private static async Task<byte[]> Sha256Async(string path)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20);
        return await SHA256.HashDataAsync(stream);
    }

    private static async Task WriteFileAsync(string path, int file, long size)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
        var buffer = new byte[1 << 20];
        for (long offset = 0; offset < size; offset += buffer.Length)
        {
            var length = (int)Math.Min(buffer.Length, size - offset);
            Fill(file, offset, buffer.AsSpan(0, length));
            await stream.WriteAsync(buffer.AsMemory(0, length));
        }
    }

    /// <summary>Object files in the data directory of target <paramref name="target"/> (found by the target id in its superblock).</summary>
    private static int ObjectFiles(ParafsUp up, int target)
    {
        foreach (var directory in Directory.GetDirectories(up.Data, "ost-*"))
        {
            using var superblock = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "superblock.json")));
            if (superblock.RootElement.GetProperty("target_id").GetInt32() == target)
            {
                var objects = Path.Combine(directory, "objects");
                return Directory.Exists(objects) ? Directory.EnumerateFiles(objects, "*", SearchOption.AllDirectories).Count() : 0;
            }
        }

        throw new InvalidOperationException($"no OST data directory under {up.Data} belongs to target {target}");
    }

    private sealed record TargetRow(int Id, string Pool, string State);

    private static async Task<List<TargetRow>> TargetsAsync(string mnt)
    {
        using var json = JsonDocument.Parse(await Shell.OkAsync($"{Parafs} targets --json '{mnt}'"));
        return [.. json.RootElement.EnumerateArray().Select(t => new TargetRow(t.GetProperty("id").GetInt32(), t.GetProperty("pool").GetString()!, t.GetProperty("state").GetString()!))];
    }

    private sealed record LoadResult(long Appends, long Reads, long WrongReads, TimeSpan LongestStall, IReadOnlyList<string> Errors, long[] Sizes);

    /// <summary>Three appenders (append 64 KiB, fsync, time it) and one random reader, through the mount.</summary>
    private sealed class Load(string mnt, long[] sizes) : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _tasks = [];
        private readonly List<string> _errors = [];
        private readonly long[] _sizes = (long[])sizes.Clone();
        private long _appends;
        private long _reads;
        private long _wrong;
        private long _longestStallTicks;

        public void Start()
        {
            foreach (var file in Appended)
            {
                _tasks.Add(Task.Run(() => AppendLoopAsync(file)));
            }

            _tasks.Add(Task.Run(ReadLoopAsync));
        }

        public LoadResult Snapshot()
        {
            lock (_errors)
            {
                return new LoadResult(Interlocked.Read(ref _appends), Interlocked.Read(ref _reads), Interlocked.Read(ref _wrong), TimeSpan.FromTicks(Interlocked.Read(ref _longestStallTicks)), [.. _errors], (long[])_sizes.Clone());
            }
        }

        public async Task<LoadResult> StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_tasks);
            return Snapshot();
        }

        public void Dispose()
        {
            _stop.Cancel();
            try
            {
                Task.WaitAll([.. _tasks], TimeSpan.FromSeconds(30));
            }
            catch (AggregateException)
            {
            }

            _stop.Dispose();
        }

        private void Error(string what)
        {
            lock (_errors)
            {
                _errors.Add(what);
            }
        }

        private async Task AppendLoopAsync(int file)
        {
            var path = Path.Combine(mnt, Dir(file), $"f{file}");
            var buffer = new byte[AppendBytes];
            try
            {
                await using var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 0);
                while (!_stop.IsCancellationRequested)
                {
                    var offset = _sizes[file];
                    Fill(file, offset, buffer);
                    var started = Stopwatch.GetTimestamp();
                    await stream.WriteAsync(buffer);
                    stream.Flush(flushToDisk: true);
                    var took = Stopwatch.GetElapsedTime(started).Ticks;
                    lock (_errors)
                    {
                        _sizes[file] = offset + AppendBytes;
                    }

                    Interlocked.Increment(ref _appends);
                    long seen;
                    while (took > (seen = Interlocked.Read(ref _longestStallTicks)) && Interlocked.CompareExchange(ref _longestStallTicks, took, seen) != seen)
                    {
                    }

                    await Task.Delay(20);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Error($"writer of {path}: {e.Message}");
            }
        }

        private async Task ReadLoopAsync()
        {
            var random = new Random(42);
            var buffer = new byte[64 * 1024];
            var expected = new byte[buffer.Length];
            while (!_stop.IsCancellationRequested)
            {
                var file = random.Next(FileCount);
                if (Appended.Contains(file))
                {
                    continue;
                }

                var path = Path.Combine(mnt, Dir(file), $"f{file}");
                var offset = random.NextInt64(Math.Max(1, sizes[file] - 1));
                var length = (int)Math.Min(buffer.Length, sizes[file] - offset);
                try
                {
                    using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                    var got = RandomAccess.Read(handle, buffer.AsSpan(0, length), offset);
                    Fill(file, offset, expected.AsSpan(0, length));
                    if (got != length || !buffer.AsSpan(0, length).SequenceEqual(expected.AsSpan(0, length)))
                    {
                        Interlocked.Increment(ref _wrong);
                        Error($"reader: {path} at {offset.ToString(CultureInfo.InvariantCulture)}: {got} bytes, not the contents written");
                    }
                }
                catch (IOException e)
                {
                    Error($"reader of {path}: {e.Message}");
                }

                if (Interlocked.Increment(ref _reads) % 64 == 0)
                {
                    // Reads must reach the OSTs, not the page cache filled before the migration.
                    await File.WriteAllTextAsync("/proc/sys/vm/drop_caches", "1");
                }

                await Task.Delay(2);
            }
        }
    }
}
