using ParaFS.Cli.Tools;
using Xunit.Abstractions;

namespace ParaFS.Mds.Tests;

/// <summary>parafs fsck's record of what a target holds and which of it the MDS refers to.</summary>
[Collection(HeldObjectsTests.Alone)]
public sealed class HeldObjectsTests(ITestOutputHelper output)
{
    [Fact]
    public void OnlyHeldIdsCountAndEachOnce()
    {
        var held = new HeldObjects();
        held.AddPage([2, 3, 5]);
        held.AddPage([8, 13, 2000]);

        Assert.Equal(6, held.Count);
        Assert.True(held.Refer(3));
        Assert.False(held.Refer(3));
        Assert.False(held.Refer(4));
        Assert.True(held.Refer(2000));
        Assert.False(held.Refer(ulong.MaxValue));
        Assert.True(held.Refer(2));
        Assert.Equal(3, held.Referenced);
        Assert.Equal([5UL, 8, 13], held.Unreferenced());
    }

    [Fact]
    public void NothingReferencedLeavesEveryIdUnreferenced()
    {
        var held = new HeldObjects();
        held.AddPage([7, 9]);

        Assert.Equal([7UL, 9], held.Unreferenced());
        Assert.Equal(0, held.Referenced);
        Assert.False(new HeldObjects().Refer(1));
    }

    [Fact]
    public void AListingOutOfOrderIsRefusedByName()
    {
        var held = new HeldObjects();
        held.AddPage([1, 0x10]);

        var e = Assert.Throws<InvalidDataException>(() => held.AddPage([0x10]));
        Assert.Contains("0x10 after 0x10", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => held.AddPage([0x0f]));
    }

    /// <summary>The memory test reads the process's whole heap, so no other test may run beside it.</summary>
    public const string Alone = "HeldObjects memory, alone";

    /// <summary>
    /// fsck's memory is bounded by what the targets hold, about 8 bytes and a bit an object
    /// (array growth may leave up to twice that), whatever the MDS names. The heap figure moves
    /// by a few hundred KB with what the runtime frees meanwhile (a CI run read 7.96), hence 7.
    /// </summary>
    [Fact]
    public void AMillionObjectsTakeAboutEightBytesEach()
    {
        const int Objects = 1_000_000;
        var page = new ulong[50_000];

        var before = GC.GetTotalMemory(forceFullCollection: true);
        var held = new HeldObjects();
        for (var start = 0; start < Objects; start += page.Length)
        {
            for (var i = 0; i < page.Length; i++)
            {
                page[i] = (ulong)(start + i) * 3 + 1;
            }

            held.AddPage(page);
        }

        // Every held object referenced once, and as many ids again that no target holds.
        for (ulong id = 0; id < (ulong)Objects * 3; id++)
        {
            held.Refer(id);
        }

        var bytes = GC.GetTotalMemory(forceFullCollection: true) - before;
        GC.KeepAlive(held);

        var set = new HashSet<ulong>();
        before = GC.GetTotalMemory(forceFullCollection: true);
        for (ulong id = 0; id < (ulong)Objects * 3; id += 3)
        {
            set.Add(id + 1);
        }

        var setBytes = GC.GetTotalMemory(forceFullCollection: true) - before;
        GC.KeepAlive(set);

        Assert.Equal(Objects, held.Referenced);
        Assert.Empty(held.Unreferenced());
        var perObject = (double)bytes / Objects;
        output.WriteLine($"report: fsck's record of {Objects:N0} held objects: {perObject:F1} bytes per object; a HashSet of the same ids alone {(double)setBytes / Objects:F1}");
        Assert.InRange(perObject, 7, 17);
    }
}

/// <summary>Runs <see cref="HeldObjectsTests"/> with no other test class beside it.</summary>
[CollectionDefinition(HeldObjectsTests.Alone, DisableParallelization = true)]
public sealed class HeldObjectsAloneCollection;
