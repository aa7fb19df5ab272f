using System.Diagnostics;
using ParaFS.Common;
using Xunit.Abstractions;

namespace ParaFS.Nvme.Tests;

/// <summary>
/// Against Linux's own nvmet in a qemu guest (scripts/nvmet): one 64 MiB RAM-disk namespace with
/// 512-byte blocks. Each test writes its own region so the tests do not depend on one another.
/// </summary>
[Collection(NvmetCollection.Name)]
public sealed class NvmetTargetTests
{
    private const int MiB = 1 << 20;
    private readonly ITestOutputHelper _output;

    public NvmetTargetTests(ITestOutputHelper output) => _output = output;

    private static NvmeTcpOptions Options(bool headerDigest = false, bool dataDigest = false) => new()
    {
        HeaderDigest = headerDigest,
        DataDigest = dataDigest,
        CommandTimeout = TimeSpan.FromSeconds(20),
    };

    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [NvmetFact]
    public async Task Bring_up_reads_cap_vs_and_identifies_controller_and_namespace()
    {
        await using var controller = await NvmeController.ConnectAsync(NvmetTarget.Host, NvmetTarget.Port, NvmetTarget.Nqn, Options(), default);
        var mqes = (int)(controller.Capabilities & 0xFFFF);
        Assert.True(mqes >= 31, $"MQES {mqes}");
        Assert.True(controller.Version >= 0x00010300, $"VS 0x{controller.Version:x8}");
        Assert.Equal(NvmetTarget.Nqn, controller.Identity.SubsystemNqn);
        Assert.Equal("ParaFS-test-nvmet", controller.Identity.ModelNumber);
        Assert.Equal(16384, controller.Identity.InCapsuleDataBytes);
        Assert.Equal(2, controller.IoQueues.Count);
        Assert.All(controller.IoQueues, q => Assert.Equal(controller.ControllerId, q.ControllerId));
        Assert.Contains(1u, await controller.ActiveNamespacesAsync(default));
        var ns = await controller.IdentifyNamespaceAsync(1, default);
        Assert.Equal(512, ns.BlockSize);
        Assert.Equal(64ul * MiB / 512, ns.SizeBlocks);
        _output.WriteLine($"CAP 0x{controller.Capabilities:x16} VS 0x{controller.Version:x8} CNTLID {controller.ControllerId} " +
            $"MDTS {controller.Identity.Mdts} MAXH2CDATA {controller.IoQueues[0].MaxH2CData} SQ flow control disabled {controller.IoQueues[0].SqFlowControlDisabled}");
    }

