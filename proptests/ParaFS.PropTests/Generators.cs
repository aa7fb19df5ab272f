using FsCheck;
using FsCheck.Fluent;

namespace ParaFS.PropTests;

/// <summary>
/// Random operation sequences over a small set of names, so that calls collide (create over an
/// existing name, rename onto a directory, rmdir of a full directory) and stripes of 4 KiB to
/// 1 MiB are crossed by writes at random offsets, some far past the end of file.
/// </summary>
public static class Generators
{
    private static readonly string[] Paths = ["a", "b", "c", "d1", "d2", "d1/a", "d1/b", "d1/d2", "d2/a", "d1/d2/a"];

    private static Gen<string> Path => Gen.Elements(Paths);

    private static Gen<long> Offset =>
        Gen.Frequency(
        [
            (6, Gen.Choose(0, 200_000).Select(i => (long)i)),
            (2, Gen.Choose(1, 40).Select(i => ((long)i * 8192) - 7)),
            (1, Gen.Choose(1, 4 * 1024 * 1024).Select(i => (long)i)),
        ]);

    public static Gen<Op> Operation(bool faults, bool migrations = false)
    {
        List<(int, Gen<Op>)> choices =
        [
        (10, from p in Path from excl in Gen.Elements(true, false) from size in Gen.Elements(4096, 8192, 65536, 1024 * 1024) from count in Gen.Choose(1, 4)
             select (Op)new CreateOp(p, excl, size, count)),
        (4, from p in Path from trunc in Gen.Elements(true, false, false) select (Op)new OpenOp(p, trunc)),
        (15, from h in Gen.Choose(0, 9) from o in Offset from n in Gen.Choose(1, 150_000) from seed in Gen.Choose(0, int.MaxValue) select (Op)new WriteOp(h, o, n, seed)),
        (10, from h in Gen.Choose(0, 9) from o in Gen.Choose(0, 300_000) from n in Gen.Choose(1, 300_000) select (Op)new ReadOp(h, o, n)),
        (4, from p in Path from s in Gen.Choose(0, 300_000) select (Op)new TruncateOp(p, s)),
        (3, from h in Gen.Choose(0, 9) from o in Gen.Choose(0, 200_000) from n in Gen.Choose(1, 100_000) select (Op)new PunchOp(h, o, n)),
        (3, from h in Gen.Choose(0, 9) from o in Offset from hole in Gen.Elements(true, false) select (Op)new SeekOp(h, o, hole)),
        (3, Gen.Choose(0, 9).Select(h => (Op)new FsyncOp(h))),
        (5, Gen.Choose(0, 9).Select(h => (Op)new CloseOp(h))),
        (6, from a in Path from b in Path select (Op)new RenameOp(a, b)),
        (3, from a in Path from b in Path select (Op)new LinkOp(a, b)),
        (5, Path.Select(p => (Op)new UnlinkOp(p))),
        (5, Path.Select(p => (Op)new MkdirOp(p))),
        (3, Path.Select(p => (Op)new RmdirOp(p))),
        (3, Gen.Elements("", "d1", "d2", "d1/d2", "a").Select(p => (Op)new ReaddirOp(p))),
        (3, from p in Path from n in Gen.Elements("user.x", "user.y") from seed in Gen.Choose(0, 10_000) from f in Gen.Elements(0u, 0u, 1u, 2u)
            select (Op)new SetXattrOp(p, n, seed, f)),
        (2, from p in Path from n in Gen.Elements("user.x", "user.y") select (Op)new GetXattrOp(p, n)),
        ];
        if (migrations)
        {
            choices.Add((8, from p in Path from size in Gen.Elements(4096, 65536, 1024 * 1024) from count in Gen.Choose(1, 4) from finish in Gen.Elements(true, false)
                            select (Op)new MigrateOp(p, size, count, finish)));
        }

        if (faults)
        {
            choices.Add((6, from k in Gen.Elements(FaultKind.KillOst, FaultKind.KillOst, FaultKind.KillMds) from i in Gen.Choose(0, 3) select (Op)new FaultOp(k, i)));
        }

        return Gen.Frequency(choices);
    }

    public static Arbitrary<Op[]> Sequences(bool faults, int maxLength, bool migrations = false) =>
        Arb.ToArbitrary(Gen.Choose(5, maxLength).SelectMany(n => Gen.ArrayOf(Operation(faults, migrations), n)), Shrink);

    /// <summary>Shorter sequences first: the second half, the first half, then each one without one step.</summary>
    private static IEnumerable<Op[]> Shrink(Op[] ops)
    {
        if (ops.Length > 1)
        {
            yield return ops[(ops.Length / 2)..];
            yield return ops[..(ops.Length / 2)];
        }

        for (var i = 0; i < ops.Length; i++)
        {
            yield return [.. ops[..i], .. ops[(i + 1)..]];
        }
    }
}
