using FsCheck.Fluent;
using ParaFS.Common;

namespace ParaFS.Mds.Tests;

/// <summary>The MDS's advisory locks against POSIX's rules, byte by byte.</summary>
public sealed class LockTableTests
{
    private const long Ino = 7;

    /// <summary>Byte 16 of the model stands for "16 and beyond": only a lock to the end of the file covers it.</summary>
    private const int Bytes = 17;

    private sealed record Step(ulong Session, ulong Owner, int Type, ulong Start, ulong End);

    /// <summary>
    /// Any sequence of read, write and unlock requests from four owners (two sessions of two
    /// owners each) leaves each owner holding exactly the bytes a per-byte model says, refuses
    /// exactly the requests the model refuses, and keeps one lock per run of equal bytes.
    /// </summary>
    [Fact]
    public void Record_locks_match_a_byte_by_byte_model()
    {
        var step =
            from session in Gen.Choose(1, 2)
            from owner in Gen.Choose(1, 2)
            from type in Gen.Choose(0, 2)
            from start in Gen.Choose(0, 15)
            from length in Gen.Choose(0, 16)
            from toEnd in Gen.Frequency((1, Gen.Constant(true)), (3, Gen.Constant(false)))
            select new Step((ulong)session, (ulong)owner, type, (ulong)start, toEnd ? ulong.MaxValue : (ulong)Math.Min(15, start + length));
        PropertyCheck.Run(Prop.ForAll(step.ListOf().ToArbitrary(), steps => Replay(steps)), maxTests: 300);
    }

    [Fact]
    public void Flock_and_record_locks_do_not_conflict_and_a_session_takes_its_locks_with_it()
    {
        var table = new LockTable();
        Assert.Null(table.TrySet(Ino, 1, 10, LockKind.Flock, write: true, unlock: false, 0, ulong.MaxValue, 100));
        Assert.Null(table.TrySet(Ino, 2, 20, LockKind.Posix, write: true, unlock: false, 0, ulong.MaxValue, 200));
        var refused = table.TrySet(Ino, 2, 21, LockKind.Flock, write: false, unlock: false, 0, ulong.MaxValue, 201);
        Assert.Equal(new HeldLock(1, 10, LockKind.Flock, true, 0, ulong.MaxValue, 100), refused);
        Assert.Equal([Ino], table.ReleaseSession(1));
        Assert.Equal(1, table.Count);
        Assert.Null(table.TrySet(Ino, 2, 21, LockKind.Flock, write: false, unlock: false, 0, ulong.MaxValue, 201));
        Assert.Equal([Ino], table.ReleaseSession(2));
        Assert.Equal(0, table.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => table.TrySet(Ino, 1, 1, LockKind.Posix, write: true, unlock: false, 5, 4, 1));
    }

    [Fact]
    public void A_refused_request_that_waits_is_a_waiter_until_taken_or_its_session_ends()
    {
        var table = new LockTable();
        Assert.Null(table.TrySet(Ino, 1, 10, LockKind.Posix, write: true, unlock: false, 0, 9, 100));
        Assert.NotNull(table.TrySet(Ino, 2, 20, LockKind.Posix, write: false, unlock: false, 5, 5, 200));
        Assert.Empty(table.TakeWaiters(Ino));
        Assert.NotNull(table.TrySet(Ino, 2, 20, LockKind.Posix, write: false, unlock: false, 5, 5, 200, wait: true));
        Assert.NotNull(table.TrySet(Ino, 3, 30, LockKind.Posix, write: true, unlock: false, 0, 0, 300, wait: true));
        Assert.Equal([2ul, 3ul], table.TakeWaiters(Ino).Order());
        Assert.Empty(table.TakeWaiters(Ino));
        Assert.NotNull(table.TrySet(Ino, 2, 20, LockKind.Posix, write: false, unlock: false, 5, 5, 200, wait: true));
        Assert.Empty(table.ReleaseSession(2));
        Assert.Empty(table.TakeWaiters(Ino));
    }

    private static bool Replay(IReadOnlyList<Step> steps)
    {
        var table = new LockTable();
        var model = new Dictionary<(ulong Session, ulong Owner), int[]>();
        foreach (var s in steps)
        {
            var me = (s.Session, s.Owner);
            var last = s.End == ulong.MaxValue ? Bytes - 1 : (int)s.End;
            var write = s.Type == 1;
            var unlock = s.Type == 2;
            var blocked = !unlock && model.Any(o => o.Key != me && Enumerable.Range((int)s.Start, last - (int)s.Start + 1).Any(b => o.Value[b] == 2 || (write && o.Value[b] == 1)));
            var conflict = table.TrySet(Ino, s.Session, s.Owner, LockKind.Posix, write, unlock, s.Start, s.End, (uint)s.Owner);
            Assert.True(blocked == (conflict is not null), $"{s}: the model says {(blocked ? "refused" : "granted")}");
            if (!blocked)
            {
                var bytes = model.TryGetValue(me, out var held) ? held : model[me] = new int[Bytes];
                for (var b = (int)s.Start; b <= last; b++)
                {
                    bytes[b] = unlock ? 0 : write ? 2 : 1;
                }
            }

            var locks = table.Held(Ino);
            foreach (var ((session, owner), bytes) in model)
            {
                var mine = locks.Where(l => l.SameOwner(session, owner)).OrderBy(l => l.Start).ToList();
                for (var b = 0; b < Bytes; b++)
                {
                    var covering = mine.Where(l => l.Start <= (ulong)b && (b < Bytes - 1 ? l.End >= (ulong)b : l.End == ulong.MaxValue)).ToList();
                    Assert.True(covering.Count <= 1, $"after {s}: byte {b} of owner {session}/{owner} is in {covering.Count} locks");
                    var state = covering.Count == 0 ? 0 : covering[0].Write ? 2 : 1;
                    Assert.True(state == bytes[b], $"after {s}: byte {b} of owner {session}/{owner} is {state} in the table, {bytes[b]} in the model");
                }

                for (var i = 1; i < mine.Count; i++)
                {
                    var touching = mine[i - 1].End != ulong.MaxValue && mine[i - 1].End + 1 == mine[i].Start;
                    Assert.False(touching && mine[i - 1].Write == mine[i].Write, $"after {s}: owner {session}/{owner} holds two touching locks of one type");
                }
            }
        }

        return true;
    }
}
