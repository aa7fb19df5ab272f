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
