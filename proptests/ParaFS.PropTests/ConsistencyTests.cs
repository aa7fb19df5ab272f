using FsCheck.Fluent;
using Xunit.Abstractions;

namespace ParaFS.PropTests;

/// <summary>A cluster of real daemons (child processes) shared by the tests of a class.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public ProcessCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await ProcessCluster.StartAsync();

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

/// <summary>
/// The consistency contract (DESIGN.md) checked against a model: random operation sequences on
/// the client core over real daemons, with and without kill -9 of OSTs and the MDS between
/// operations. Failures print FsCheck's seed; PARAFS_REPLAY="seed,gamma" runs that case again.
/// </summary>
public sealed class ConsistencyTests(ClusterFixture fixture, ITestOutputHelper output) : IClassFixture<ClusterFixture>
{
    private static int _cases;

    [Fact]
    public void Random_operation_sequences_on_the_client_core_match_the_model()
    {
        var migrations = ModelRunner.SucceededOf(nameof(MigrateOp));
        PropertyCheck.Run(Prop.ForAll(Generators.Sequences(faults: false, maxLength: ModelRunner.MaxOps(40), migrations: true), ops => Run(ops, "client core")), maxTests: ModelRunner.Scale(450));
        Report("client core");

        // Online restripes (begun only, or carried through) among the other calls: some must have run.
        var ran = ModelRunner.SucceededOf(nameof(MigrateOp)) - migrations;
        Assert.True(ran > 0, "no migration ran: the property checked nothing about them");
        output.WriteLine($"report: client core: {ran} online migrations (begun or finished) among the operations, every file matching the model");
    }

    [Fact]
    public async Task Random_operation_sequences_survive_kill_9_of_osts_and_the_mds()
    {
        var faults = ClientSut.Faults;
        var migrations = ModelRunner.SucceededOf(nameof(MigrateOp));
        PropertyCheck.Run(Prop.ForAll(Generators.Sequences(faults: true, maxLength: ModelRunner.MaxOps(30), migrations: true), ops => Run(ops, "client core with faults")), maxTests: ModelRunner.Scale(75));
        Assert.True(ClientSut.Faults > faults, "no fault was injected: the property checked nothing about faults");
        var ran = ModelRunner.SucceededOf(nameof(MigrateOp)) - migrations;
        Assert.True(ran > 0, "no migration ran: the property checked nothing about migrations across faults");
        output.WriteLine($"report: client core with faults: {ClientSut.Faults - faults} kill -9 faults and {ran} online migrations among the operations, every file matching the model");
        Report("client core with faults");

        // No object leaked across the faults (DESIGN.md): parafs fsck finds none on any target.
        var fsck = await FsckAsync();
        Assert.True(fsck.Code == 0, $"parafs fsck after the faults exited {fsck.Code}:\n{fsck.Output}");
        output.WriteLine($"report: fsck after the faults: {fsck.Output.Split('\n').FirstOrDefault(l => l.StartsWith("clean", StringComparison.Ordinal))}");
    }