    [NvmetTheory]
    [InlineData(4096, false, false)]
    [InlineData(20 * 1024, false, false)]
    [InlineData(128 * 1024, false, false)]
    [InlineData(1 << 20, false, false)]
    [InlineData(4096, true, true)]
    [InlineData(20 * 1024, true, true)]
    [InlineData(128 * 1024, true, true)]
    [InlineData(1 << 20, true, true)]
    [InlineData(16384, true, false)]
    [InlineData(128 * 1024, false, true)]
    public async Task Write_then_read_round_trips_in_capsule_and_through_r2t(int length, bool headerDigest, bool dataDigest)
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), Options(headerDigest, dataDigest));
        var offset = 8L * MiB + (length % 7) * 4096L;
        var data = Pattern(length, length + (headerDigest ? 1 : 0) + (dataDigest ? 2 : 0));
        await device.WriteAsync(offset, data, default);
        var back = new byte[length];
        await device.ReadAsync(offset, back, default);
        Assert.Equal(data, back);
    }

    [NvmetFact]
    public async Task Sq_flow_control_on_gets_a_capsule_resp_for_every_read()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url("sqflow=1"), Options());
        Assert.False(device.Controller.IoQueues[0].SqFlowControlDisabled);
        var data = Pattern(64 * 1024, 3);
        await device.WriteAsync(12L * MiB, data, default);
        var back = new byte[data.Length];
        await device.ReadAsync(12L * MiB, back, default);
        Assert.Equal(data, back);
    }

    [NvmetFact]
    public async Task A_request_larger_than_the_max_transfer_is_split()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url("max-transfer=65536"), Options(true, true));
        Assert.Equal(65536, device.MaxTransferBytes);
        var data = Pattern(3 * MiB + 4096, 11);
        await device.WriteAsync(16L * MiB, data, default);
        var back = new byte[data.Length];
        await device.ReadAsync(16L * MiB, back, default);
        Assert.Equal(data, back);
    }

    [NvmetFact]
    public async Task Hundreds_of_commands_in_flight_are_matched_by_cid()
    {
        const int count = 256;
        const int size = 4096;
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url("queues=2&depth=128"), Options());
        var data = Pattern(count * size, 5);
        var peak = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, device.Controller.IoQueues.Sum(q => q.InFlight));
                await Task.Delay(1);
            }
        });
        var clock = Stopwatch.StartNew();
        // Scrambled order, so completions come back out of order across both queues.
        var order = Enumerable.Range(0, count).OrderBy(i => (i * 97) % count).ToArray();
        await Task.WhenAll(order.Select(i => device.WriteAsync(20L * MiB + (long)i * size, data.AsMemory(i * size, size), default).AsTask()));
        var back = new byte[count * size];
        await Task.WhenAll(order.Select(i => device.ReadAsync(20L * MiB + (long)i * size, back.AsMemory(i * size, size), default).AsTask()));
        clock.Stop();
        sampling.Cancel();
        await sampler;
        Assert.Equal(data, back);
        Assert.True(peak > 16, $"peak in flight {peak}");
        _output.WriteLine($"report: {count} writes + {count} reads of 4 KiB, peak {peak} commands in flight, {clock.ElapsedMilliseconds} ms");
    }

    [NvmetFact]
    public async Task Flush_write_zeroes_and_deallocate()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), Options());
        var offset = 24L * MiB;
        var data = Pattern(MiB, 9);
        await device.WriteAsync(offset, data, default);
        await device.FlushAsync(default);

        // 40 MiB of zeroes from 24 MiB: more than the 65536 blocks one Write Zeroes can carry.
        await device.WriteZeroesAsync(offset + 4096, 40L * MiB - 4096, default);
        var back = new byte[MiB];
        await device.ReadAsync(offset, back, default);
        Assert.Equal(data.AsSpan(0, 4096).ToArray(), back[..4096]);
        Assert.All(back[4096..], b => Assert.Equal(0, b));
        var tail = new byte[4096];
        await device.ReadAsync(64L * MiB - 4096, tail, default);
        Assert.All(tail, b => Assert.Equal(0, b));

        await device.DeallocateAsync(offset, MiB, default);
        await device.FlushAsync(default);
    }

    [NvmetFact]
    public async Task Discovery_lists_the_subsystem()
    {
        var entries = await NvmeDiscovery.GetLogAsync(NvmetTarget.Host, NvmetTarget.Port, Options(), default);
        var subsystem = Assert.Single(entries, e => e.SubsystemNqn == NvmetTarget.Nqn);
        Assert.True(subsystem.IsNvmSubsystem);
        Assert.Equal(3, subsystem.TransportType);
        Assert.Equal("4420", subsystem.TransportServiceId);
        foreach (var entry in entries)
        {
            _output.WriteLine($"{entry.SubsystemType} {entry.SubsystemNqn} {entry.TransportAddress}:{entry.TransportServiceId}");
        }
    }

    [NvmetFact]
    public async Task Discovery_with_digests_works_too()
    {
        var entries = await NvmeDiscovery.GetLogAsync(NvmetTarget.Host, NvmetTarget.Port, Options(true, true), default);
        Assert.Contains(entries, e => e.SubsystemNqn == NvmetTarget.Nqn);
    }

    [NvmetFact]
    public async Task Past_the_end_is_enospc_before_anything_is_sent_and_a_raw_command_gets_a_status_error()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), Options());
        var error = await Assert.ThrowsAsync<ParaFsException>(() => device.ReadAsync(device.SizeBytes - 4096, new byte[8192], default).AsTask());
        Assert.Equal(Errno.ENOSPC, error.Errno);
        Assert.Contains("past the end", error.Message);
        var misaligned = await Assert.ThrowsAsync<ParaFsException>(() => device.WriteAsync(100, new byte[512], default).AsTask());
        Assert.Equal(Errno.EINVAL, misaligned.Errno);
        await device.ReadAsync(device.SizeBytes, Memory<byte>.Empty, default);   // nothing to do: not an NLB of 65536
        await device.WriteAsync(0, ReadOnlyMemory<byte>.Empty, default);

        // The same read sent raw: the target refuses it (nvmet 6.1 on brd says Internal Error, not LBA Out of Range).
        var queue = device.Controller.NextIoQueue();
        var blocks = (ulong)(device.SizeBytes / device.BlockSize);
        var buffer = new byte[8192];
        var completion = await queue.ExecuteAsync(NvmeCommand.ReadWrite(Opcode.Read, 1, blocks - 8, 16), default, buffer, default);
        Assert.False(completion.IsSuccess);
        _output.WriteLine($"read past the end: {completion.DescribeStatus()}");
        // The queue is still good afterwards.
        await device.ReadAsync(0, new byte[4096], default);
    }

    [NvmetFact]
    public async Task Keep_alive_keeps_an_idle_controller_alive()
    {
        var options = Options() with { KeepAliveTimeout = TimeSpan.FromSeconds(1) };
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), options);
        await Task.Delay(TimeSpan.FromSeconds(3.5));
        Assert.True(device.Controller.KeepAlivesSent >= 3, $"{device.Controller.KeepAlivesSent} keep-alives");
        Assert.False(device.Controller.AdminQueue.IsFaulted);
        await device.ReadAsync(0, new byte[4096], default);
        Assert.Equal(0, device.Controller.Generation);
    }

    [NvmetFact]
    public async Task Without_keep_alive_the_target_drops_the_controller_and_the_device_reconnects()
    {
        var options = Options() with { KeepAliveTimeout = TimeSpan.FromSeconds(1), KeepAliveInterval = TimeSpan.FromHours(1) };
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), options);
        var data = Pattern(8192, 21);
        await device.WriteAsync(30L * MiB, data, default);
        // nvmet's keep-alive timer (KATO rounded up to whole seconds) expires and it tears the controller down.
        await WaitUntil(() => device.Controller.AdminQueue.IsFaulted, TimeSpan.FromSeconds(15));
        _output.WriteLine($"dropped by the target: {device.Controller.AdminQueue.Fault?.Message}");
        var back = new byte[8192];
        await device.ReadAsync(30L * MiB, back, default);
        Assert.Equal(data, back);
        Assert.Equal(1, device.Controller.Generation);
    }

    [NvmetFact]
    public async Task Shutdown_sets_shn_and_waits_for_shst_complete()
    {
        var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), Options());
        await device.WriteAsync(31L * MiB, Pattern(4096, 1), default);
        var clock = Stopwatch.StartNew();
        await device.Controller.ShutdownAsync(default);
        _output.WriteLine($"shutdown took {clock.ElapsedMilliseconds} ms");
        Assert.True(device.Controller.IsShutDown);
        var error = await Assert.ThrowsAsync<NvmeTransportException>(() => device.ReadAsync(0, new byte[4096], default).AsTask());
        Assert.Contains("closed", error.Message);
        await device.DisposeAsync();
    }

    [NvmetFact]
    public async Task Commands_in_flight_when_every_connection_drops_are_retried_once_after_a_reconnect()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), Options());
        const int count = 128;
        const int size = 16384;
        var data = Pattern(count * size, 33);
        var writes = Enumerable.Range(0, count)
            .Select(i => device.WriteAsync(32L * MiB + (long)i * size, data.AsMemory(i * size, size), default).AsTask())
            .ToArray();
        // Kill the sockets while the writes are in flight.
        await WaitUntil(() => device.Controller.IoQueues.Sum(q => q.InFlight) > 0 || writes.All(w => w.IsCompleted), TimeSpan.FromSeconds(5));
        var inFlightAtDrop = device.Controller.IoQueues.Sum(q => q.InFlight);
        device.Controller.FailConnections("test: connections dropped");
        await Task.WhenAll(writes);
        _output.WriteLine($"{inFlightAtDrop} commands in flight when the connections dropped");
        if (inFlightAtDrop > 0)
        {
            Assert.Equal(1, device.Controller.Generation); // the writes in flight brought the controller back
        }
        var back = new byte[count * size];
        await device.ReadAsync(32L * MiB, back, default);
        Assert.Equal(data, back);
    }

    [NvmetFact]
    public async Task Writes_under_repeated_connection_drops_lose_nothing()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url("queues=2&depth=32"), Options());
        const int blocks = 512;   // 4 KiB blocks at 44 MiB
        const int size = 4096;
        var data = Pattern(blocks * size, 55);
        var next = -1;
        var failures = new List<Exception>();
        var drops = 0;
        using var stop = new CancellationTokenSource();
        // Drop every connection each time another fifth of the writes has been issued, so the
        // drops always land while writes are in flight.
        var dropper = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested && drops < 4)
            {
                if (Volatile.Read(ref next) >= (drops + 1) * blocks * 4 / 5)
                {
                    device.Controller.FailConnections($"test: drop {++drops}");
                }
                await Task.Delay(1);
            }
        });
        var writers = Enumerable.Range(0, 48).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < blocks * 4)
            {
                var block = i % blocks;
                try
                {
                    await device.WriteAsync(44L * MiB + (long)block * size, data.AsMemory(block * size, size), default);
                }
                catch (ParaFsException e)
                {
                    lock (failures)
                    {
                        failures.Add(e);
                    }
                }
            }
        })).ToArray();
        await Task.WhenAll(writers);
        stop.Cancel();
        await dropper;
        Assert.Empty(failures);
        Assert.Equal(4, drops);
        Assert.True(device.Controller.Generation >= 2, $"generation {device.Controller.Generation}, {drops} drops");
        var back = new byte[blocks * size];
        await device.ReadAsync(44L * MiB, back, default);
        Assert.Equal(data, back);
        _output.WriteLine($"{drops} drops, generation {device.Controller.Generation}");
    }

    [NvmetFact]
    public async Task One_io_queue_dropping_brings_the_whole_controller_back()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url(), Options());
        var data = Pattern(65536, 44);
        await device.WriteAsync(36L * MiB, data, default);
        var oldQueue = device.Controller.IoQueues[1];
        oldQueue.FailConnection(new IOException("test: socket killed"));
        Assert.True(device.Controller.AdminQueue.IsFaulted);
        var back = new byte[65536];
        await device.ReadAsync(36L * MiB, back, default);
        Assert.Equal(data, back);
        Assert.Equal(1, device.Controller.Generation);
        Assert.All(device.Controller.IoQueues, q => Assert.False(q.IsFaulted));
    }

    [NvmetFact]
    public async Task A_connect_to_an_unknown_subsystem_is_refused_with_the_status()
    {
        var error = await Assert.ThrowsAsync<NvmeStatusException>(() =>
            NvmeController.ConnectAsync(NvmetTarget.Host, NvmetTarget.Port, "nqn.2026-11.io.parafs:no-such-subsystem", Options(), default));
        Assert.Contains("Connect refused", error.Message);
        _output.WriteLine(error.Message);
    }

    [NvmetFact]
    public async Task A_namespace_that_does_not_exist_is_enodev()
    {
        var error = await Assert.ThrowsAnyAsync<ParaFsException>(() => NvmeNamespaceDevice.OpenAsync(
            $"nvme-tcp://{NvmetTarget.Host}:{NvmetTarget.Port}/{NvmetTarget.Nqn}/9", Options()));
        _output.WriteLine(error.Message);
        Assert.Contains("/9", error.Message);
    }

    [NvmetFact]
    public async Task Two_namespaces_share_one_controller_and_keep_their_own_data()
    {
        await using var controller = await NvmeController.ConnectAsync(NvmetTarget.Host, NvmetTarget.Port, NvmetTarget.Nqn, Options(), default);
        var active = await controller.ActiveNamespacesAsync(default);
        Assert.True(active.Count >= 2, $"the target has namespaces [{string.Join(", ", active)}]; start it with --namespaces 2 (the default; scripts/test does)");
        await using var first = await NvmeNamespaceDevice.OpenAsync(controller, 1, ownsController: false, default);
        await using var second = await NvmeNamespaceDevice.OpenAsync(controller, 2, ownsController: false, default);
        Assert.EndsWith("/2", second.Description);
        var one = Pattern(8192, 101);
        var two = Pattern(8192, 102);
        await first.WriteAsync(40L * MiB, one, default);
        await second.WriteAsync(40L * MiB, two, default);
        var back = new byte[8192];
        await first.ReadAsync(40L * MiB, back, default);
        Assert.Equal(one, back);
        await second.ReadAsync(40L * MiB, back, default);
        Assert.Equal(two, back);
        await first.DisposeAsync();
        Assert.False(controller.AdminQueue.IsFaulted); // the controller belongs to the caller
    }

    [NvmetFact]
    public async Task Without_an_nsid_the_first_active_namespace_is_used()
    {
        await using var device = await NvmeNamespaceDevice.OpenAsync($"nvme-tcp://{NvmetTarget.Host}:{NvmetTarget.Port}/{NvmetTarget.Nqn}", Options());
        Assert.Equal(1u, device.NamespaceId);
        Assert.Equal(64L * MiB, device.SizeBytes);
    }

    [NvmetFact]
    public async Task A_namespace_smaller_than_required_is_refused_with_enospc()
    {
        var error = await Assert.ThrowsAsync<ParaFsException>(() => NvmeNamespaceDevice.OpenAsync(NvmetTarget.Url("min-size=1073741824"), Options()));
        Assert.Equal(Errno.ENOSPC, error.Errno);
        Assert.Contains("less than the 1073741824 bytes required", error.Message);
        _output.WriteLine(error.Message);
    }

    private static async Task WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, $"condition not met within {timeout}");
            await Task.Delay(10);
        }
    }
}
