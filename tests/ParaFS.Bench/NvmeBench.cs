using System.Diagnostics;
using System.Globalization;
using ParaFS.Nvme;

namespace ParaFS.Bench;

/// <summary>
/// The NVMe/TCP host's own cost, against a real target (scripts/bench-nvme starts the qemu nvmet
/// one): for 4 KiB and 128 KiB writes and reads, how many commands it keeps in flight (mean by
/// Little's law: summed latency / wall time; and the peak) and the process CPU time per MiB moved
/// and per command, plus managed bytes allocated per command. The emulated target's speed (IOPS,
/// MiB/s) is printed for context only: it is software emulation on shared cores, not a figure.
/// </summary>
internal static class NvmeBench
{
    private const int MiB = 1024 * 1024;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Contains("--null-target"))
        {
            return await RunAgainstNullTargetAsync(args);
        }
        var target = Option(args, "--target") ?? Environment.GetEnvironmentVariable("PARAFS_TEST_NVMET");
        if (target is null)
        {
            Console.Error.WriteLine("nvme bench: --target HOST:PORT/NQN (or PARAFS_TEST_NVMET) or --null-target is required; scripts/bench-nvme starts a target");
            return 2;
        }
        return await RunAgainstAsync(target, args);
    }

    /// <summary>Starts the null target as a child process (its CPU is not ours) and measures against it.</summary>
    private static async Task<int> RunAgainstNullTargetAsync(string[] args)
    {
        var self = Environment.ProcessPath!;
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            start.ArgumentList.Add(typeof(NvmeBench).Assembly.Location);
        }
        start.ArgumentList.Add("nvme-null-target");
        start.ArgumentList.Add("--port");
        start.ArgumentList.Add("0");
        using var child = Process.Start(start)!;
        try
        {
            var line = await child.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("the null target did not start");
            var endpoint = line["listening ".Length..];
            Console.WriteLine("against the in-tree null target (a separate process on loopback: writes dropped, reads return zeros)");
            return await RunAgainstAsync($"{endpoint}/{NvmeNullTarget.Nqn}", args);
        }
        finally
        {
            child.Kill();
            await child.WaitForExitAsync();
        }
    }

    private static async Task<int> RunAgainstAsync(string target, string[] args)
    {
        var seconds = double.Parse(Option(args, "--seconds") ?? "5", CultureInfo.InvariantCulture);
        var query = Option(args, "--options") ?? "queues=2&depth=128";
        var url = $"nvme-tcp://{target}/1?{query}";
        await using var device = await NvmeNamespaceDevice.OpenAsync(url);
        Console.WriteLine($"target {device.Description}: {device.SizeBytes / MiB} MiB, {device.BlockSize}-byte blocks, " +
            $"{device.Controller.IoQueues.Count} I/O queues x depth {device.Controller.IoQueues[0].Depth}, options {query}");
        Console.WriteLine("(IOPS and MiB/s are the target's speed on shared cores: context, not figures; nvmet under qemu TCG is emulation)");
        Console.WriteLine($"{"workload",-14} {"in flight",10} {"peak",6} {"cmds",8} {"IOPS",8} {"MiB/s",7} {"CPU ms/MiB",11} {"CPU us/cmd",11} {"alloc B/cmd",12}");

        // Warm-up: JIT, pools, connections.
        await RunAsync(device, 4096, write: true, inFlight: 64, TimeSpan.FromSeconds(1));
        await RunAsync(device, 131072, write: false, inFlight: 16, TimeSpan.FromSeconds(1));

        foreach (var (size, inFlight) in new[] { (4096, 256), (131072, 64) })
        {
            foreach (var write in new[] { true, false })
            {
                var r = await RunAsync(device, size, write, inFlight, TimeSpan.FromSeconds(seconds));
                var name = $"{(write ? "write" : "read")} {size / 1024} KiB";
                Console.WriteLine($"{name,-14} {r.MeanInFlight,10:0.0} {r.PeakInFlight,6} {r.Commands,8} {r.Commands / r.Wall.TotalSeconds,8:0} " +
                    $"{r.Bytes / (double)MiB / r.Wall.TotalSeconds,7:0.0} {r.Cpu.TotalMilliseconds / (r.Bytes / (double)MiB),11:0.00} " +
                    $"{r.Cpu.TotalMicroseconds / r.Commands,11:0.0} {r.Allocated / (double)r.Commands,12:0}");
            }
        }
        return 0;
    }

    private sealed record Result(long Commands, long Bytes, TimeSpan Wall, TimeSpan Cpu, double MeanInFlight, int PeakInFlight, long Allocated);

    private static async Task<Result> RunAsync(NvmeNamespaceDevice device, int size, bool write, int inFlight, TimeSpan duration)
    {
        var blocks = (device.SizeBytes - size) / size;
        var commands = 0L;
        var latencyTicks = 0L;
        var current = 0;
        var peak = 0;
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpuBefore = process.TotalProcessorTime;
        var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);

        async Task Worker(int id)
        {
            var buffer = new byte[size];
            Random.Shared.NextBytes(buffer);
            var random = new Random(id);
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var offset = random.NextInt64(blocks) * size;
                var now = Interlocked.Increment(ref current);
                if (now > Volatile.Read(ref peak))
                {
                    InterlockedMax(ref peak, now);
                }
                var start = Stopwatch.GetTimestamp();
                if (write)
                {
                    await device.WriteAsync(offset, buffer, default).ConfigureAwait(false);
                }
                else
                {
                    await device.ReadAsync(offset, buffer, default).ConfigureAwait(false);
                }
                Interlocked.Add(ref latencyTicks, Stopwatch.GetTimestamp() - start);
                Interlocked.Decrement(ref current);
                Interlocked.Increment(ref commands);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(i => Task.Run(() => Worker(i))));
        clock.Stop();
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpuBefore;
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore - (long)inFlight * size; // less the workers' own buffers
        var meanInFlight = latencyTicks / (double)Stopwatch.Frequency / clock.Elapsed.TotalSeconds;
        return new Result(commands, commands * size, clock.Elapsed, cpu, meanInFlight, peak, Math.Max(0, allocated));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var seen = Volatile.Read(ref target);
        while (value > seen)
        {
            var previous = Interlocked.CompareExchange(ref target, value, seen);
            if (previous == seen)
            {
                return;
            }
            seen = previous;
        }
    }

    private static string? Option(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}