    /// <summary>
    /// Namespace calls that are not harmless to repeat (O_EXCL create, rename, link, unlink), each
    /// cut off by a kill -9 of the MDS a few milliseconds after it was sent, before or after its
    /// commit: the client sends it again to the restarted MDS, which runs it or answers from the
    /// record of its reply. Every call must succeed once, and the names end as the calls say.
    /// </summary>
    [Fact]
    public async Task Namespace_calls_cut_off_by_kill_9_of_the_mds_take_effect_exactly_once()
    {
        var cluster = fixture.Cluster;
        await using var client = await cluster.ClientAsync();
        var root = new Protocol.Mds.Caller();
        var (dir, _) = await client.CreateAsync(root, Client.ParaFsClient.RootIno, $"cut-off-{Guid.NewGuid():N}", Protocol.Mds.FileType.Directory, 0x1ED);
        var parent = dir.Attr.Ino;
        var random = new Random(20261123);
        // At least 8 groups of four calls; more (up to 30) until the MDS has logged a replay. Its log
        // is written on a thread of its own, so a kill -9 soon after may still lose a line.
        var minimum = ModelRunner.Scale(8);
        var groups = 0;
        var cutOff = 0;
        var replayedBefore = cluster.MdsCallsReplayed;
        for (var k = 0; k < minimum || (k < 30 && cluster.MdsCallsReplayed == replayedBefore); k++)
        {
            groups++;
            var steps = new Func<Task>[]
            {
                () => client.CreateAsync(root, parent, $"f{k}", Protocol.Mds.FileType.Regular, 0x1A4, exclusive: true),
                () => client.RenameAsync(root, parent, $"f{k}", parent, $"g{k}"),
                async () => await client.LinkAsync(root, (await client.LookupAsync(root, parent, $"g{k}")).Attr.Ino, parent, $"h{k}"),
                () => client.RemoveAsync(root, parent, $"g{k}", directory: false),
            };
            foreach (var step in steps)
            {
                var call = step();
                // Kills land before the call reaches the MDS, between its commit and its reply, or after it.
                await Task.Delay(random.Next(0, 8));
                cutOff += call.IsCompleted ? 0 : 1;
                await cluster.KillAndRestartMdsAsync();
                await call;
            }
        }

        var names = new List<string>();
        ulong cookie = 0;
        while (true)
        {
            var page = await client.ReaddirAsync(root, parent, cookie, 64, plus: false);
            names.AddRange(page.Entries.Select(e => e.Name).Where(n => n is not "." and not ".."));
            if (!page.More || page.Entries.Count == 0)
            {
                break;
            }

            cookie = page.Entries[^1].Cookie;
        }

        Assert.Equal(Enumerable.Range(0, groups).Select(k => $"h{k}").Order(StringComparer.Ordinal), names.Order(StringComparer.Ordinal));
        for (var k = 0; k < groups; k++)
        {
            Assert.Equal(1u, (await client.LookupAsync(root, parent, $"h{k}")).Attr.Nlink);
        }

        Assert.True(cutOff > 0, "no call was still running when its kill -9 came: the test checked nothing about cut-off calls");
        var replayed = cluster.MdsCallsReplayed - replayedBefore;
        for (var wait = 0; replayed == 0 && wait < 20; wait++)
        {
            await Task.Delay(100); // the MDS's last log lines may still be on their way
            replayed = cluster.MdsCallsReplayed - replayedBefore;
        }

        Assert.True(replayed > 0, "no call was answered from its reply record: every kill came before a commit, so the test checked nothing about replies");
        output.WriteLine($"report: {groups * 4} namespace calls, each followed by a kill -9 of the MDS; {cutOff} were still running when it came, {replayed} of them answered from the reply record after the restart, and every one took effect once");
    }

    private async Task<(int Code, string Output)> FsckAsync()
    {
        await using var fsck = ParafsProcess.Start("fsck", "--mds", fixture.Cluster.Mds.Text);
        var code = await fsck.WaitForExitAsync();
        return (code, fsck.Output);
    }

    /// <summary>
    /// fsx, our own: one file, random writes, truncates, punches and reads over stripes of 8 KiB
    /// on 3 targets, and after every step the whole file read back and compared with the model.
    /// </summary>
    [Fact]
    public void Fsx_single_file_exerciser_matches_the_model_after_every_step()
    {
        var random = new Random(Environment.GetEnvironmentVariable("PARAFS_FSX_SEED") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : 20261122);
        var ops = new List<Op> { new CreateOp("fsx", true, 8192, 3) };
        for (var i = 0; i < ModelRunner.Scale(900); i++)
        {
            ops.Add(random.Next(10) switch
            {
                < 5 => new WriteOp(0, random.Next(0, 600_000), random.Next(1, 70_000), random.Next()),
                < 7 => new TruncateOp("fsx", random.Next(0, 600_000)),
                < 8 => new PunchOp(0, random.Next(0, 500_000), random.Next(1, 100_000)),
                < 9 => new FsyncOp(0),
                _ => new ReadOp(0, random.Next(0, 600_000), random.Next(1, 200_000)),
            });
            if (i % 3 == 0)
            {
                ops.Add(new SeekOp(0, random.Next(0, 600_000), Hole: (i & 1) == 0));
            }

            ops.Add(new ReadOp(0, 0, 800_000));
        }

        Run([.. ops], "fsx");
        Report("fsx");
    }

    private void Report(string label)
    {
        var (sequences, operations) = ModelRunner.Totals(label);
        output.WriteLine($"{label}: {sequences} sequences, {operations} operations");
    }

    private bool Run(Op[] ops, string label)
    {
        Task.Run(async () =>
        {
            await using var sut = await ClientSut.StartAsync(fixture.Cluster, $"case-{Interlocked.Increment(ref _cases)}");
            await ModelRunner.RunAsync(sut, ops, label);
        }).GetAwaiter().GetResult();
        return true;
    }
}
